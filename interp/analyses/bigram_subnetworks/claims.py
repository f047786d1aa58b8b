"""Chang & Bergen (2025), "Bigram Subnetworks": the claims each run tests.

Every claim on a learned mask requires the mask to have converged (the authors' stop rule:
fewer undecided entries than 1% of the kept ones): an Evidence whose departures contain
`interp.claims.NOT_CONVERGED` is ``inconclusive`` whatever its numbers, because an
unconverged mask's density is set by the step budget, not by the objective. The same holds
when the masked model is a small LM trained here that did not meet its own convergence rule.
"""

from __future__ import annotations

from interp.claims import (
    FAILS,
    INCONCLUSIVE,
    PARTLY,
    REPRODUCES,
    Claim,
    Evidence,
    beats_control,
    needs_convergence,
)

PAPER = "chang2025"
PAPER_MODELS = "Pythia 70M-1B, GPT-2 small-large, OLMo 1B (fully trained)"
SIZE_LIMIT = 0.002


def _lo_hi(ev: Evidence) -> tuple[float, float]:
    lo = ev.ci_low if ev.ci_low is not None else ev.value
    hi = ev.ci_high if ev.ci_high is not None else ev.value
    return float(lo), float(hi)


def size_rule(ev: Evidence) -> str:
    """Kept share (over both bigram seeds) below 0.2%: reproduces; above: fails."""
    lo, hi = _lo_hi(ev)
    if hi < SIZE_LIMIT:
        return REPRODUCES
    if lo > SIZE_LIMIT:
        return FAILS
    return INCONCLUSIVE


def first_mlp_rule(ev: Evidence) -> str:
    """Share of kept weights in the first MLP: above its share of masked weights and a majority
    on both seeds: reproduces; above its share but no majority: partly; at or below: fails."""
    if ev.control_value is None:
        return INCONCLUSIVE
    lo, hi = _lo_hi(ev)
    if lo > ev.control_value:
        return REPRODUCES if lo > 0.5 else PARTLY
    if hi <= ev.control_value:
        return FAILS
    return INCONCLUSIVE


def function_rule(ev: Evidence) -> str:
    """r above the control's r and above 0.9: reproduces; above the control only: partly."""
    v = beats_control()(ev)
    if v != REPRODUCES:
        return v
    return REPRODUCES if _lo_hi(ev)[0] > 0.9 else PARTLY


def lower_than_control(ev: Evidence) -> str:
    """The whole CI below the control: reproduces; the whole CI at or above it: fails."""
    if ev.control_value is None:
        return INCONCLUSIVE
    lo, hi = _lo_hi(ev)
    if hi < ev.control_value:
        return REPRODUCES
    if lo >= ev.control_value:
        return FAILS
    return INCONCLUSIVE


def overlap_rule(ev: Evidence) -> str:
    """Both bigram seeds' Jaccard with the pruning mask (the interval's ends) above every
    control (unigram-target mask, shuffle-null 95% quantile): reproduces; both at or below
    the strongest control: fails."""
    if ev.control_value is None:
        return INCONCLUSIVE
    lo, hi = _lo_hi(ev)
    if lo > ev.control_value:
        return REPRODUCES
    if hi <= ev.control_value:
        return FAILS
    return PARTLY if hi > ev.control_value else INCONCLUSIVE


CONVERGENCE_DEPARTURE = ("masks are trained to the authors' stop rule; a mask that hit the step budget makes the "
                         "claim inconclusive")

