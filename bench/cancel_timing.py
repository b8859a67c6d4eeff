"""How long a cancelled step takes to put things back and exit, against a fast and a slow API server.

The runner cancels a step with SIGINT, sends SIGTERM 7.5 s later and then kills it; everything the action
does after the signal (putting back, reading back, outputs, summary, ledger, releasing the leases) must fit
before that. For each scenario, on a fresh in-process kubesim: Deployments ``web`` and ``api`` run 1.0.0;
``python entrypoint.py`` (a child process, with the container's environment: ``INPUT_*``, the kubeconfig as
content) deploys 2.0.0 to both with images that never become Ready and ``rollback-on-failure``; once both
templates hold 2.0.0 and the wait has started, the child gets SIGINT. Measured, real seconds from the signal:

- **exit**: the child exited (its exit code is shown; non-zero expected);
- **put back**: how many of the two workloads were back on 1.0.0 at exit.

Scenarios: ``fast`` (no latency) and ``slow`` (1 s added to every answer from the moment of the signal:
the compensation cannot do everything, and the step's request deadline, moved to 6 s after the signal, is
what bounds it).

Usage (from the repository root): ``.venv/bin/python bench/cancel_timing.py [--runs N]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubesim import Sim, serve  # noqa: E402 - needs ROOT on sys.path when run as bench/cancel_timing.py
from kubesim.knobs import Knobs  # noqa: E402
from kubesim.resources import DEPLOYMENTS  # noqa: E402

NS = "shop"
RUNNER_SIGTERM_AFTER = 7.5


def _deployment(name: str) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "annotations": {"kubernetes.io/change-cause": "1.0.0"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name,
                                                           "image": f"registry.example/{name}:1.0.0"}]}}}}


def _cause(sim: Sim, name: str) -> str | None:
    obj = sim.store.find(DEPLOYMENTS, NS, name) or {}
    return ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/change-cause")


def _image(sim: Sim, name: str) -> str:
    obj = sim.store.find(DEPLOYMENTS, NS, name) or {}
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def _env(sim: Sim, workdir: Path) -> dict[str, str]:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    env = {"INPUT_" + name.upper(): str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    for directory in ("workspace", "home"):
        (workdir / directory).mkdir()
    for name in ("output", "summary"):
        (workdir / name).write_text("")
    env.update({
        "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT), "HOME": str(workdir / "home"), "CI": "true",
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workdir / "workspace"), "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "1", "GITHUB_ACTOR": "bench", "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_OUTPUT": str(workdir / "output"), "GITHUB_STEP_SUMMARY": str(workdir / "summary"),
        "INPUT_MODE": "deploy", "INPUT_NAMESPACE": NS, "INPUT_DEPLOYMENT": "web\napi\n", "INPUT_RELEASE": "2.0.0",
        "INPUT_IMAGES": "web=registry.example/web:broken-2.0.0\napi=registry.example/api:broken-2.0.0\n",
        "INPUT_ROLLBACK-ON-FAILURE": "true", "INPUT_TIMEOUT": "120s",
        "INPUT_KUBECONFIG": Path(sim.kubeconfig).read_text(encoding="utf-8"),
    })
    return env


def one(latency_after_signal: float) -> tuple[float, int, int]:
    """Seconds from SIGINT to exit, the exit code, and how many workloads were back on 1.0.0."""
    with serve(knobs=Knobs(ready_delay=0.05)) as sim, tempfile.TemporaryDirectory() as tmp:
        sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for name in ("web", "api"):
            sim.apply(_deployment(name))
        process = subprocess.Popen([sys.executable, str(ROOT / "entrypoint.py")], env=_env(sim, Path(tmp)),
                                   cwd=str(Path(tmp) / "workspace"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            sim.wait_until(lambda: _cause(sim, "web") == "2.0.0" and _cause(sim, "api") == "2.0.0", timeout=60)
            time.sleep(0.5)
            sim.knobs.latency = latency_after_signal
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=RUNNER_SIGTERM_AFTER)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=2.5)
            took = time.monotonic() - sent
        finally:
            sim.knobs.latency = 0.0
            if process.poll() is None:
                process.kill()
                process.wait()
        back = sum(1 for name in ("web", "api")
                   if _cause(sim, name) == "1.0.0" and _image(sim, name).endswith(":1.0.0"))
        return took, process.returncode, back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'scenario':<10} {'runs':>4} {'exit min':>9} {'exit median':>12} {'exit max':>9}  put back  exit codes")
    for label, latency in (("fast", 0.0), ("slow (1s)", 1.0)):
        results = [one(latency) for _ in range(args.runs)]
        times = [r[0] for r in results]
        print(f"{label:<10} {len(results):>4} {min(times):>8.2f}s {statistics.median(times):>11.2f}s "
              f"{max(times):>8.2f}s  {'/'.join(str(r[2]) for r in results):<8}  "
              f"{'/'.join(str(r[1]) for r in results)}")
    print(f"(the runner sends SIGTERM {RUNNER_SIGTERM_AFTER}s after SIGINT, then kills the step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
