# Image for the kube-release-rollback container action.
#
# Base: python:3.11-slim pinned by the digest of its multi-arch index, so every build starts from the same
# bytes (the tag moves: it went from Debian bookworm to trixie without changing its name). Both stages use
# the same digest. Released versions of the action do not build this file at all: the release workflow
# pushes a multi-arch image to GHCR and points action.yml at it by digest. This Dockerfile is what
# `uses: ./` (CI, e2e) builds.
#
# To move to a newer base (a reviewed change, like a dependency bump): run
#   docker buildx imagetools inspect python:3.11-slim      (the "Digest:" line: the multi-arch index)
# or `docker pull python:3.11-slim` and take the digest it prints, then replace the digest in BOTH FROM
# lines and the tag comment (Python patch and Debian suite: `docker run --rm python:3.11-slim@sha256:...
# sh -c 'python -V; cat /etc/debian_version'`).

# --- build stage: resolve the pinned runtime closure into a self-contained virtualenv ---------------
# python:3.11-slim = 3.11.16-slim-trixie (index digest as of 2026-08)
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

COPY requirements.txt /tmp/requirements.txt
# Wheels only: every pin ships amd64 and arm64 wheels, so no compiler is needed and none is installed.
# Then the diet (bench/dependency_size.py measures it; tests/test_image_diet.py runs the action with these
# modules made unimportable): the kubernetes client's asyncio half (kubernetes/aio and the packages only it
# needs) and pip/setuptools are never imported by the action, and are 57% of the venv.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes aiohttp aiohttp-retry aiohappyeyeballs aiosignal attrs frozenlist multidict propcache yarl \
    && rm -rf /opt/venv/lib/python3.11/site-packages/kubernetes/aio \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# --- runtime stage: python + the venv + the engine, nothing else ------------------------------------
# python:3.11-slim = 3.11.16-slim-trixie (index digest as of 2026-08)
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# Workflow-command lines must reach the runner in order (unbuffered); the filesystem of an action
# container is thrown away after the step, so writing .pyc files at run time only costs time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

COPY --from=build /opt/venv /opt/venv
COPY rollback/ /app/rollback/
COPY entrypoint.py /app/entrypoint.py

# Byte-compile at build time what every run imports, so no run compiles it again: the engine, and the
# standard library, whose .pyc files the official image deletes (with PYTHONDONTWRITEBYTECODE=1 every step
# would otherwise compile ~145 stdlib modules in memory and throw them away). Parts of the stdlib the action
# cannot import (GUI, test suites, 2to3, ensurepip, the base's own site-packages) are skipped.
# bench/container_cold_start.py measures the time saved and the size cost (figures in the README).
RUN python -m compileall -q -j 0 -x '/(site-packages|idlelib|tkinter|turtledemo|lib2to3|ensurepip|test|tests|idle_test)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
    && python -m compileall -q /app/rollback

# No USER: GitHub runs container actions as the image's default user, and the docs require root
# ("Docker actions must be run by the default Docker user (root)"); the runner mounts the workspace,
# GITHUB_OUTPUT and GITHUB_STEP_SUMMARY owned by the host user, which a non-root user could not write.
# No WORKDIR: the runner sets --workdir /github/workspace itself; paths below are absolute.
ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]
