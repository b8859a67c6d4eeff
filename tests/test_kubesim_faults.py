"""kubesim's fault knobs from outside Python: ``--fault`` on the CLI and the ``/_kubesim/faults`` endpoint.

The server runs as a subprocess (``python -m kubesim``) on 127.0.0.1 and is stopped by each test; requests
go over plain HTTP with ``http.client``, and the real kubectl shows the faults look like a real API server's.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import kubesim
from kubesim import faults
from kubesim.faults import EVERY, FaultError

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


# -- parsing: table-driven ------------------------------------------------------------------------------------

PARSED = {
    "status and retry-after": ("method=PATCH,path=/deployments/web,status=503,retry-after=1",
                               {"method": "PATCH", "path": "/deployments/web", "count": 1, "status": 503,
                                "retry_after": 1, "drop": False, "after_apply": False}),
    "drop after": ("method=post,path=^/api/v1,drop=after,count=2",
                   {"method": "POST", "count": 2, "status": None, "drop": True, "after_apply": True}),
    "drop before": ("drop=before", {"method": "*", "path": ".*", "status": None, "drop": True,
                                    "after_apply": False}),
    "hang for ever": ("path=/configmaps,hang=true", {"hang": faults.HANG_FOREVER, "status": None}),
    "delay only": ("delay=2,count=-1", {"delay": 2.0, "count": EVERY, "status": None}),
    "plain failure": ("method=GET", {"status": 500, "retry_after": None}),
    "json": ('{"method": "PUT", "status": 429, "retryAfter": 3, "count": 4}',
             {"method": "PUT", "status": 429, "retry_after": 3, "count": 4}),
}


@pytest.mark.parametrize("spec,expected", PARSED.values(), ids=PARSED.keys())
def test_fault_specs_parse(spec: str, expected: dict[str, Any]) -> None:
    parsed = faults.parse_spec(spec)
    assert {key: parsed[key] for key in expected} == expected


REJECTED = {
    "not key=value": ("status", "not key=value"),
    "unknown key": ("colour=red", "unknown fault field"),
    "status not a number": ("status=abc", "whole number"),
    "status not an error": ("status=200", "400-599"),
    "bad drop": ("drop=sideways", "'before' or 'after'"),
    "zero count": ("count=0", "positive"),
    "bad regex": ("path=(", "regular expression"),
    "negative delay": ("delay=-1", "negative"),
    "bad json": ("{nope", "not valid JSON"),
}


@pytest.mark.parametrize("spec,message", REJECTED.values(), ids=REJECTED.keys())
def test_bad_fault_specs_say_what_is_allowed(spec: str, message: str) -> None:
    with pytest.raises(FaultError, match=re.escape(message)):
        faults.parse_spec(spec)


# -- the server as a process ----------------------------------------------------------------------------------


class Server:
    def __init__(self, process: subprocess.Popen[str], url: str, kubeconfig: str):
        self.process = process
        self.url = url
        self.kubeconfig = kubeconfig
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10
             ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            response = conn.getresponse()
            raw = response.read()
            return response.status, dict(response.getheaders()), json.loads(raw) if raw else None
        finally:
            conn.close()


@pytest.fixture
def start(tmp_path: Any) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def launch(*flags: str) -> Server:
        kubeconfig = str(tmp_path / f"kubeconfig-{len(started)}")
        process = subprocess.Popen([sys.executable, "-m", "kubesim", "--kubeconfig-out", kubeconfig, *flags],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(kubesim.__file__))))
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("kubesim listening on "), (line, process.stderr.read() if process.stderr else "")
        return Server(process, line.split()[-1], kubeconfig)

    yield launch
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_cli_fault_answers_with_status_and_retry_after(start: Any) -> None:
    server = start("--fault", f"method=GET,path={CONFIGMAPS},status=503,retry-after=2,count=2")
    for _ in range(2):
        status, headers, body = server.call("GET", CONFIGMAPS)
        assert status == 503 and headers.get("Retry-After") == "2", headers
        assert body["reason"] == "ServiceUnavailable" and body["details"]["retryAfterSeconds"] == 2
    status, _, body = server.call("GET", CONFIGMAPS)
    assert status == 200 and body["kind"] == "ConfigMapList"


def test_bad_cli_fault_is_refused_naming_the_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "kubesim", "--fault", "drop=sideways"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "--fault: fault drop must be 'before' or 'after'" in result.stderr


def test_control_endpoint_adds_lists_and_clears_faults(start: Any) -> None:
    server = start()
    status, _, body = server.call("POST", "/_kubesim/faults", {"method": "GET", "path": "/configmaps$",
                                                                "status": 429, "retryAfter": 1, "count": 3})
    assert status == 201 and body["faults"][0]["remaining"] == 3
    assert server.call("GET", CONFIGMAPS)[0] == 429
    listed = server.call("GET", "/_kubesim/faults")[2]["faults"]
    assert [(f["method"], f["status"], f["remaining"]) for f in listed] == [("GET", 429, 2)]
    assert server.call("DELETE", "/_kubesim/faults")[0] == 200
    assert server.call("GET", CONFIGMAPS)[0] == 200
    assert server.call("GET", "/_kubesim/faults")[2] == {"faults": []}
    status, _, body = server.call("POST", "/_kubesim/faults", {"status": "x"})
    assert status == 400 and "whole number" in body["error"]
    assert server.call("PUT", "/_kubesim/latency", {"seconds": 0.05})[2] == {"seconds": 0.05}
    assert server.call("GET", "/_kubesim/latency")[2] == {"seconds": 0.05}


def test_drop_after_apply_lands_the_write_and_loses_the_answer(start: Any) -> None:
    server = start()
    server.call("POST", "/_kubesim/faults", {"method": "POST", "path": "/configmaps", "drop": "after"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        server.call("POST", CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "landed"}})
    status, _, body = server.call("GET", CONFIGMAPS + "/landed")
    assert status == 200 and body["metadata"]["name"] == "landed"


def test_drop_before_apply_loses_the_write(start: Any) -> None:
    server = start()
    server.call("POST", "/_kubesim/faults", {"method": "POST", "path": "/configmaps", "drop": "before"})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        server.call("POST", CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lost"}})
    assert server.call("GET", CONFIGMAPS + "/lost")[0] == 404


def test_hang_holds_the_request_without_answering(start: Any) -> None:
    server = start("--fault", "method=GET,path=/configmaps,hang=true")
    with pytest.raises((TimeoutError, socket.timeout)):
        server.call("GET", CONFIGMAPS, timeout=0.5)
    assert server.call("GET", CONFIGMAPS)[0] == 200  # the rule was used up; the server still answers


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_retries_a_503_with_retry_after_like_against_a_real_server(start: Any, tmp_path: Any) -> None:
    server = start("--fault", "method=GET,path=/api/v1/namespaces/default/configmaps,status=503,retry-after=1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(["kubectl", "--kubeconfig", server.kubeconfig, "--cache-dir", str(tmp_path / "cache"),
                             "get", "configmaps", "-o", "name"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert server.call("GET", "/_kubesim/faults")[2] == {"faults": []}  # the fault was met, and retried past


# every knob has a flag: the rule that kubesim's knobs are reachable from its CLI
KNOB_FLAGS = {"ready_delay": "--ready-delay", "bad_markers": "--bad-marker", "bad_images": "--bad-image",
              "latency": "--latency", "daemonset_nodes": "--daemonset-nodes",
              "controller_sync": "--no-controller-sync", "rbac": "--token", "failures": "--fault",
              "crash_markers": "--crash-marker", "crash_images": "--crash-image", "crash_limit": "--crash-limit",
              "authn": "--jwt-key"}
NOT_KNOBS = {"on_request", "lock"}  # a Python callback for request logs, and the knobs' own lock


def test_every_knob_is_reachable_from_the_cli() -> None:
    import dataclasses

    from kubesim.__main__ import build_parser
    from kubesim.knobs import Knobs

    fields = {f.name for f in dataclasses.fields(Knobs)} - NOT_KNOBS
    assert fields == set(KNOB_FLAGS), f"knobs without a CLI flag here: {sorted(fields - set(KNOB_FLAGS))}"
    flags = {option for action in build_parser()._actions for option in action.option_strings}
    assert set(KNOB_FLAGS.values()) <= flags


def test_cli_knob_flags_reach_the_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesim import __main__ as cli

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_serve(**kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(cli, "serve", fake_serve)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # keep pytest's own handlers
    with pytest.raises(Stop):
        cli.main(["--bad-marker", "stuck", "--daemonset-nodes", "5", "--no-controller-sync", "--latency", "0.5",
                  "--fault", "method=GET,status=503,retry-after=2", "--crash-marker", "segv"])
    knobs = seen["knobs"]
    assert knobs.image_is_bad("registry.example/app:stuck") and knobs.image_is_bad("x:broken")
    assert knobs.image_crashes("registry.example/app:segv") and knobs.image_crashes("x:crash")
    assert (knobs.daemonset_nodes, knobs.controller_sync, knobs.latency) == (5, False, 0.5)
    (rule,) = knobs.failures
    assert (rule.method, rule.status, rule.retry_after, rule.remaining) == ("GET", 503, 2, 1)


def _deployment(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "annotations": {"kubernetes.io/change-cause": "R1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def _engine(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m rollback`` as a process against the server, the way a shell test runs it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(kubesim.__file__)))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.path.dirname(server.kubeconfig), "PYTHONPATH": root}
    return subprocess.run([sys.executable, "-m", "rollback", "--kubeconfig", server.kubeconfig, *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=root)


def test_shell_style_faults_and_request_log_with_the_engine_as_a_process(start: Any) -> None:
    server = start()
    assert server.call("POST", "/apis/apps/v1/namespaces/default/deployments",
                       _deployment("web", "registry.example/web:1"))[0] == 201
    deploy = ("--mode", "deploy", "--images", "web=registry.example/web:2", "--deployment", "web")
    # timeout: 1ns sends nothing at all
    server.call("DELETE", "/_kubesim/requests")
    result = _engine(server, *deploy, "--release", "R2", "--timeout", "1ns")
    assert result.returncode == 1 and "the timeout (1ns) ran out" in result.stdout, result.stdout
    assert server.call("GET", "/_kubesim/requests")[2] == {"requests": []}
    # a 503 with Retry-After on the PATCH, injected at run time: waited out, the deploy succeeds
    server.call("POST", "/_kubesim/faults", {"method": "PATCH", "path": "/deployments/web", "status": 503,
                                             "retryAfter": 1})
    result = _engine(server, *deploy, "--release", "R2", "--timeout", "30s", "--no-wait")
    assert result.returncode == 0, result.stdout + result.stderr
    requests = server.call("GET", "/_kubesim/requests")[2]["requests"]
    patches = [r for r in requests if r["method"] == "PATCH" and "/deployments/web" in r["path"]]
    assert len(patches) == 2 and patches[1]["at"] - patches[0]["at"] >= 0.99  # waited Retry-After (1 s)
    live = server.call("GET", "/apis/apps/v1/namespaces/default/deployments/web")[2]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/web:2"