CLAIMS = [
    Claim(
        id=f"{PAPER}.size",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="< 0.2% of model parameters (the bigram subnetwork)",
        statement="A bigram subnetwork keeps fewer than 0.2% of the model's block weights",
        statistic="kept weights / all maskable block weights of the whole model (attention and MLP matrices of every "
                  "layer; embeddings, unembedding, norms and biases never masked); interval = the two bigram seeds",
        control="kept share of a unigram-target mask trained with the same protocol (reported; the rule is the paper's 0.2% bound)",
        rule=needs_convergence(size_rule),
        rule_text="reproduces if both seeds' kept share < 0.2% (converged masks); fails if both > 0.2%",
        min_n=1,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.first_mlp",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="concentrated in the first MLP layer",
        statement="The bigram subnetwork's kept weights are concentrated in the first MLP",
        statistic="share of the kept weights that sit in layer 0's MLP matrices; interval = the two bigram seeds",
        control="layer 0 MLP's share of the masked weights (where a mask spread uniformly would put its weights)",
        rule=needs_convergence(first_mlp_rule),
        rule_text="reproduces if both seeds put more of the mask in the first MLP than its weight share and a majority; "
                  "partly if above its share only; fails if at or below its share",
        min_n=1,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.function",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="r > 0.9 (up to 0.95+) between subnetwork and bigram surprisal",
        statement="The bigram subnetwork alone predicts bigram surprisal",
        statistic="Pearson r, subnetwork vs bigram surprisal (bits) on held-out tokens, unseen bigrams dropped as the "
                  "authors do; 95% CI by resampling windows",
        control="the better r of the full model and of the unigram-target mask (neither is a bigram model)",
        rule=needs_convergence(function_rule),
        rule_text="reproduces if the CI is above the control and above 0.9; partly if above the control only; "
                  "fails if at or below the control",
        min_n=200,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.necessity",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="removing the subnetwork (< 0.2% of weights) cripples the model",
        statement="Removing the bigram subnetwork hurts the full model more than removing random weights of the same per-matrix sizes",
        statistic="per held-out window, NLL(complement) - mean NLL(random same-size removals) in nats; mean and bootstrap CI",
        control="0 (random removals, several draws)",
        rule=needs_convergence(beats_control()),
        rule_text="reproduces if the CI of the NLL difference lies above 0; fails if it lies at or below 0",
        min_n=10,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.sufficiency",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="the subnetwork alone recreates bigram predictions",
        statement="The subnetwork alone is closer to the bigram distribution than the model without block weights and than a unigram-target subnetwork",
        statistic="per held-out window, cross-entropy from the bigram distribution to the subnetwork-only model (nats); "
                  "mean and bootstrap CI",
        control="the lower of: the same cross-entropy for the model with every block matrix removed (embedding -> "
                "final norm -> unembedding, the direct path) and for the unigram-target mask alone",
        rule=needs_convergence(lower_than_control),
        rule_text="reproduces if the CI lies below the control; fails if it lies at or above it",
        min_n=10,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.overlap_optimal_pruning",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="overlap significantly above the within-matrix shuffle baseline (p < 0.001)",
        statement="The bigram subnetwork overlaps the optimal-pruning subnetwork beyond what the schedule and the target-free pressure explain",
        statistic="Jaccard index between each bigram mask (two seeds / data orders) and the pruning mask (trained on a "
                  "third seed and data order); value = first seed, interval = the two seeds",
        control="the largest of: Jaccard(bigram, unigram-target mask trained like the pruning mask) for each seed, "
                "and the 95% quantile of the within-matrix shuffle null",
        rule=needs_convergence(overlap_rule),
        rule_text="reproduces if both seeds' Jaccard with the pruning mask exceed every control; partly if one does; "
                  "fails if neither does",
        min_n=1,
        departures=(CONVERGENCE_DEPARTURE,),
    ),
    Claim(
        id=f"{PAPER}.first_layer_transformation",
        paper=PAPER,
        paper_model=PAPER_MODELS,
        paper_value="the first layer induces a sharp change toward next-token predictions",
        statement="Block 0 makes the largest move of the residual stream toward the model's next-token prediction, and the complement of the bigram subnetwork loses it",
        statistic="per held-out test window, rise of the ridge R^2 (residual -> final residual) across block 0 in the "
                  "full model; mean and bootstrap CI",
        control="the larger of: the biggest rise across any later block (the last excluded: its output is the target) "
                "in the full model, and the rise across block 0 in the complement (subnetwork removed)",
        rule=needs_convergence(beats_control()),
        rule_text="reproduces if the CI lies above the control; fails if it lies at or below it",
        min_n=8,
        departures=(
            "ridge maps to the RMS-normalised final residual and to the input embedding (held-out R^2), not the "
            "authors' tuned-lens surprisal correlation and input-token recall",
            CONVERGENCE_DEPARTURE,
        ),
    ),
]
