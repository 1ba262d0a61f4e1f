# Julia: one image for the three Railway services (RUN_MODE=api|worker|scheduler).
# Checked by hand against hadolint's rules (no Docker engine where it was written);
# CI builds it and smoke-tests it (.github/workflows/ci.yml, job "docker").

# uv comes from its own pinned image, not from a download script.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# ---------------------------------------------------------------------------
# builder: resolve the locked dependencies into /app/.venv
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

COPY --from=uv /uv /uvx /bin/

# Bytecode compiled at build time; copy (not hardlink) out of uv's store; the
# image's own Python, never a downloaded one; no cache left in a layer
# (Railway rejects cache mounts without its service-id prefix).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself, installed editable so app/store/schema.py finds
# db/, alembic/ and alembic.ini beside the package at /app.
COPY README.md alembic.ini ./
COPY app/ ./app/
COPY db/ ./db/
COPY alembic/ ./alembic/
RUN uv sync --frozen --no-dev \
    && /app/.venv/bin/python -m compileall -q app alembic

# ---------------------------------------------------------------------------
# runtime: the venv and the source it points at, nothing else
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 julia \
    && useradd --system --no-log-init --uid 10001 --gid julia \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin julia

WORKDIR /app

# Owned by root and read-only for the process: the app writes nothing here.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/app /app/app
COPY --from=builder /app/db /app/db
COPY --from=builder /app/alembic /app/alembic
COPY --from=builder /app/alembic.ini /app/alembic.ini

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001

EXPOSE 8000

# Only the api serves HTTP; for the worker and the scheduler the check passes
# trivially (Railway's own health check is set per service, see docs/deploy.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "test \"${RUN_MODE:-}\" != api || python -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:${PORT:-8000}/health', timeout=4)\" || exit 1"]

# `julia run` reads RUN_MODE and exits 1 when it is missing or invalid.
ENTRYPOINT ["julia", "run"]
