"""Reinforcement learning on the checkers (recipes/grpo.py): rewards, prompts and the GRPO trainer. The top layer: it
builds on training (cognitive.train), the scorers (cognitive.evaluation) and finished runs (cognitive.release)."""
