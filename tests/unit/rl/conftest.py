"""RL tests: one torch thread (deterministic and light on a shared machine)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

import torch

torch.set_num_threads(1)
