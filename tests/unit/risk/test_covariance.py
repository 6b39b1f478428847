"""Covariance estimates: the sample by hand, Ledoit-Wolf against the paper's formula."""

from __future__ import annotations

import numpy as np
import pytest

from raytrader.risk.covariance import covariance


def test_sample_by_hand() -> None:
    # Columns (1, 3, 5) and (2, 6, 10): variances 4 and 16, covariance 8.
    returns = [[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]
    np.testing.assert_allclose(covariance(returns, shrinkage="sample"), [[4, 8], [8, 16]])


def test_one_asset_as_a_vector() -> None:
    np.testing.assert_allclose(covariance([1.0, 3.0, 5.0], shrinkage="sample"), [[4.0]])


def test_ledoit_wolf_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 6)) * 0.01
    # Ledoit & Wolf (2004): shrink S (centred, divided by n) towards m I, m = tr(S) / p, by
    # min(b2, d2) / d2 with d2 = ||S - m I||^2 and b2 = sum_k ||x_k x_k' - S||^2 / n^2.
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    m = np.trace(s) / p
    d2 = np.sum((s - m * np.eye(p)) ** 2)
    b2 = sum(np.sum((np.outer(row, row) - s) ** 2) for row in xc) / n**2
    delta = min(b2, d2) / d2
    expected = (1 - delta) * s + delta * m * np.eye(p)
    assert 0 < delta < 1
    np.testing.assert_allclose(covariance(x), expected, rtol=1e-10)
    np.testing.assert_allclose(covariance(x, shrinkage="ledoit_wolf"), expected, rtol=1e-10)


def test_ledoit_wolf_is_positive_definite_with_fewer_periods_than_assets() -> None:
    x = np.random.default_rng(1).normal(size=(5, 20))
    assert np.linalg.eigvalsh(covariance(x)).min() > 0
    assert np.linalg.eigvalsh(covariance(x, shrinkage="sample")).min() < 1e-12


@pytest.mark.parametrize(
    ("returns", "kwargs", "match"),
    [
        ([[0.01, 0.02]], {}, "at least 2 periods"),
        ([[0.01, np.nan], [0.02, 0.01]], {}, "NaN"),
        (np.zeros((3, 2, 2)), {}, "2-D"),
        ([[0.01, 0.02], [0.02, 0.01]], {"shrinkage": "oas"}, "shrinkage"),
    ],
)
def test_bad_inputs_are_named(returns: object, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        covariance(returns, **kwargs)  # type: ignore[arg-type]
