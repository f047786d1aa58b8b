"""Claims of Merullo, Eickhoff & Pavlick (2024), "Talking Heads", tested by every run.

What could be recovered of the paper's protocol: the abstract, the Figure 2 caption
(composition score of inhibition-head components with mover head 9.9 vs a data-based
inhibition score; the inhibition is concentrated in one or two components; removing them
makes the mover worse at down-weighting one of the names), the 3D inhibition subspace that
positionally indexes list items, and the > 20 % Laundry List improvement from weight edits
and representation interventions. The linked repository (jmerullo/talking_heads) holds only
a README in the stored copy, so the exact formulas, thresholds, templates and edit settings
are this project's choices and listed as departures.
"""

from __future__ import annotations

from interp.claims import (
    FAILS,
    INCONCLUSIVE,
    PARTLY,
    REPRODUCES,
    Claim,
    Evidence,
    _ci,
    beats_control,
    beats_control_and,
)

PAPER = "Merullo, Eickhoff & Pavlick 2024 (Talking Heads, NeurIPS)"
MODEL = "GPT-2 small (and Pythia-160m)"

COMMON = (
    "model: SmolLM2-135M (30 layers, grouped-query attention, RMSNorm) instead of GPT-2 small / Pythia-160m",
    "roles (receivers = mover-like heads, senders = inhibition-like heads) come from an IOI circuit run when "
    "circuit_run is given, otherwise from an attention criterion (this project's; the paper uses the known GPT-2 IOI heads)",
)
INHIBITION_SCORE = (
    "inhibition score = rise of the receiver's END attention to the repeated name when the component is projected "
    "out of the sender's output at END (the paper's exact formula was not recoverable)"
)
NULL = (
    "weight z-scores use random subspaces inside the sender's own OV output space with a max-over-groups "
    "correction (this project's null; the paper reports raw composition scores)"
)
TEMPLATES = "Laundry List templates and items are this project's own (the paper's were not recoverable)"


def edit_rule(margin: float) -> callable:
    """Reproduces when the CI is above control + ``margin``; partly when above the control
    only; fails when the CI's upper end is at or below the control."""

    def rule(ev: Evidence) -> str:
        if ev.control_value is None:
            return INCONCLUSIVE
        lo, hi = _ci(ev)
        if lo > ev.control_value + margin:
            return REPRODUCES
        if lo > ev.control_value:
            return PARTLY
        if hi <= ev.control_value:
            return FAILS
        return INCONCLUSIVE

    return rule


