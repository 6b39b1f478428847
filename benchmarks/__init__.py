"""Reproducible speed comparisons with peer backtesters (not tests; see README.md)."""
