"""interp: a mechanistic-interpretability workbench on TransformerLens 4."""

from interp.models import DEFAULT_MODEL, available_models, load_model

__all__ = ["DEFAULT_MODEL", "available_models", "load_model"]
__version__ = "0.1.0"
