"""Artifacts: where weights, datasets, code and wheels come from, and where they are kept."""
