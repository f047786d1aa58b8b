"""Offline tokenizers: the real GPT-2 BPE and SmolLM2's, saved as HF tokenizer folders.

TransformerBridge reloads tokenizers by path (to switch on BOS), so every tokenizer we
hand it must live in a folder that ``AutoTokenizer.from_pretrained`` can read.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from interp.models.assets import atomic_dir, cache_root, require_asset


def gpt2_tokenizer_dir() -> Path:
    """Folder with the real GPT-2 tokenizer (built once from the registry asset)."""
    final = cache_root() / "tokenizers" / "gpt2"
    if (final / "tokenizer.json").is_file():
        return final
    src = require_asset("gpt2-tokenizer")

    def build(tmp: Path) -> None:
        from tokenizers import ByteLevelBPETokenizer
        from transformers import PreTrainedTokenizerFast

        bpe = ByteLevelBPETokenizer(str(src / "encoder.json"), str(src / "vocab.bpe"))
        tok = PreTrainedTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            model_max_length=1024,
        )
        tok.save_pretrained(tmp)

    return atomic_dir(final, build)


def load_gpt2_tokenizer() -> PreTrainedTokenizerBase:
    """The GPT-2 tokenizer ("Hello world" -> [15496, 995])."""
    return AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))


def load_smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2's tokenizer, from the safetensors cache of the default model."""
    from interp.models.registry import smollm2_cache_dir

    return AutoTokenizer.from_pretrained(str(smollm2_cache_dir()))
