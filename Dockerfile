# syntax=docker/dockerfile:1
# Every JuniperMarket image from one file: one target per image, built from the repository root
# (the workspace lock lives there). SERVICE picks the workspace package whose venv goes in:
#   docker build --target orders --build-arg SERVICE=orders -t junipermarket/orders .
#   docker build --target card-sandbox --build-arg SERVICE=card-sandbox -t junipermarket/card-sandbox .
# `make images` builds them all with podman (scripts/images.sh). BASE_IMAGE must have python3.11
# on PATH; UV_IMAGE provides /uv. Where neither can be pulled, scripts/images.sh makes both.
ARG BASE_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# ---- build: the locked dependencies, then the workspace code, into /app/.venv ---------------
FROM ${BASE_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PYTHON=python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Every workspace member's pyproject.toml: uv resolves the workspace from them (cached layer).
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/orders/pyproject.toml services/orders/
COPY services/invoicing/pyproject.toml services/invoicing/
COPY services/payments/pyproject.toml services/payments/
COPY services/notifications/pyproject.toml services/notifications/
COPY services/console/pyproject.toml services/console/
COPY services/card-sandbox/pyproject.toml services/card-sandbox/
COPY ops/pyproject.toml ops/
# The test kit: its pyproject.toml only, for the resolution; --no-dev never installs it.
COPY testkit/pyproject.toml testkit/
ARG SERVICE
# Behind a TLS-intercepting proxy, a CA bundle mounted for the build (scripts/images.sh does).
ARG SSL_CERT_FILE
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=<orders|invoicing|payments|notifications|console|card-sandbox>" >&2; exit 1; }
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "juniper-$SERVICE"
COPY shared/src shared/src
COPY services/${SERVICE}/src services/${SERVICE}/src
# --no-editable: the service and juniper_shared are installed into the venv, so the runtime
# image needs nothing but the venv.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "juniper-$SERVICE"

# ---- runtime: the venv, a non-root user, one process -----------------------------------------
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
COPY --from=build --chown=root:root /app/.venv /app/.venv
# Read-only root filesystem: nothing is written outside /tmp (an emptyDir in Kubernetes).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    HTTP_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001

# ---- the images: each one's port, health check and process ------------------------------------
FROM runtime AS orders
ENV HTTP_PORT=8001
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8001') + '/healthz', timeout=4)"]
CMD ["python", "-m", "orders"]

FROM runtime AS invoicing
ENV HTTP_PORT=8002
EXPOSE 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8002') + '/healthz', timeout=4)"]
CMD ["python", "-m", "invoicing"]

FROM runtime AS payments
ENV HTTP_PORT=8003
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8003') + '/healthz', timeout=4)"]
CMD ["python", "-m", "payments"]

FROM runtime AS notifications
ENV HTTP_PORT=8004
EXPOSE 8004
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8004') + '/healthz', timeout=4)"]
CMD ["python", "-m", "notifications"]

FROM runtime AS console
ENV HTTP_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["python", "-m", "console"]

# The sandbox card processor (development only): its own package and venv, process and port.
FROM runtime AS card-sandbox
ENV SANDBOX_HOST=0.0.0.0 \
    SANDBOX_PORT=8010
EXPOSE 8010
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SANDBOX_PORT', '8010') + '/healthz', timeout=4)"]
CMD ["python", "-m", "card_sandbox"]
