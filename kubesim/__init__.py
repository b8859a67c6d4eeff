"""kubesim: a simulated Kubernetes API server for tests and demos (not a cluster).

Start one in-process with ``serve()``::

    with kubesim.serve() as sim:
        subprocess.run(["kubectl", "--kubeconfig", sim.kubeconfig, "get", "deployments"])
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from .clock import Clock
from .knobs import Knobs
from .resources import NAMESPACES
from .server import Api, ApiServer
from .store import Store


def _controller_manager_class() -> Any:
    """``kubesim.controllers.ControllerManager``, or None while the controllers are not there."""
    try:
        module = importlib.import_module(".controllers", __name__)
    except ImportError:  # pragma: no cover - only before the controllers exist
        return None
    return getattr(module, "ControllerManager", None)

__all__ = ["Sim", "serve", "write_kubeconfig", "BOOTSTRAP_NAMESPACES"]

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAME = "kubesim"


@dataclass
class Sim:
    url: str
    kubeconfig: str
    store: Store
    knobs: Knobs
    clock: Clock
    controllers: Any
    api: Api = field(repr=False)
    ca_file: str | None = None
    token: str | None = None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` in the store through the same defaulting/validation as an HTTP write."""
        return self.api.apply_object(obj)

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
        """Poll ``predicate`` until it returns something truthy (returned); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)

    def reconcile(self) -> None:
        if self.controllers is not None:
            self.controllers.reconcile()


def write_kubeconfig(path: str, url: str, ca_data: bytes | None = None, token: str | None = None,
                     namespace: str = "default") -> str:
    cluster: dict[str, Any] = {"server": url}
    if ca_data is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    user: dict[str, Any] = {"token": token} if token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": namespace}}],
        "current-context": NAME,
        "preferences": {},
    }
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.chmod(path, 0o600)
    return path


def _make_tls(directory: str) -> tuple[ssl.SSLContext, bytes, str]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the ``openssl`` CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("tls=True needs the openssl command")
    ca_key, ca_crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr, crt = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w", encoding="utf-8") as handle:
        handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                     "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")  # fast to generate, unlike RSA
    run("req", "-x509", *ec, "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=kubesim-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=kubesim")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    with open(ca_crt, "rb") as binary:
        ca_data = binary.read()
    return context, ca_data, ca_crt


@contextlib.contextmanager
def serve(port: int = 0, knobs: Knobs | None = None, time_scale: float = 1.0,
          kubeconfig_path: str | None = None, tls: bool = False, token: str | None = None,
          run_controllers: bool = True) -> Iterator[Sim]:
    """Run a kubesim API server (and its controllers) on 127.0.0.1 for the duration of the ``with`` block.

    ``kubeconfig_path``: where to write the kubeconfig (default: a temporary file removed afterwards).
    ``token``: a bearer token to put in the kubeconfig (for the RBAC knob).
    ``run_controllers``: False serves the bare API (no ReplicaSets, pods or status appear by themselves).
    """
    knobs = knobs or Knobs()
    clock = Clock(time_scale)
    store = Store(clock)
    for name in BOOTSTRAP_NAMESPACES:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        from . import defaults  # local import keeps the package import light
        defaults.apply_defaults(NAMESPACES, namespace)
        store.create(NAMESPACES, None, namespace)
    manager_class = _controller_manager_class() if run_controllers else None
    controllers = manager_class(store, knobs, clock) if manager_class is not None else None
    api = Api(store, knobs, clock, controllers)
    with tempfile.TemporaryDirectory(prefix="kubesim-") as workdir:
        ssl_context = None
        ca_data: bytes | None = None
        ca_file: str | None = None
        if tls:
            ssl_context, ca_data, ca_file = _make_tls(workdir)
        server = ApiServer(api, port, ssl_context)
        kubeconfig = kubeconfig_path or os.path.join(workdir, "kubeconfig")
        write_kubeconfig(kubeconfig, server.url, ca_data, token)
        server.start()
        if controllers is not None:
            controllers.start()
        sim = Sim(server.url, kubeconfig, store, knobs, clock, controllers, api, ca_file, token)
        try:
            yield sim
        finally:
            if controllers is not None:
                controllers.stop()
            server.stop()
