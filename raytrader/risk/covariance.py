"""Covariance matrices: estimation from returns and the checks the optimisers share."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Shrinkage = Literal["ledoit_wolf", "sample"]


def covariance(
    returns: npt.ArrayLike, shrinkage: Shrinkage = "ledoit_wolf"
) -> npt.NDArray[np.float64]:
    """Covariance of ``returns`` (rows: periods, columns: assets), per period (not annualised).

    ``"sample"`` is the unbiased sample covariance; ``"ledoit_wolf"`` shrinks it towards a
    scaled identity (Ledoit & Wolf, 2004) and needs scikit-learn (the ``ml`` extra).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"returns must be 2-D (periods x assets), got {x.ndim}-D")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"returns need at least 2 periods and 1 asset, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("returns contain NaN or inf; drop or fill them first")
    if shrinkage == "sample":
        return np.atleast_2d(np.cov(x, rowvar=False, ddof=1)).astype(np.float64)
    if shrinkage == "ledoit_wolf":
        try:
            from sklearn.covariance import LedoitWolf  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                "covariance(shrinkage='ledoit_wolf') needs scikit-learn (the 'ml' extra); "
                "install it or use shrinkage='sample'"
            ) from exc
        fitted = LedoitWolf().fit(x)
        return np.asarray(fitted.covariance_, dtype=np.float64)
    raise ValueError(f"shrinkage must be 'ledoit_wolf' or 'sample', got {shrinkage!r}")


def check_covariance(cov: npt.ArrayLike, name: str = "cov") -> npt.NDArray[np.float64]:
    """``cov`` as a float array, or a ValueError saying why it is not a positive-definite
    covariance matrix. Tiny asymmetries (float noise) are averaged away."""
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError(f"{name} contains NaN or inf")
    scale = float(np.max(np.abs(c)))
    if not np.allclose(c, c.T, rtol=1e-8, atol=1e-12 * scale):
        raise ValueError(f"{name} is not symmetric")
    diag = np.diag(c)
    if (diag <= 0).any():
        bad = int(np.argmax(diag <= 0))
        raise ValueError(f"{name}: variance of asset {bad} is not positive ({diag[bad]!r})")
    c = (c + c.T) / 2
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{name} is not positive definite (estimate it with shrinkage, e.g. Ledoit-Wolf)"
        ) from None
    return c
