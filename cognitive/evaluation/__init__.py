"""Evaluation: the eval snapshots (snapshots), scoring model outputs (scoring) and running lm-evaluation-harness
on one model or several (harness)."""
