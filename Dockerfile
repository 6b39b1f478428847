# One image for the API, the Ray head and the Ray workers. The API runs the image's entry
# command (`raytrader serve`); on Kubernetes, KubeRay replaces the command of the head and
# worker containers with its own `ray start`, so the same image is every role.
#
# Build from the repository root: docker build -t raytrader:0.1.0 .

# The base image is named once so both stages share the same Python (the venv is copied).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: a venv in /opt/venv
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# constraints.txt is the lock: an exact version of every package the image installs. torch first
# and on its own layer: the lock pins the CPU build, which only PyTorch's CPU index carries
# (PyPI's default wheel is the multi-GB CUDA build).
COPY constraints.txt ./
RUN pip install -c constraints.txt torch --index-url https://download.pytorch.org/whl/cpu

# Ray's version is pinned here and checked against the manifests' rayVersion by the tests: the
# image's Ray must match the cluster's exactly. The extras bring what the cluster needs beyond
# the library: the dashboard agent that KubeRay's probes ask (default) and Ray Client (client).
ARG RAY_VERSION=2.60.0
COPY pyproject.toml README.md ./
COPY raytrader ./raytrader
# A non-editable install: the runtime stage needs the venv only, not the sources.
RUN pip install -c constraints.txt ".[all]" "ray[default,client]==${RAY_VERSION}"

# ---------------------------------------------------------------- runtime: venv + configs only
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    MPLBACKEND=Agg

# A fixed uid/gid so the manifests' securityContext (runAsUser/fsGroup 10001) matches the files.
RUN groupadd --gid 10001 raytrader \
    && useradd --uid 10001 --gid 10001 --create-home --shell /bin/bash raytrader \
    && mkdir -p /app/data /app/runs \
    && chown -R 10001:10001 /app

COPY --from=build /opt/venv /opt/venv
COPY --chown=10001:10001 configs /app/configs

WORKDIR /app
USER 10001:10001

# Settings of `raytrader serve` in a container: listen on every interface (the pod's network is
# the boundary, and the API key guards the endpoints), JSON logs for the log collector, state and
# runs under /app (volumes on Kubernetes). No secret here: RAYTRADER_API_KEY and
# RAYTRADER_REDIS_URL come from the orchestrator's Secrets at run time.
ENV RAYTRADER_HOST=0.0.0.0 \
    RAYTRADER_PORT=8000 \
    RAYTRADER_DATA_DIR=/app/data \
    RAYTRADER_RUNS_DIR=/app/runs \
    RAYTRADER_LOG_JSON=1 \
    RAYTRADER_LOG_LEVEL=info

EXPOSE 8000

# /health answers as soon as the process serves; /ready (actors and store) is for the
# orchestrator's readiness probe. Kubernetes ignores HEALTHCHECK and uses the manifests' probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RAYTRADER_PORT', '8000') + '/health', timeout=4)"]

ENTRYPOINT ["raytrader"]
CMD ["serve"]
