"""Text for the bigram-subnetwork analysis: the user's corpus file, documents -> token windows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Int

from interp.analyses.bigram_subnetworks.masks import MaskError
from interp.data.corpus import Corpus, load_corpus


class CorpusFileError(ValueError):
    """A corpus text file that cannot be used (names the file and the line)."""


def load_dataset(model: Any, path: str | Path) -> Corpus:
    """A user's corpus text file (documents separated by blank lines; the last 10% of
    documents in a seeded order are held out), checked before any long work: UTF-8 on
    every line, at least two documents, and enough tokens for a few windows."""
    p = Path(path)
    if not p.is_file():
        raise CorpusFileError(f"{p}: no such file")
    raw = p.read_bytes()
    for i, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusFileError(f"{p}:{i}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    corpus = load_corpus(p)
    if len(corpus.documents) < 2:
        raise CorpusFileError(f"{p}: needs at least 2 documents (blocks separated by a blank line) for a train and a "
                              f"held-out split; found {len(corpus.documents)}")
    n_tok = sum(len(x) for x in model.tokenizer(corpus.split("heldout"), add_special_tokens=False)["input_ids"])
    if n_tok < 64:
        raise CorpusFileError(f"{p}: the held-out split has only {n_tok} tokens (need at least 64)")
    return corpus


def tokenize_docs(corpus: Corpus, tokenizer: Any, split: str, max_docs: int | None = None) -> list[list[int]]:
    """Token ids of the documents of a corpus split (the first ``max_docs`` if given)."""
    docs = corpus.split(split)
    if max_docs:
        docs = docs[:max_docs]
    return tokenizer(list(docs), add_special_tokens=False)["input_ids"]


def windows_from_docs(
    docs: Sequence[Sequence[int]], seq_len: int, n: int | None, seed: int, sep: int | None
) -> Int[torch.Tensor, "n seq_len"]:
    """Non-overlapping windows of the documents joined by ``sep`` (as `Corpus.token_stream`);
    ``n`` drawn without replacement with ``seed`` (all, in a seeded order, if None)."""
    stream: list[int] = []
    for d in docs:
        stream.extend(d)
        if sep is not None:
            stream.append(sep)
    n_avail = len(stream) // seq_len
    if n_avail == 0 or (n is not None and n > n_avail):
        raise MaskError(f"{len(stream)} tokens give {n_avail} windows of {seq_len}; asked for {n} (use more documents)")
    w = torch.tensor(stream[: n_avail * seq_len], dtype=torch.long).view(n_avail, seq_len)
    perm = torch.randperm(n_avail, generator=torch.Generator().manual_seed(seed))
    return w[perm[:n]] if n is not None else w[perm]


KEPT_TOKENS_FILE = "kept_tokens.json"


def vocab_remap(model: Any) -> np.ndarray | None:
    """Tokenizer id -> model id for a model trained on a reduced vocabulary (a small LM whose
    folder holds ``kept_tokens.json``: model id i is tokenizer id kept[i], every other token
    is the UNK id len(kept)); None when the model's vocabulary is the tokenizer's."""
    n_tok = len(model.tokenizer)
    if model.cfg.d_vocab >= n_tok:
        return None
    f = Path(str(model.name)).expanduser() / KEPT_TOKENS_FILE
    if not f.is_file():
        raise MaskError(f"{model.name}: {model.cfg.d_vocab} model tokens but {n_tok} tokenizer tokens and no {KEPT_TOKENS_FILE}")
    kept = np.asarray(json.loads(f.read_text()), dtype=np.int64)
    if len(kept) >= model.cfg.d_vocab + 1 or kept.min() < 0 or kept.max() >= n_tok:
        raise MaskError(f"{f}: {len(kept)} kept ids do not fit a {model.cfg.d_vocab}-token model")
    table = np.full(n_tok, len(kept), dtype=np.int64)
    table[kept] = np.arange(len(kept))
    return table


def model_token_ids(model: Any, docs: list[list[int]], sep: int | None) -> tuple[list[list[int]], int | None]:
    """Documents and separator in the model's token ids (`vocab_remap`; unchanged if none)."""
    table = vocab_remap(model)
    if table is None:
        return docs, sep
    return [table[np.asarray(d, dtype=np.int64)].tolist() for d in docs], (int(table[sep]) if sep is not None else None)
