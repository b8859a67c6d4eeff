# Image for the kube-release-rollback container action.
#
# Base: pinned by tag. Released versions of the action do not build this file at all: the release
# workflow pushes a multi-arch image to GHCR and points action.yml at it by digest. This Dockerfile is
# what `uses: ./` (CI, e2e) builds.

# --- build stage: resolve the pinned runtime closure into a self-contained virtualenv ---------------
FROM python:3.11-slim AS build

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
FROM python:3.11-slim

# Workflow-command lines must reach the runner in order (unbuffered); the filesystem of an action
# container is thrown away after the step, so writing .pyc files at run time only costs time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

COPY --from=build /opt/venv /opt/venv
COPY rollback/ /app/rollback/
COPY entrypoint.py /app/entrypoint.py

# Byte-compile the engine once at build time so the cold start does not compile it on every run.
RUN python -m compileall -q /app/rollback

# No USER: GitHub runs container actions as the image's default user, and the docs require root
# ("Docker actions must be run by the default Docker user (root)"); the runner mounts the workspace,
# GITHUB_OUTPUT and GITHUB_STEP_SUMMARY owned by the host user, which a non-root user could not write.
# No WORKDIR: the runner sets --workdir /github/workspace itself; paths below are absolute.
ENTRYPOINT ["/opt/venv/bin/python", "/app/entrypoint.py"]
