"""Whole-volume inference with a trained run: patches, combination, difference scores, outputs."""
