# One image for the API, the Ray head and the Ray workers (the entry point decides the role).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

WORKDIR /app

# torch from PyTorch's CPU index: the constraints pin the CPU build, never CUDA.
COPY constraints.txt ./
RUN pip install -c constraints.txt torch --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY raytrader ./raytrader
COPY configs ./configs
RUN pip install -c constraints.txt '.[all]' \
    && useradd --create-home --uid 10001 raytrader \
    && mkdir -p /app/runs /app/data && chown -R raytrader /app/runs /app/data

USER 10001
ENV RAYTRADER_RUNS_DIR=/app/runs RAYTRADER_DATA_DIR=/app/data
ENTRYPOINT ["raytrader"]
CMD ["demo"]
