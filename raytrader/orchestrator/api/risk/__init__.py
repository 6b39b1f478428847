"""Risk: position sizing, pre-trade limit checks, a session's portfolio risk and stress tests.

Each endpoint's request and response models are in ``*_models``, its handler in ``*_routes``;
``returns`` and ``holdings`` hold what the portfolio-risk and stress-test endpoints share.
"""

from fastapi import APIRouter

from raytrader.orchestrator.api.common import SESSION_ERRORS
from raytrader.orchestrator.api.risk import (
    limits_routes,
    sizing_routes,
    stress_routes,
    var_routes,
)

router = APIRouter(prefix="/api/risk", tags=["risk"], responses=SESSION_ERRORS)
for _routes in (sizing_routes, limits_routes, var_routes, stress_routes):
    router.include_router(_routes.router)

__all__ = ["router"]
