"""Model sources: offline registry packages, local folders, the hub, tiny test models."""

from interp.models.assets import ASSETS, AssetError, cache_root, fetch_asset
from interp.models.registry import (
    DEFAULT_MODEL,
    ModelInfo,
    UnknownModelError,
    available_models,
    load_model,
    smollm2_cache_dir,
)

__all__ = [
    "ASSETS",
    "AssetError",
    "DEFAULT_MODEL",
    "ModelInfo",
    "UnknownModelError",
    "available_models",
    "cache_root",
    "fetch_asset",
    "load_model",
    "smollm2_cache_dir",
]
