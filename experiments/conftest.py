"""The studies' tests use the suite's shared fixtures (tests/conftest.py: the embedded tokenizer, tiny models)."""

from tests.conftest import embedded_tokenizer, one_thread, tiny_model_dir

__all__ = ["embedded_tokenizer", "one_thread", "tiny_model_dir"]
