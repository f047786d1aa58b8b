"""Configuration of the talking-heads analysis (`interp run talking-heads --help` lists it)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.config import AnalysisConfig, option


@dataclass(frozen=True, kw_only=True)
class Config(AnalysisConfig):
    """Sizes and choices of the talking-heads pipeline (see the package docstring)."""

    QUICK = {
        "n_null": 100, "n_ioi_prompts": 8, "n_senders": 2, "n_duplicates": 1, "n_groups_tested": 3,
        "n_random_controls": 1, "laundry_ns": (2, 3, 4), "n_laundry_prompts": 8, "n_laundry_search_prompts": 8,
        "alphas": (2.0,), "edit_check_prompts": 2,
    }
    # the field defaults are the full preset, sized for ~15 min on one loaded CPU core; LARGE is a
    # bigger run (the paper's own sample sizes were not recoverable): --config a TOML with these keys
    FULL = {}
    LARGE = {"n_ioi_prompts": 100, "n_senders": 4, "n_duplicates": 2, "n_groups_tested": 8, "n_random_controls": 5,
                   "laundry_ns": (2, 3, 4, 5, 6, 8), "n_laundry_prompts": 100, "alphas": (0.0, 2.0, 3.0, 4.0),
                   "composition_modes": ("q", "k", "v")}

    fold_norms: bool = option(True, "fold norm gains into the reading weights before the SVDs")
    rel_tol: float = option(0.01, "relative gap under which singular values form one group (subspace)", ge=0.0, le=1.0)
    composition_modes: tuple[str, ...] = option(("q",), "all-pairs composition score maps to compute (q, k, v)",
                                                choices=("q", "k", "v"))
    sender_mode: str = option("q", "how senders' components are scored against receivers (q: receiver's W_QK)",
                              choices=("q", "k", "v"))
    n_null: int = option(400, "random subspaces per group size for the in-head null (and draws of its max-over-groups null)",
                         ge=20)
    n_ioi_prompts: int = option(24, "built-in IOI prompts for the channel search (a --prompts file is used whole)", ge=4)
    receivers_from: str = option("auto", "receivers: circuit (roles of circuit_run), attention (mover-like heads), "
                                 "dla (top direct logit attribution, the old choice); auto = circuit if circuit_run else attention",
                                 choices=("auto", "circuit", "attention", "dla"))
    senders_from: str = option("auto", "senders: circuit (S-inhibition heads of circuit_run), attention (END->S2 heads), "
                               "weights (best in-head z against the receivers); auto = circuit if circuit_run else attention",
                               choices=("auto", "circuit", "attention", "weights"))
    circuit_run: str = option("", "saved ioi-reuse run folder whose roles table gives the heads ('' = none)")
    receivers: tuple[str, ...] = option((), "explicit receiver heads, e.g. ['L23H0'] (overrides receivers_from)")
    senders: tuple[str, ...] = option((), "explicit sender heads (overrides senders_from)")
    n_receivers: int = option(3, "receivers chosen by attention / DLA", ge=1)
    n_senders: int = option(3, "senders chosen by attention / weights", ge=1)
    n_duplicates: int = option(1, "duplicate-token heads for the duplicate -> inhibition stage (0 skips it)", ge=0)
    receiver_min_layer_frac: float = option(0.5, "receivers by attention come from layers >= this fraction of the depth",
                                            ge=0.0, le=1.0)
    n_groups_tested: int = option(5, "singular-value groups per sender ablated one at a time (by singular value)", ge=1)
    low_rank_k: int = option(2, "directions per sender kept as its inhibition channel (its top groups by in-head z)", ge=1)
    n_random_controls: int = option(2, "random in-head subspaces per control (ablation, swap, edit)", ge=1)
    positional: bool = option(True, "run the inhibition-subspace positional-signal experiment")
    laundry_ns: tuple[int, ...] = option((2, 3, 4, 5), "Laundry List sizes N (accuracy vs N; the edit is scored on all)")
    n_laundry_prompts: int = option(24, "Laundry List prompts per N (first half tunes the edit, second half tests it)", ge=2)
    laundry_search_n: int = option(3, "N of the Laundry List prompts used for the channel search on the task itself", ge=2)
    n_laundry_search_prompts: int = option(24, "Laundry List prompts for that channel search", ge=2)
    alphas: tuple[float, ...] = option((2.0, 4.0), "scales of the channel's components tried by the edit (tuned on the first half)")
    edit_sources: tuple[str, ...] = option(("ioi", "laundry"), "channels the edit may use (found on IOI and/or the Laundry List)",
                                           choices=("ioi", "laundry"))
    edit_check_prompts: int = option(2, "prompts for the weight-edit == hook-edit exactness check", ge=1)
