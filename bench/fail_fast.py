"""Time to failure and time to restore of a bad deploy, ``fail-fast: true`` vs ``false``, side by side.

For each scenario (a crash-looping image, an image that cannot be pulled) and each setting, on a fresh
in-process kubesim: Deployment ``web`` (3 replicas, the default ``progressDeadlineSeconds`` of 600 s) runs
release 1.0.0; then ``python -m rollback`` (``rollback.cli.main``, in this process) deploys 2.0.0 with the bad
image and ``rollback-on-failure``. A store subscriber timestamps, on one monotonic clock:

- **write**: the Deployment's template first holds the bad image (the deploy's API write);
- **first bad status**: a pod of the new revision first reports a failing container state
  (``ErrImagePull``/``ImagePullBackOff``/``CrashLoopBackOff``, or an exit);
- **failure**: the action's first write that puts the good template back (it has given up on 2.0.0);
- **restored**: the Deployment is back on 1.0.0 with every replica updated and available.

Times are real seconds since the write (the action's clock), with kubesim's ``--time-scale`` (default 20:
600 simulated seconds of progress deadline pass in 30 s) making the cluster's own clock run faster. The
fail-fast thresholds are in real seconds, so its figures do not shrink with the scale; the deadline does.

Usage (from the repository root): ``.venv/bin/python bench/fail_fast.py [--time-scale X] [--runs N]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubesim import serve  # noqa: E402 - needs ROOT on sys.path when run as bench/fail_fast.py
from kubesim.knobs import Knobs  # noqa: E402
from kubesim.resources import DEPLOYMENTS, PODS  # noqa: E402
from kubesim.store import Event  # noqa: E402
from rollback.cli import main  # noqa: E402

GOOD = "registry.example/shop-web:1.0.0"
SCENARIOS = {"crash loop": "registry.example/shop-web:crash-2.0.0",
             "image pull": "registry.example/shop-web:does-not-exist-2.0.0"}
FAILING = frozenset({"ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff"})


@dataclass
class Marks:
    bad: str
    write: float | None = None
    first_bad: float | None = None
    failure: float | None = None
    restored: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, event: Event) -> None:
        now = time.monotonic()
        obj = event.obj
        if event.resource is DEPLOYMENTS and obj["metadata"]["name"] == "web":
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            if image == self.bad and self.write is None:
                self.write = now
            elif image == GOOD and self.write is not None:
                if self.failure is None:
                    self.failure = now
                status = obj.get("status") or {}
                replicas = obj["spec"].get("replicas", 1)
                if (self.restored is None and int(status.get("observedGeneration") or 0)
                        >= int(obj["metadata"].get("generation") or 0)
                        and status.get("updatedReplicas") == replicas == status.get("availableReplicas")
                        and status.get("replicas") == replicas):
                    self.restored = now
        if event.resource is PODS and self.write is not None and self.first_bad is None:
            if obj["spec"]["containers"][0]["image"] != self.bad:
                return
            for container in (obj.get("status") or {}).get("containerStatuses") or []:
                state = container.get("state") or {}
                reason = (state.get("waiting") or {}).get("reason")
                if reason in FAILING or state.get("terminated") or container.get("restartCount"):
                    self.first_bad = now


def deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "registry.example/shop-web:0"}]}}}}


def run_action(kubeconfig: str, workdir: str, *args: str) -> int:
    env = {"HOME": workdir, "PATH": "/usr/bin:/bin", "KUBECONFIG": kubeconfig, "GITHUB_ACTIONS": "true",
           "GITHUB_OUTPUT": os.path.join(workdir, "out"), "GITHUB_STEP_SUMMARY": os.path.join(workdir, "summary")}
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        open(env[name], "w").close()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(args), environ=env)


def measure(bad: str, fail_fast: bool, scale: float) -> tuple[Marks, float, int]:
    marks = Marks(bad)
    with tempfile.TemporaryDirectory(prefix="bench-fail-fast-") as workdir, \
            serve(knobs=Knobs(ready_delay=2.0), time_scale=scale) as sim:
        sim.apply(deployment())
        base = ("--namespace", "default", "--deployment", "web", "--mode", "deploy", "--timeout", "10m")
        code = run_action(sim.kubeconfig, workdir, *base, "--release", "1.0.0", "--images", f"web={GOOD}")
        if code != 0:
            raise SystemExit(f"deploying 1.0.0 failed with exit code {code}")
        sim.store.subscribe(marks.on_event)
        started = time.monotonic()
        code = run_action(sim.kubeconfig, workdir, *base, "--release", "2.0.0", "--images", f"web={bad}",
                          "--rollback-on-failure", "--fail-fast" if fail_fast else "--no-fail-fast")
        took = time.monotonic() - started
    return marks, took, code


def since(marks: Marks, moment: float | None) -> float:
    return float("nan") if moment is None or marks.write is None else moment - marks.write


def main_bench(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--time-scale", type=float, default=20.0, help="kubesim simulated seconds per second")
    parser.add_argument("--runs", type=int, default=1, help="runs per cell (the median is shown)")
    args = parser.parse_args(argv)
    print(f"kubesim time scale {args.time_scale:g} (default progressDeadlineSeconds 600 s = "
          f"{600 / args.time_scale:g} s real); load average {os.getloadavg()[0]:.2f}; median of {args.runs} run(s)")
    print()
    header = ("scenario", "fail-fast", "write->first bad status", "first bad->failure", "write->failure",
              "write->restored", "step", "exit")
    rows = []
    for scenario, bad in SCENARIOS.items():
        results: dict[bool, list[tuple[float, float, float, float, float, int]]] = {True: [], False: []}
        for _ in range(args.runs):
            for fail_fast in (True, False):  # side by side, interleaved
                marks, took, code = measure(bad, fail_fast, args.time_scale)
                results[fail_fast].append((since(marks, marks.first_bad),
                                           since(marks, marks.failure) - since(marks, marks.first_bad),
                                           since(marks, marks.failure), since(marks, marks.restored), took, code))
        for fail_fast in (True, False):
            cells = results[fail_fast]
            medians = [statistics.median(c[i] for c in cells) for i in range(5)]
            rows.append((scenario, "true" if fail_fast else "false", *(f"{m:.1f} s" for m in medians),
                         ",".join(sorted({str(c[5]) for c in cells}))))
        true_restore = statistics.median(c[3] for c in results[True])
        false_restore = statistics.median(c[3] for c in results[False])
        rows.append((scenario, "ratio", "", "", "", f"{false_restore / true_restore:.1f}x faster", "", ""))
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
