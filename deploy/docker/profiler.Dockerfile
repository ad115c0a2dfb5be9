# syntax=docker/dockerfile:1
# Profiler: owns every profile write (Redis), warms up and re-probes models. No TensorFlow.
#   docker build -f deploy/docker/profiler.Dockerfile -t modipick/profiler:0.1.0 .   (from the repo root)
# The base is pinned by an exact tag (CPython patch release + Debian release), not by digest:
# digests cannot be resolved offline where these files are written; pin `@sha256:` in your mirror.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY deploy/docker/constraints.txt /tmp/constraints.txt
COPY pyproject.toml setup.py README.md ./
COPY protos ./protos
COPY services ./services
COPY clients ./clients
COPY loadgen ./loadgen
RUN /opt/venv/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt ".[tracing]" \
 && if /opt/venv/bin/python -c "import tensorflow" 2>/dev/null; then echo "tensorflow leaked into the profiler image" >&2; exit 1; fi

FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MODIPICK_METRICS_PORT=9090
RUN groupadd --system --gid 10001 modipick \
 && useradd --system --uid 10001 --gid modipick --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modipick
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 50053 9090
# Docker/Compose health; Kubernetes uses its native gRPC probe instead (deploy/k8s).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "modipick.runtime.healthcheck", "127.0.0.1:50053"]
ENTRYPOINT ["modipick", "profiler"]
