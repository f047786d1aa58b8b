"""One claim per method x testbed: the method recovers the planted mechanism and reports
none on the control. Ids: ``testbed.<method>.<testbed>``.

Every value is exact (one construction, no sampling beyond the prompts the construction
answers identically), so the claims carry no CI: ``value`` is the recovery statistic on
the planted model, ``control_value`` the method's result on the control, and the rule
(`interp.testbeds.common.planted_rule`) says reproduces only when both hold.
"""

from __future__ import annotations

from interp.claims import Claim
from interp.testbeds.common import planted_rule

PAPER = "testbed"
MODEL = "hand-set 2-layer GPT-2-shaped models (interp.testbeds)"


def _claim(method: str, testbed: str, statement: str, statistic: str, control: str, min_value: float, max_control: float,
           rule_text: str, departures: tuple[str, ...] = ()) -> Claim:
    return Claim(
        id=f"testbed.{method}.{testbed}", paper=PAPER, paper_model=MODEL, paper_value="recovered; control negative",
        statement=statement, statistic=statistic, control=control, rule=planted_rule(min_value, max_control),
        rule_text=rule_text, min_n=1, departures=departures,
    )


_SET = ("reproduces if the value is 1 (the flagged set equals the planted one) and the control flags nothing; "
        "partly if only one holds")
CLAIMS = [
    _claim("activation_patching", "induction", "Activation patching finds exactly the previous-token and induction heads",
           "Jaccard(flagged heads, {L0H0, L1H0}); flagged = |effect| >= half the planted clean-corrupt gap",
           "heads flagged on the model without a previous-token head", 1.0, 0.0, _SET),
    _claim("path_patching", "induction", "Path patching finds L1H0 -> logits and L0H0 -> L1H0's keys",
           "Jaccard of the (receiver, sender) pairs flagged with {(logits, L1H0), (k, L0H0)}",
           "pairs flagged on the control", 1.0, 0.0, _SET),
    _claim("attribution_patching", "induction", "Attribution patching flags exactly the planted heads",
           "Jaccard(|estimate| >= half the planted gap, {L0H0, L1H0})", "heads flagged on the control", 1.0, 0.0, _SET),
    _claim("staged_discovery", "induction", "The staged (path-patching) discovery returns the induction circuit",
           "Jaccard of (stage, head) pairs with {(logits, L1H0), (keys, L0H0)}",
           "keys-stage heads returned on the control (it has no previous-token -> keys path)", 1.0, 0.0, _SET),
    _claim("atlas_prev_token", "induction", "The atlas' previous-token statistic flags the previous-token head",
           "Jaccard(heads with mean previous-token attention >= 0.5, {L0H0})", "heads flagged on the control", 1.0, 0.0, _SET),
    _claim("staged_discovery", "ioi", "The staged discovery recovers both roles of the IOI-shaped circuit",
           "Jaccard of (head, role) pairs with {L1H0, L1H1: name mover; L0H0, L0H1: s-inhibition}",
           "heads given the s-inhibition role on the model without inhibition", 1.0, 0.0, _SET),
    _claim("faithfulness", "ioi", "Faithfulness of the planted circuit is 1; of a distractor 'circuit' about 0",
           "F(C)/F(M) with mean ablation over the ABC prompts", "|F(distractors)/F(M)|", 0.99, 0.2,
           "reproduces if the planted circuit's faithfulness >= 0.99 and the distractors' |faithfulness| <= 0.2"),
    _claim("completeness", "ioi", "Completeness: the planted circuit's gap is 0; a circuit missing a role shows a gap",
           "1 - worst |F(C\\K) - F(M\\K)| / F(M) (greedy K, 2 steps)",
           "the same statistic for the movers alone (inhibition role missing)", 0.99, 0.9,
           "reproduces if the planted circuit scores >= 0.99 and the incomplete one <= 0.9"),
    _claim("reuse_overlap", "ioi", "The reuse overlap of two tasks is exactly their shared heads",
           "Jaccard(heads in both discovered circuits, {L1H0, L1H1})",
           "shared heads found when the two tasks have separate movers", 1.0, 0.0, _SET),
    _claim("svd_channel", "channel", "The SVD channel search ranks the planted rank-1 component first",
           "1 if the sender's component with the largest composition z-score against the receiver's queries spans the "
           "planted channel (|cos| >= 0.99) with z >= 3", "largest z of any sender component on the control", 1.0, 3.0,
           "reproduces if the planted component ranks first with z >= 3 and the control's largest z < 3"),
    _claim("weight_edit", "channel", "Scaling the channel component changes the receiver's attention as predicted",
           "1 - max |receiver attention after the method's edit - attention of the hand-edited model| (alphas 0, 0.5, 2), "
           "0 if the edit removes < 0.5 of the attention", "attention change when editing the control's top component",
           0.999, 0.01, "reproduces if the edit matches the prediction to 1e-3 and moves the control by <= 0.01"),
    _claim("obsprop_feature", "feature", "ObsProp returns the planted feature direction for the observable",
           "cos(feature vector of the most important head, planted f1) (0 if that head is not the planted L1H0)",
           "|cos| of the control's feature vector with f1 (its head reads another direction)", 0.99, 0.1,
           "reproduces if the cosine is >= 0.99 and the control's |cos| <= 0.1"),
    _claim("obsprop_coupling", "feature", "The coupling coefficient equals the planted coupling",
           "1 - |C(n1 -> n2) - kappa| at the feature head (kappa = 0.6 by construction)", "|C| on the control (planted 0)",
           0.99, 0.01, "reproduces if |C - kappa| <= 0.01 and the control's |C| <= 0.01"),
    _claim("embedding_alignment", "twin", "Vocabulary-space alignment recovers the neuron permutation of a functional twin",
           "fraction of neurons whose best match is their permuted partner", "the same fraction against an unrelated model",
           1.0, 0.2, "reproduces if every neuron is recovered and the unrelated model scores <= 0.2"),
    _claim("embedding_projection", "twin", "Projection reads back a neuron's planted key and value tokens",
           "1 if the top-1 embedding token of the key and top-1 unembedding token of the value are the planted A and B",
           "the same readback on an unplanted model", 1.0, 0.0, _SET),
    _claim("bigram_mask", "bigram", "The bigram mask keeps exactly the planted bigram weights of the first MLP",
           "F1 of kept vs planted nonzero weights (precision and recall in the finding)",
           "kept share of the control's nonzero weights (its MLP holds no bigram)", 0.99, 0.05,
           "reproduces if F1 >= 0.99 and the control keeps <= 5% of its weights"),
    _claim("factual_heads", "factual", "The factual-recall head measures label exactly the planted subject mover",
           "Jaccard(heads with END->subject attention >= 0.5 and patching effect >= 0.5, {L0H0})",
           "heads so labelled on the control", 1.0, 0.0, _SET),
    _claim("factual_mlp", "factual", "The MLP logit lens labels exactly the planted subject -> attribute MLP",
           "Jaccard(MLPs whose END output ranks the answer first (median), {MLP1})", "MLPs so labelled on the control",
           1.0, 0.0, _SET),
]
