"""Releases: a finished run merged into a model directory (merge), its model card (model_card), chat and serve."""
