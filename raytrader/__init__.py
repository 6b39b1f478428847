"""raytrader: an actor-based async trading orchestrator."""

__version__ = "0.1.0"
