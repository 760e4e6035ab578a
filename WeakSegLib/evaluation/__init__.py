"""Evaluation: metrics, scoring of label maps against masks, review quality, text tables and the
HTML report. It reads outputs and metrics only; training and inference never need it, except the
metrics module, which stages use to report how their artefacts compare with masks."""
