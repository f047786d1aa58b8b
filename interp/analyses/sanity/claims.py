"""What a working model must show before any analysis is read (no paper: model checks)."""

from __future__ import annotations

from interp.claims import Claim, above, beats_control

CLAIMS = [
    Claim(
        id="sanity.ioi_solved",
        paper="sanity",
        paper_model="any causal LM the analyses use",
        paper_value="IO preferred over S",
        statement="The model prefers the indirect object over the subject at the end of IOI prompts",
        statistic="fraction of prompts with logit(IO) > logit(S); bootstrap CI over prompts",
        control="chance (0.5): a model without the behaviour prefers either name equally",
        rule=beats_control(margin=0.0),
        rule_text="reproduces if the CI's lower end is above 0.5; fails if its upper end is at or below 0.5",
        min_n=20,
    ),
    Claim(
        id="sanity.induction",
        paper="sanity",
        paper_model="any causal LM the analyses use",
        paper_value="second copy predicted better than the first",
        statement="The model copies repeated random sequences (induction)",
        statistic="per-sequence loss drop from the first to the second copy (nats); bootstrap CI over sequences",
        control="0: no drop without induction",
        rule=above(0.5),
        rule_text="reproduces if the CI of the loss drop lies above 0.5 nats; fails if it lies below",
        min_n=4,
    ),
]
