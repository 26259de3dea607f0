# syntax=docker/dockerfile:1
# postgrest-auth as a container: the wheel and its dependencies built in one stage, installed in a
# slim one that runs as an unprivileged user.
#
#     docker build -t postgrest-auth .
#     docker run --rm -e POSTGREST_AUTH_SECRET -e POSTGREST_AUTH_DB__CONNECTION_STRING \
#         -p 3001:3001 postgrest-auth                     # serve (migrations applied first)
#     docker run --rm ... postgrest-auth migrate          # apply migrations and exit
#
# Every setting comes from the environment (POSTGREST_AUTH_…, nested keys joined by __) or from a
# mounted file (`--config /etc/postgrest-auth/postgrest-auth.json`). No secret is baked in here:
# give the secret and the connection strings at run time. examples/compose.yaml runs two instances
# of this image behind nginx, with PgBouncer and PostgREST.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the wheel is made of (no .venv, .git or test tools in the build context's copy).
COPY pyproject.toml README.md ./
COPY postgrest_auth/ postgrest_auth/
COPY sql/ sql/
# The service's wheel and a wheel of every dependency: the final stage needs no compiler, no index.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels postgrest-auth \
    && groupadd --system --gid 10001 postgrest-auth \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/postgrest-auth \
       --shell /usr/sbin/nologin postgrest-auth
# Numeric ids, so an orchestrator's runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /home/postgrest-auth
# Listen on every interface of the container (the default, 127.0.0.1, is for a host install);
# one JSON line per request for the log collector.
ENV POSTGREST_AUTH_HOST=0.0.0.0 \
    POSTGREST_AUTH_PORT=3001 \
    POSTGREST_AUTH_LOG__FORMAT=json
EXPOSE 3001
# Liveness: the process answers. No curl in a slim image; Python's urllib fails on any non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('POSTGREST_AUTH_PORT', '3001') + os.environ.get('POSTGREST_AUTH_PREFIX', '/auth') + '/health', timeout=4)"]
ENTRYPOINT ["postgrest-auth"]
