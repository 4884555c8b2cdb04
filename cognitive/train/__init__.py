"""Training: recipe arguments (args), SFT datasets (sft_data), the modules' auxiliary labels (aux_labels), the
trainer (trainer), the checks before loading (preflight) and the run directory (run)."""