CLAIMS = [
    Claim(
        id="merullo2024.weights_predict_channels",
        paper=PAPER,
        paper_model=MODEL,
        paper_value="components with high composition score are the ones whose removal hurts the mover's inhibition (Fig. 2)",
        statement="A sender component's composition score with a receiver (weights only) predicts its data-based inhibition score",
        statistic="Spearman correlation over (sender group, receiver) pairs between the group's in-head z against the "
                  "receiver's QK and its inhibition score on IOI prompts; 95% CI by bootstrap over pairs",
        control="permutation null: 95th percentile of the Spearman correlation with the inhibition scores shuffled",
        rule=beats_control_and(0.3),
        rule_text="reproduces if the CI's lower end is above the permutation null and above 0.3; partly if above the "
                  "null only; does not reproduce if the CI's upper end is at or below the null",
        min_n=12,
        departures=COMMON + (INHIBITION_SCORE, NULL,
                             "groups tested per sender: the first n_groups_tested by singular value (not by score), "
                             "so the data side is not selected on the weight score"),
    ),
    Claim(
        id="merullo2024.low_rank_inhibition",
        paper=PAPER,
        paper_model=MODEL,
        paper_value="inhibition concentrated in 1-2 components of each inhibition head (Fig. 2)",
        statement="The senders' inhibition signal lives in a few low-rank components picked from the weights",
        statistic="share of the senders' whole inhibition effect carried by their top low_rank_k directions (chosen by "
                  "in-head z): rise of the receivers' END attention to the repeated name with the top directions ablated "
                  "at END, divided by the rise with the senders' whole outputs ablated at END; bootstrap over prompts",
        control="the same share for random subspaces of equal size inside each sender's own output space (mean of draws)",
        rule=beats_control_and(0.5),
        rule_text="reproduces if the CI's lower end is above the random-subspace share and above 0.5; partly if above the "
                  "random share only; does not reproduce if the CI's upper end is at or below it",
        min_n=8,
        departures=COMMON + (INHIBITION_SCORE, NULL,
                             "all senders are ablated together (one joint effect) rather than one inhibition head at a time"),
    ),
    Claim(
        id="merullo2024.laundry_accuracy_falls",
        paper=PAPER,
        paper_model=MODEL,
        paper_value="accuracy falls as the list grows (items crowd the inhibition subspace)",
        statement="Laundry List accuracy falls as the number of items N grows, beyond the fall of chance",
        statistic="chance-corrected accuracy (acc - 1/N) / (1 - 1/N) at the smallest N minus at the largest N "
                  "(unedited model, all prompts); bootstrap over prompts within each N",
        control="0: a model whose accuracy only follows chance shows no fall of chance-corrected accuracy",
        rule=beats_control(margin=0.1),
        rule_text="reproduces if the CI's lower end is above 0.1; does not reproduce if its upper end is at or below 0",
        min_n=16,
        departures=COMMON[:1] + (TEMPLATES, "accuracy = the answer has the highest logit among the N listed items"),
    ),
    Claim(
        id="merullo2024.laundry_list_edit",
        paper=PAPER,
        paper_model=MODEL,
        paper_value="> 20% accuracy improvement (often) from editing the inhibition components",
        statement="Scaling the inhibition channel's components with an exact weight edit improves Laundry List accuracy",
        statistic="held-out accuracy change (edited - unedited, paired per prompt, pooled over N); the channel (found "
                  "on IOI or on the Laundry List itself) and alpha are chosen on the tuning half of the prompts",
        control="the same edit (same heads, same number of directions, same alpha) on random directions inside the "
                "same heads' output spaces (mean over draws)",
        rule=edit_rule(0.2),
        rule_text="reproduces if the CI's lower end is above the random-edit change + 0.2; partly if above the random-edit "
                  "change only; does not reproduce if the CI's upper end is at or below it",
        min_n=20,
        departures=COMMON + (TEMPLATES,
                             "edit: W_O <- W_O (I + (alpha - 1) v v^T) for the channel's directions at all positions; "
                             "the paper's components, scales and positions were not recoverable",
                             "the paper's representation-space intervention on the Laundry List is not run"),
    ),
    Claim(
        id="merullo2024.inhibition_positional_signal",
        paper=PAPER,
        paper_model=MODEL,
        paper_value="a 3D inhibition subspace in GPT-2 can be traversed to positionally index items",
        statement="The senders' inhibition components say which mention to inhibit by position: moving them to the other "
                  "name order's values steers the movers' attention toward the repeated name",
        statistic="per prompt, change of the receivers' END attention (repeated name minus answer) when each sender's "
                  "top-direction coordinates at END are set to the mean of the prompts with the opposite name order "
                  "(ABBA <-> BABA); bootstrap over prompts",
        control="the larger of two controls: the same swap in random subspaces of equal size inside each sender's own "
                "output space (mean of draws), and setting the top-direction coordinates to the mean of the prompt's own "
                "name order (same-size intervention that keeps the order)",
        rule=beats_control(margin=0.0),
        rule_text="reproduces if the CI's lower end is above the control; does not reproduce if its upper end is at or "
                  "below it",
        min_n=8,
        departures=COMMON + (NULL,
                             "one traversal point (the opposite order's mean) per prompt instead of the paper's sweep "
                             "through a 3D subspace; subspace = each sender's top low_rank_k directions"),
    ),
]
