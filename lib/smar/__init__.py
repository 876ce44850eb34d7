"""SMAR: whole-page reranking via single-modal supervision, on a Delta lakehouse."""

__version__ = "0.1.0"
