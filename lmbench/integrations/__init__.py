"""The tools users already work in: Hugging Face datasets (corpora) and lm-evaluation-harness (both ways)."""
