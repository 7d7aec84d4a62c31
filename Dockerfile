# syntax=docker/dockerfile:1

# ---- build stage: install the project and its deps into /opt/venv ----------
# All runtime deps (psycopg[binary], lxml, ...) ship manylinux wheels, so no
# compiler toolchain is needed here.
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv

WORKDIR /src
# README.md is referenced by pyproject.toml (`readme`), so the build needs it.
COPY pyproject.toml README.md ./
COPY src/ src/
# A plain (non-editable) install builds a wheel of the project and puts it,
# with its dependencies, into the venv; the source tree is not needed later.
RUN /opt/venv/bin/pip install --no-cache-dir .

# ---- runtime stage ----------------------------------------------------------
FROM python:3.11-slim-bookworm

# Fixed uid/gid so ownership of the /data volume is stable across rebuilds.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /app \
      --no-create-home --shell /usr/sbin/nologin monitor \
 && mkdir -p /data /app \
 && chown monitor:monitor /data

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
COPY config/ /app/config/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_CONFIG_DIR=/app/config \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    MONITOR_METRICS_PORT=9100

VOLUME ["/data"]
# Numeric uid:gid (= user `monitor`) so runtimes can verify it is non-root.
USER 10001:10001

# No curl in the slim image: probe /healthz with the stdlib. urlopen raises on
# any non-2xx/connection error, which also exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MONITOR_METRICS_PORT', '9100'), timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# Migrate, then `exec` so `monitor run` replaces the shell and receives SIGTERM.
CMD ["sh", "-c", "monitor db upgrade && exec monitor run"]
