"""Shared fixtures: tiny random models (fast) and the real SmolLM2 (loaded once)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_gpt2():
    """GPT-2-style random model (LayerNorm, learned positions, biases). Do not mutate."""
    from interp.models import load_model

    return load_model("tiny-gpt2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama():
    """Llama-style random model (RMSNorm, rotary, GQA, gated MLP). Do not mutate."""
    from interp.models import load_model

    return load_model("tiny-llama", seed=0)


@pytest.fixture(scope="session", params=["tiny-gpt2", "tiny-llama"])
def tiny_model(request, tiny_gpt2, tiny_llama):
    """Each tiny architecture in turn. Do not mutate."""
    return tiny_gpt2 if request.param == "tiny-gpt2" else tiny_llama


@pytest.fixture(scope="session")
def smol():
    """The real default model, SmolLM2-135M-Instruct, loaded once per session. Do not mutate."""
    from interp.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def artifacts_dir():
    """Folder for screenshots and other test outputs worth keeping."""
    from pathlib import Path

    d = Path(__file__).resolve().parent.parent / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d
