# syntax=docker/dockerfile:1
# Load generator: replays network traces against a Selector endpoint (Envoy in Compose). No TensorFlow;
# matplotlib (the `sim` extra) for the report plots.
#   docker build -f deploy/docker/loadgen.Dockerfile -t modipick/loadgen:0.1.0 .   (from the repo root)
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
RUN /opt/venv/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt ".[sim]" \
 && if /opt/venv/bin/python -c "import tensorflow" 2>/dev/null; then echo "tensorflow leaked into the loadgen image" >&2; exit 1; fi

FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 modipick \
 && useradd --system --uid 10001 --gid modipick --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modipick \
 && mkdir -p /traces /reports \
 && chown 10001:10001 /reports
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /reports
# A client, not a server: nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["modipick", "loadgen"]
