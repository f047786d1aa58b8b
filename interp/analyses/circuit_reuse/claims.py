"""Claims of Wang et al. 2022 (IOI circuit, GPT-2 small) and Merullo et al. 2023 (circuit
reuse on Colored Objects, GPT-2 medium), each with the control measured in the run."""

from __future__ import annotations

from interp.claims import (
    Claim,
    beats_control,
    beats_control_and,
    below_control_and,
)

WANG = "wang2022"
MERULLO = "merullo2023"
GPT2S = "GPT-2 small"
GPT2M = "GPT-2 medium"


CLAIMS = [
    Claim(
        id=f"{WANG}.ioi_accuracy", paper=WANG, paper_model=GPT2S, paper_value="IO > S on 99.3% of prompts",
        statement="The model prefers the indirect object over the subject at the end of IOI prompts",
        statistic="share of held-out IOI prompts with logit(IO) > logit(S); bootstrap CI over prompts",
        control="chance: 0.5 (either name equally)", rule=beats_control_and(0.9),
        rule_text="reproduces if the CI's lower end is above 0.5 and above 0.9; partly if above 0.5 only; fails if its upper end is at or below 0.5",
        min_n=50,
    ),
    Claim(
        id=f"{WANG}.logit_diff", paper=WANG, paper_model=GPT2S, paper_value="mean logit(IO) - logit(S) = 3.56",
        statement="The IO-S logit difference is large and positive",
        statistic="mean logit(IO) - logit(S) at END over held-out IOI prompts; bootstrap CI",
        control="the same difference on the prompts' ABC versions (three other names: no IOI structure)",
        rule=beats_control(margin=1.0),
        rule_text="reproduces if the CI's lower end exceeds the ABC control by more than 1 logit; fails if its upper end is at or below the control",
        min_n=50,
        departures=("ABC control replaces Wang's comparison with no baseline",),
    ),
    Claim(
        id=f"{WANG}.faithfulness", paper=WANG, paper_model=GPT2S, paper_value="F(C)/F(M) ~ 0.87 (3.10 / 3.56)",
        statement="The circuit alone (every other head mean-ablated over the ABC distribution) keeps most of the logit difference",
        statistic="F(C)/F(M), ratio of means over evaluation prompts with a paired bootstrap CI; means from a separate ABC reference set per template",
        control="95th percentile of F/F(M) for random head sets of the circuit's size",
        rule=beats_control_and(0.7),
        rule_text="reproduces if the CI's lower end is above the random-circuit 95th percentile and above 0.7; partly if above the random control only; fails if the CI's upper end is at or below it",
        min_n=20,
        departures=("circuit found by path patching on our own prompts and selection rule, not Wang's hand analysis",
                    "the ablation sweeps run on a subset of the evaluation prompts (n_ablation_prompts)"),
    ),
    Claim(
        id=f"{WANG}.completeness", paper=WANG, paper_model=GPT2S,
        paper_value="small |F(C\\K) - F(M\\K)| for class and random K; greedy K exposes some incompleteness",
        statement="Removing any part K from the circuit hurts about as much as removing K from the whole model",
        statistic="worst |F(C\\K) - F(M\\K)| / F(M) over K = role classes, random halves and greedy sets; paired bootstrap CI for that K",
        control="median |F(C_rand) - F(M)| / F(M) of random same-size circuits (the gap of an arbitrary head set)",
        rule=below_control_and(0.2),
        rule_text="reproduces if the CI's upper end is below the random-circuit gap and below 0.2; partly if below the control only; fails if its lower end is at or above the control",
        min_n=20,
        departures=("greedy search limited to greedy_k steps", "K chosen on the same prompts its gap is measured on"),
    ),
    Claim(
        id=f"{WANG}.minimality", paper=WANG, paper_model=GPT2S, paper_value="every circuit head matters for some K (Fig. 6)",
        statement="Each circuit head changes the circuit's logit difference when removed with the rest of its class",
        statistic="mean over circuit heads of |F(C\\(K+v)) - F(C\\K)| / F(M), K = v's class minus v; bootstrap CI over heads",
        control="95th percentile of |F(C+r) - F(C)| / F(M) for random heads r outside the circuit",
        rule=beats_control(),
        rule_text="reproduces if the CI's lower end is above the null's 95th percentile; fails if its upper end is at or below it",
        min_n=3,
        departures=("one K per head (its class) instead of Wang's hand-chosen K",),
    ),
    Claim(
        id=f"{WANG}.name_movers_attend_io", paper=WANG, paper_model=GPT2S, paper_value="name movers attend END->IO, not S",
        statement="Name movers attend from END to the indirect object more than to the subject",
        statistic="mean over name movers of attention(END->IO) - attention(END->S1+S2) on held-out prompts; bootstrap CI over prompts",
        control="95th percentile of the same statistic for random same-size sets of other heads",
        rule=beats_control(),
        rule_text="reproduces if the CI's lower end is above the random-head 95th percentile; fails if its upper end is at or below it",
        min_n=50,
        departures=("name movers chosen on the discovery prompts, attention measured on held-out prompts",),
    ),
    Claim(
        id=f"{WANG}.backup_name_movers", paper=WANG, paper_model=GPT2S, paper_value="backup name movers take over when name movers are knocked out",
        statement="Knocking out the name movers raises other heads' direct effect on the logit difference",
        statistic="sum of the direct-effect increase (logits) of the m most-increased other heads, m = number of name movers, when the name movers are mean-ablated; bootstrap CI over prompts",
        control="95th percentile of the same statistic when random same-size sets of non-circuit heads are knocked out",
        rule=beats_control(),
        rule_text="reproduces if the CI's lower end is above the random-knockout 95th percentile; fails if its upper end is at or below it",
        min_n=20,
        departures=("direct effect by direct logit attribution with each run's own final-norm scale",),
    ),
    Claim(
        id=f"{MERULLO}.cobj_accuracy", paper=MERULLO, paper_model=GPT2M, paper_value="49.6% accuracy",
        statement="The model answers one-shot Colored Objects questions above chance",
        statistic="share of Colored Objects prompts where the correct colour's logit beats both other colours of the scene; bootstrap CI",
        control="chance: 1/3 (three colours in the scene)", rule=beats_control(),
        rule_text="reproduces if the CI's lower end is above 1/3; fails if its upper end is at or below 1/3",
        min_n=50,
        departures=("our own colour/object lists and wordings in the paper's format (their data are not copied)",),
    ),
    Claim(
        id=f"{MERULLO}.overlap_top2pct", paper=MERULLO, paper_model=GPT2M, paper_value="~78% of in-circuit heads shared (25 of 32)",
        statement="The IOI and Colored Objects circuits share most heads (union over path-patching stages of the top 2% heads)",
        statistic="Jaccard |IOI & CO| / |IOI | CO| of the per-stage top-2% unions; bootstrap CI over discovery prompts",
        control="95th percentile of the Jaccard for random head sets of the same per-stage sizes",
        rule=beats_control_and(0.5),
        rule_text="reproduces if the CI's lower end is above the random-set 95th percentile and above 0.5; partly if above the null only; fails if its upper end is at or below the null",
        min_n=2,
        departures=("senders screened before exact path patching (unscreened heads rank last)",),
    ),
    Claim(
        id=f"{MERULLO}.intervention", paper=MERULLO, paper_model=GPT2M, paper_value="accuracy 49.6% -> 93.7% (4 heads)",
        statement="Making the IOI inhibition / negative-mover heads attend to the wrong colours repairs Colored Objects",
        statistic="Colored Objects accuracy with the intervention on the IOI heads; bootstrap CI over prompts",
        control="95th percentile of the accuracy when random same-size head sets (same layer span) get the same intervention",
        rule=beats_control(),
        rule_text="reproduces if the CI's lower end is above the random-set 95th percentile; fails if its upper end is at or below it",
        min_n=20,
        departures=("heads chosen from our IOI circuit (S-inhibition and negative name movers), not the paper's four",
                    "attention forced uniformly onto both wrong colours"),
    ),
]
