# syntax=docker/dockerfile:1
# The lark-operator image: `make docker-build` (docker build -t lark-operator:dev .); `make e2e`
# builds it with buildah and runs it on a real node (docs/e2e.md).
#
# Two stages. The builder installs the dependencies and the project's wheel into a virtualenv;
# the runtime stage is the same python:3.11-slim base plus that virtualenv only: no compiler,
# no pip, no source tree, no caches. It runs as the non-root user 65532, which the Helm chart
# also sets (runAsUser 65532, read-only root filesystem, a writable emptyDir at /tmp).

# The base of both stages. Any Debian-like image with Python 3.11+ as `python`, its venv module
# and groupadd/useradd fits: without a registry, `make e2e` passes a local one that
# hack/e2e/images.sh makes with debootstrap (localhost/lark-e2e/python:3.11-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a source change does not reinstall them.
# Every dependency publishes wheels for CPython 3.11 on linux amd64 and arm64, so there is no
# compiler here; on another architecture, apt-get install build-essential in this stage.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --upgrade pip \
 && pip install -r /tmp/requirements.txt

# The project. operator/lark_operator/crds/larkapps.yaml is a symlink to crds/larkapps.yaml
# (one source of truth for the CRD), so crds/ must be in the build context too: COPY keeps
# the link, and the wheel stores the file it points to. README.md is the package's readme.
# Nothing from hack/ (the dev-only local control plane and server launchers) is copied.
COPY README.md ./
COPY crds/ crds/
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-deps /wheels/*.whl \
 && python -c "from importlib.resources import files; assert files('lark_operator').joinpath('crds/larkapps.yaml').is_file()" \
 && lark-operator --help > /dev/null \
 && pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="lark-operator" \
      org.opencontainers.image.description="Kubernetes operator for Feishu / Lark Open Platform apps" \
      org.opencontainers.image.licenses="Apache-2.0"
# No .pyc writes at run time (the root filesystem is read-only; pip compiled them at install),
# and log lines reach `kubectl logs` as they are written.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# A named user for uid/gid 65532, so that getpass/pwd lookups (kopf's default identity when
# POD_ID is not set) find it; no home directory, no login shell.
RUN groupadd --system --gid 65532 lark \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lark
# Same base image as the builder, so the venv's python symlink resolves.
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
# /health and /metrics.
EXPOSE 9091
# The operator runs as PID 1: it handles SIGTERM itself (kopf's graceful stop; a leader
# releases its Lease) and starts no child processes, so no init is needed.
ENTRYPOINT ["lark-operator"]
CMD ["run", "--all-namespaces", "--log-format", "json"]
