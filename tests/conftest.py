"""Shared fixtures: a fresh in-process kubesim per test, the real kubectl against it, a Python client for it.

Other test files use them as::

    from conftest import kubectl          # kubectl(sim, "get", "deploy") -> CompletedProcess

    def test_x(sim, k8s):                 # k8s: kubernetes.client.ApiClient pointed at sim
        ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

import kubesim
from kubesim.knobs import Knobs

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def knobs() -> Knobs:
    """The knobs the ``sim`` fixture starts with; override this fixture to start differently."""
    return Knobs()


@pytest.fixture
def sim(knobs: Knobs, tmp_path: Any) -> Iterator[kubesim.Sim]:
    """A fresh kubesim (store, controllers, HTTP server) for one test."""
    with kubesim.serve(knobs=knobs, kubeconfig_path=str(tmp_path / "kubeconfig")) as server:
        server.kubectl_cache_dir = str(tmp_path / "kubectl-cache")  # type: ignore[attr-defined]
        yield server


def kubectl(sim: kubesim.Sim, *args: str, input: str | None = None, timeout: float = 60,
            check: bool = False, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl against ``sim`` with its own kubeconfig and a per-test discovery cache.

    ``token``: send this bearer token (for the RBAC knob) instead of the kubeconfig's user.
    """
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    cache = getattr(sim, "kubectl_cache_dir", None) or os.path.join(os.path.dirname(sim.kubeconfig),
                                                                    "kubectl-cache")
    command = [KUBECTL, "--kubeconfig", sim.kubeconfig, "--cache-dir", cache]
    if token is not None:
        command += ["--token", token]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = os.path.dirname(cache)
    result = subprocess.run(command + list(args), input=input, capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def python_client(sim: kubesim.Sim, token: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``sim`` (no kubeconfig loading, no retries)."""
    from kubernetes import client

    config = client.Configuration()
    config.host = sim.url
    config.retries = 0
    if token is not None:
        config.api_key = {"authorization": token}
        config.api_key_prefix = {"authorization": "Bearer"}
    if sim.ca_file:
        config.ssl_ca_cert = sim.ca_file
    return client.ApiClient(config)


@pytest.fixture
def k8s(sim: kubesim.Sim) -> Iterator[Any]:
    """The official Python client pointed at ``sim``."""
    api = python_client(sim)
    try:
        yield api
    finally:
        api.close()
