"""Wall time of a step bounded by ``timeout`` against a slow, a hung and a healthy API server.

Starts kubesim in this process (real HTTP on 127.0.0.1), creates Deployment ``web`` on release R1, and spawns
``python -m rollback`` (the action's engine as a process, interpreter start included) to deploy R2 with
``timeout: 5s``:

a. healthy server (reference: the step's own work)
b. 2 s of latency on every request (kubesim ``--latency 2``)
c. every request held without an answer (kubesim ``--fault hang=true,count=-1``)
d. ``timeout: 1ns`` against the healthy server

For each row: min and median wall time over ``--runs`` rounds (default 3), the exit code, the number of
requests kubesim received and how many were writes. The design bound is timeout + the reserve for recording
(a tenth of the timeout, at most 1 s) for the requests, plus the interpreter's start. Before the transport
kept a deadline, (b) took 18 s and (c) 121 s, and (d) wrote.

Usage (from the repository root): ``.venv/bin/python bench/timeout_bound.py [--runs N]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kubesim import serve  # noqa: E402 - needs ROOT on sys.path when run as bench/timeout_bound.py
from kubesim.faults import EVERY, HANG_FOREVER  # noqa: E402
from kubesim.knobs import Knobs  # noqa: E402


def deployment() -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"kubernetes.io/change-cause": "R1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}}}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    requests: list[str] = []
    lock = threading.Lock()

    def record(method: str, path: str) -> None:
        with lock:
            requests.append(method)

    knobs = Knobs(ready_delay=0.1, on_request=record)
    rows = [("a", "healthy server", "5s", None), ("b", "2 s latency on every request", "5s", "latency"),
            ("c", "hung server (no answer)", "5s", "hang"), ("d", "timeout 1ns", "1ns", None)]
    results: dict[str, list[tuple[float, int, int, int]]] = {key: [] for key, *_ in rows}
    with tempfile.TemporaryDirectory(prefix="bench-timeout-") as work, \
            serve(knobs=knobs, kubeconfig_path=os.path.join(work, "kubeconfig")) as sim:
        sim.apply(deployment())
        env = {"PATH": os.environ.get("PATH", ""), "HOME": work, "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1"}
        for round_number in range(args.runs):
            for key, _, timeout, fault in rows:
                release = f"R{round_number}{key}"
                if fault == "latency":
                    knobs.latency = 2.0
                elif fault == "hang":
                    knobs.fail_next(EVERY, "*", ".*", status=None, hang=HANG_FOREVER)
                with lock:
                    requests.clear()
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "rollback", "--kubeconfig", sim.kubeconfig, "--mode", "deploy",
                     "--release", release, "--images", f"web=registry.example/web:{release}", "--deployment",
                     "web", "--timeout", timeout, "--no-wait"],
                    env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
                took = time.monotonic() - started
                knobs.latency = 0.0
                with knobs.lock:
                    knobs.failures.clear()
                with lock:
                    writes = sum(1 for m in requests if m not in ("GET", "HEAD"))
                    count = len(requests)
                results[key].append((took, done.returncode, count, writes))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'row':<4}{'what':<32}{'timeout':>8}{'min s':>8}{'median s':>10}{'exit':>6}{'requests':>10}{'writes':>8}")
    for key, what, timeout, _ in rows:
        times = [r[0] for r in results[key]]
        last = results[key][-1]
        print(f"{key:<4}{what:<32}{timeout:>8}{min(times):>8.2f}{statistics.median(times):>10.2f}{last[1]:>6}"
              f"{last[2]:>10}{last[3]:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
