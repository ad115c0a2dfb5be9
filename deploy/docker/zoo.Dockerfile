# syntax=docker/dockerfile:1
# Model builder (one-shot job): `modipick zoo build` writes SavedModels in TF Serving layout plus
# models.config and manifest.json into /models (a shared volume read by TF Serving and the Executor).
#   docker build -f deploy/docker/zoo.Dockerfile -t modipick/zoo:0.1.0 .   (from the repo root)
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
RUN /opt/venv/bin/pip install --no-cache-dir --constraint /tmp/constraints.txt ".[executor]"

FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODIPICK_ZOO_CACHE=/models
RUN groupadd --system --gid 10001 modipick \
 && useradd --system --uid 10001 --gid modipick --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modipick \
 && mkdir -p /models \
 && chown 10001:10001 /models
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# A fresh named volume mounted here inherits this directory's owner, so the non-root build can write.
VOLUME ["/models"]
# A one-shot job, not a server: nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["modipick", "zoo"]
CMD ["build", "--pool", "digits", "--out", "/models"]
