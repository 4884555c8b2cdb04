"""cognitive-slm: fine-tuning stack for cognitive small language models."""

__version__ = "0.1.0"
