"""Registry of analyses for `interp run NAME`, and the one way a run is made.

Every analysis package ``interp.analyses.<method>`` exports the same contract:

    Config                    frozen `interp.config.AnalysisConfig` subclass (quick / full presets)
    CLAIMS                    the papers' claims it tests (`interp.claims.Claim`)
    run_experiment(model, config=None, dataset=None) -> Result   (with a ``claims`` table)
    load_dataset(model, path) -> dataset          only for methods that read prompts

Packages are imported only when asked for, so `interp models` stays fast. `run_analysis`
is what the CLI, `interp rerun` and the dashboard call: it validates the config and the
user's file before any long work, runs, and records the file's path and sha256.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from interp.config import AnalysisConfig, ConfigError


@dataclass(frozen=True)
class Experiment:
    """One entry of the registry: a CLI name, its package and a one-line description."""

    name: str
    package: str
    description: str
    prompts: str = ""  # what --prompts takes, or "" if the method reads no prompt file
    weight_based: bool = False  # reads head weights (OV/QK, W_O W_U): blind to post-attention norms

    def module(self) -> ModuleType:
        try:
            return importlib.import_module(self.package)
        except ModuleNotFoundError as exc:
            raise UnknownExperimentError(f"experiment {self.name!r} is registered but {self.package} is not available: {exc}") from exc

    @property
    def config_class(self) -> type[AnalysisConfig]:
        return self.module().Config

    @property
    def claims(self) -> list[Any]:
        return list(self.module().CLAIMS)

    def config(self, quick: bool = False, seed: int | None = None, config_file: str | Path | None = None,
               assignments: list[str] | tuple[str, ...] = ()) -> AnalysisConfig:
        """Preset, then the TOML file, then ``--set`` assignments, then the seed (validated)."""
        cfg = self.config_class.preset(quick)
        if config_file is not None:
            cfg = cfg.with_toml(config_file)
        if assignments:
            cfg = cfg.with_assignments(assignments)
        if seed is not None:
            cfg = cfg.replace(seed=seed)
        return cfg


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("sanity", "interp.analyses.sanity", "model sanity checks: capital recall, IOI logit difference, induction heads"),
        Experiment("ioi-reuse", "interp.analyses.circuit_reuse", "IOI circuit by path patching and its reuse on Colored Objects",
                   "IOI JSONL (prompt, corrupt_prompt, answer, distractor, ...) or Colored Objects JSONL "
                   "(prompt, corrupt_prompt, answer, corrupt_answer, distractors, object)"),
        Experiment("talking-heads", "interp.analyses.talking_heads", "SVD communication channels between heads, Laundry List",
                   "IOI JSONL (prompts for the channel search) or Laundry List JSONL (prompt, items, answer)",
                   weight_based=True),
        Experiment("embedding-space", "interp.analyses.embedding_space", "parameters projected to vocabulary space, cross-model alignment",
                   "corpus text file (tokens for the alignment statistics)", weight_based=True),
        Experiment("obsprop", "interp.analyses.obsprop", "Observable Propagation feature vectors and coupling coefficients",
                   "observables JSONL ({name, positive: [tokens], negative: [tokens], prompts: [...]})", weight_based=True),
        Experiment("factual-recall", "interp.analyses.factual_recall", "argument heads, MLP amplify/erase, anti-overconfidence",
                   "factual triples JSONL (subject, relation, attribute)"),
        Experiment("bigram-subnetworks", "interp.analyses.bigram_subnetworks", "bigram subnetworks by mask learning",
                   "corpus text file (training and evaluation text)"),
        Experiment("attention-atlas", "interp.analyses.attention_atlas", "joint query-key embeddings of every head (AttentionViz)",
                   "text file, one prompt a line"),
        Experiment("testbeds", "interp.testbeds", "every method on models with planted mechanisms (ground truth)"),
    )
}


class UnknownExperimentError(ValueError):
    """An experiment name not in the registry."""


def get_experiment(name: str) -> Experiment:
    """The registry entry of ``name`` (error lists the available ones)."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment {name!r}; available: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


POST_NORM_DEPARTURE = (
    "the model normalises each attention and MLP output before adding it to the residual "
    "(post-norms, Gemma 2/3); weight-based maps (OV/QK circuits, W_O W_U products) leave out "
    "that per-token gain, so they are approximations here, not the model's exact computation"
)
QK_NORM_DEPARTURE = (
    "queries and keys are RMS-normalised per head before the dot product (QK-norm); weight-based "
    "QK maps (W_Q W_K^T) leave out that per-token scale and its gain, so QK composition and QK token "
    "pairs are approximations here (the attention atlas reads q and k after the norm and is exact)"
)


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports KiB; macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024
    return round(peak * bytes_per_unit / 1e9, 3)


def has_qk_norm(model: Any) -> bool:
    """True for architectures that normalise queries and keys per head (Gemma 3, OLMo 2, ...)."""
    blocks = getattr(getattr(model, "bridge", None), "blocks", None)
    attn = getattr(blocks[0], "attn", None) if blocks else None
    return attn is not None and getattr(attn, "q_norm", None) is not None


def has_post_norms(model: Any) -> bool:
    """True for architectures that normalise a block's outputs before the residual add."""
    return bool(getattr(model, "has_post_norms", False))


def _add_departure(result: Any, text: str) -> None:
    table = result.tables.get("claims")
    if table is None:
        return
    table["departures"] = [f"{d}; {text}" if d else text for d in table["departures"]]


def run_analysis(name: str, model: Any, config: AnalysisConfig, prompts: str | Path | None = None) -> Any:
    """Run analysis ``name`` with a validated ``config`` on the user's ``prompts`` file.

    The file is loaded and validated first (line-numbered errors), so bad input fails
    before any long work; its resolved path and sha256 go into ``result.meta['dataset']``."""
    exp = get_experiment(name)
    mod = exp.module()
    if not isinstance(config, mod.Config):
        raise ConfigError(f"{name} takes a {mod.Config.__name__}, got {type(config).__name__}")
    dataset = None
    dataset_meta: dict[str, Any] | None = None
    if prompts is not None:
        loader = getattr(mod, "load_dataset", None)
        if loader is None:
            raise ConfigError(f"{name} reads no prompt file; --prompts is not accepted")
        path = Path(prompts)
        if not path.is_file():
            raise ConfigError(f"prompt file {path} does not exist or is not a file")
        dataset_meta = {"path": str(path.resolve()), "sha256": file_sha256(path)}
        dataset = loader(model, path)
    import torch

    threads = torch.get_num_threads()
    result = mod.run_experiment(model, config=config, dataset=dataset)
    result.meta["torch_threads_at_start"] = threads
    result.meta["peak_rss_gb"] = peak_rss_gb()
    if exp.weight_based and has_post_norms(model):
        _add_departure(result, POST_NORM_DEPARTURE)
    if exp.weight_based and has_qk_norm(model):
        _add_departure(result, QK_NORM_DEPARTURE)
    if dataset_meta is not None:
        result.meta["dataset"] = dataset_meta
    if result.claims is None:
        raise RuntimeError(f"{name} produced no claims table; every analysis must evaluate its claims")
    return result
