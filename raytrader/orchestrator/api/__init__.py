"""The REST API (FastAPI) of the orchestrator."""
