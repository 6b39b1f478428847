"""Shared test settings."""

from __future__ import annotations

import os

# Plots are written to files in tests, never shown.
os.environ.setdefault("MPLBACKEND", "Agg")
