"""Cold start of the action's entrypoint: process start to the first Kubernetes API request.

Starts kubesim in this process, creates Deployment ``web``, and spawns ``python entrypoint.py`` with the
environment a runner gives a container action (every input of action.yml as ``INPUT_<NAME>`` with hyphens
kept and its default, ``mode: history``, the kubeconfig as content, GITHUB_OUTPUT/GITHUB_STEP_SUMMARY files,
CI/GITHUB_ACTIONS, a separate HOME, PYTHONDONTWRITEBYTECODE/PYTHONUNBUFFERED as the Dockerfile sets them).
kubesim's ``Knobs.on_request`` hook timestamps every request with the same monotonic clock the spawn uses.

Measured over ``--runs`` rounds (default 7, min and median), interleaved:

a. ``python -c pass`` (interpreter start, the floor)
b. ``python -c "import rollback.cli"`` (what the entrypoint imports before main_action runs)
c. entrypoint: spawn -> first API request
d. entrypoint: spawn -> exit, ``mode: history``
e. ``kubectl get deployment web`` against the same server with a warm discovery cache (reference)
f. entrypoint spawn -> first API request with no usable bytecode (PYTHONPYCACHEPREFIX pointing at an empty
   directory): what the image would do if it shipped without .pyc files (``pip install --no-compile``)
g. where the time goes: the same runs through a copy of entrypoint.py (``-c``, same imports, same
   ``sys.exit(main_action())``) that prints monotonic timestamps: interpreter ready, ``rollback.cli``
   imported, first/last API request (kubesim), main_action returned, exit (interpreter finalization); and the
   modules loaded through ``importlib.import_module`` (kubernetes.client loads its API classes and models
   lazily that way, which ``-X importtime`` does not time)

h. what-if, not shipped: that copy with ``gc.freeze()`` before ``sys.exit`` (finalization then skips the
   garbage collection of everything imported), spawn -> exit

Then one ``python -X importtime`` run of that copy, split at the first API request (kubesim holds that
request until the import log is read): the top imports by cumulative time (lazy ``import_module`` loads
included), imports per top-level package, and a watch list of modules the history path should not need, so
lazy-import regressions show up. The machine's load average is printed: figures from a busy machine are
noisy, compare minimums.

Usage (from the repository root): ``.venv/bin/python bench/cold_start.py [--runs N] [--no-kubectl]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubesim import serve  # noqa: E402 - needs ROOT on sys.path when run as bench/cold_start.py

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "annotations": {"kubernetes.io/change-cause": "v1.0.0"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
    },
}

# Modules the `mode: history` path (no github-token, no manifests) should not need before its first request.
WATCH = (
    "rollback.github.releases", "urllib.request", "http.client", "rollback.run", "rollback.ledger",
    "rollback.rollout", "rollback.workloads", "rollback.manifests", "argparse",
    "kubernetes.client.models", "kubernetes.client.api", "kubernetes.dynamic", "kubernetes.stream",
    "kubernetes.watch", "kubernetes.leaderelection", "kubernetes.informer", "kubernetes.utils",
    "kubernetes.aio", "aiohttp", "pydantic", "websocket", "requests", "requests_oauthlib", "oauthlib",
    "dateutil", "yaml", "kubernetes.client.api.core_v1_api", "kubernetes.client.api.apps_v1_api",
)

# entrypoint.py with timestamps (stderr, CLOCK_MONOTONIC is shared with this process) and lazy-import markers.
TRACED_ENTRYPOINT = r"""
import importlib, importlib.util, sys, time
_emit = sys.stderr.write
_emit(f"bench-mark: ready {time.monotonic()!r}\n")
_real_import_module = importlib.import_module
def _traced_import_module(name, package=None):
    full = importlib.util.resolve_name(name, package) if name.startswith(".") else name
    if full in sys.modules:
        return _real_import_module(name, package)
    _emit(f"bench-lazy-start: {full}\n")
    start = time.perf_counter()
    try:
        return _real_import_module(name, package)
    finally:
        _emit(f"bench-lazy-end: {int((time.perf_counter() - start) * 1e6)} | {full} | {time.monotonic()!r}\n")
importlib.import_module = _traced_import_module
from rollback.cli import main_action
_emit(f"bench-mark: imported {time.monotonic()!r}\n")
_code = main_action()
_emit(f"bench-mark: returned {time.monotonic()!r}\n")
sys.exit(_code)
"""


# -- the server side ---------------------------------------------------------------------------------------


class RequestLog:
    """Receives kubesim's on_request calls; ``hold`` makes the first request of a run wait (importtime run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[float, str, str]] = []
        self.first = threading.Event()
        self.hold: Callable[[], None] | None = None

    def reset(self) -> None:
        with self.lock:
            self.entries = []
            self.first.clear()

    def __call__(self, method: str, path: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.entries.append((now, method, path))
            first = len(self.entries) == 1
        if first:
            self.first.set()
            if self.hold is not None:
                self.hold()

    def first_time(self) -> float | None:
        with self.lock:
            return self.entries[0][0] if self.entries else None


# -- the child environment ---------------------------------------------------------------------------------


def action_environment(kubeconfig: str, workdir: Path, inputs: dict[str, str]) -> dict[str, str]:
    """What the runner passes to `docker run` for a container action (the parts the entrypoint can see)."""
    with open(ROOT / "action.yml", encoding="utf-8") as handle:
        action = yaml.safe_load(handle)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(workdir / "home"),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workdir / "workspace"),
        "GITHUB_OUTPUT": str(workdir / "output"),
        "GITHUB_STEP_SUMMARY": str(workdir / "summary"),
        "GITHUB_REPOSITORY": "octo-org/web",
        "GITHUB_REPOSITORY_OWNER": "octo-org",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_SHA": "0" * 40,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_WORKFLOW": "deploy",
        "GITHUB_JOB": "deploy",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_NUMBER": "1",
        "GITHUB_RUN_ATTEMPT": "1",
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(workdir / "runner-temp"),
        # Dockerfile runtime stage
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name, spec in (action.get("inputs") or {}).items():
        default = (spec or {}).get("default")
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = "" if default is None else str(default)
    for name, value in inputs.items():
        env[f"INPUT_{name.replace(' ', '_').upper()}"] = value
    env["INPUT_KUBECONFIG"] = kubeconfig
    for directory in ("home", "workspace", "runner-temp"):
        (workdir / directory).mkdir(exist_ok=True)
    return env


# -- measurements ------------------------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    values: list[float] = field(default_factory=list)  # seconds

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Run:
    start: float  # monotonic, just before the spawn
    total: float  # spawn -> exit, seconds
    requests: list[tuple[float, str, str]]  # kubesim's log of this run (monotonic, method, path)
    stderr: str

    @property
    def first(self) -> float | None:
        return self.requests[0][0] - self.start if self.requests else None

    @property
    def last(self) -> float | None:
        return self.requests[-1][0] - self.start if self.requests else None


def spawn(cmd: Sequence[str], env: dict[str, str], log: RequestLog) -> Run:
    log.reset()
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
    total = time.monotonic() - start
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout.decode(errors="replace")[-3000:] + stderr[-3000:])
        shown = " ".join(Path(c).name if os.sep in c else c for c in cmd if "\n" not in c)
        raise SystemExit(f"{shown}: exit {proc.returncode}")
    with log.lock:
        requests = list(log.entries)
    return Run(start, total, requests, stderr)


def marks(run: Run) -> dict[str, float]:
    """The traced entrypoint's timestamps, as seconds after the spawn."""
    found = {}
    for line in run.stderr.splitlines():
        if line.startswith("bench-mark: "):
            name, value = line.split(" ")[1:3]
            found[name] = float(value) - run.start
    return found


def lazy_loads(run: Run, until: float | None = None) -> dict[str, float]:
    """Outermost ``import_module`` loads (module -> seconds) finished before ``until`` (seconds after spawn)."""
    loads: dict[str, float] = {}
    depth = 0
    for line in run.stderr.splitlines():
        if line.startswith("bench-lazy-start: "):
            depth += 1
        elif line.startswith("bench-lazy-end: "):
            depth -= 1
            micros, name, at = (part.strip() for part in line.split(": ", 1)[1].split("|"))
            if depth == 0 and (until is None or float(at) - run.start <= until):
                loads[name] = loads.get(name, 0.0) + int(micros) / 1e6
    return loads


IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


@dataclass
class Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int
    lazy: bool = False  # loaded through importlib.import_module (timed by the traced entrypoint)
    children: list[Import] = field(default_factory=list, repr=False)


def parse_importtime(lines: Sequence[str]) -> list[Import]:
    """``-X importtime`` lines plus the traced entrypoint's lazy-load markers, in the log's (post-)order.

    ``-X importtime`` only times ``import`` statements: a module loaded by ``importlib.import_module`` is
    missing and the statements it runs show up at depth 0. The markers put the lazy load back in as the
    parent of those statements, with its self time = its wall time minus its children's cumulative times.
    """
    found: list[Import] = []
    open_lazy: list[int] = []  # index in ``found`` where each open lazy load's children start
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("bench-lazy-start: "):
            open_lazy.append(len(found))
            continue
        if line.startswith("bench-lazy-end: ") and open_lazy:
            micros, name, _at = (part.strip() for part in line.split(": ", 1)[1].split("|"))
            inner = found[open_lazy.pop():]
            depth = min((i.depth for i in inner), default=len(open_lazy) + 1) - 1
            direct = sum(i.cumulative_us for i in inner if i.depth == depth + 1)
            found.append(Import(name, max(int(micros) - direct, 0), int(micros), depth, lazy=True))
            continue
        match = IMPORT_LINE.match(line)
        if match:
            found.append(Import(match.group(4), int(match.group(1)), int(match.group(2)),
                                (len(match.group(3)) - 1) // 2 + len(open_lazy)))
    return found


def as_tree(entries: Sequence[Import]) -> list[Import]:
    """Roots, each with its children, from post-order entries with depths."""
    stack: list[Import] = []
    for entry in entries:
        entry.children = []
        while stack and stack[-1].depth > entry.depth:
            entry.children.insert(0, stack.pop())
        stack.append(entry)
    return stack


def importtime_split(env: dict[str, str], log: RequestLog) -> tuple[list[Import], list[Import], int]:
    """Imports before and after the first API request, and the number of requests of that run."""
    lines: list[str] = []
    lines_lock = threading.Lock()
    split_at: list[int] = []

    def hold() -> None:
        # The child waits for this answer: all it imported so far is in the pipe. Let the reader drain it.
        time.sleep(0.3)
        with lines_lock:
            split_at.append(len(lines))

    log.reset()
    log.hold = hold
    try:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-c", TRACED_ENTRYPOINT], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            with lines_lock:
                lines.append(line)
        code = proc.wait()
    finally:
        log.hold = None
    if code != 0 or not split_at:
        sys.stderr.write("".join(lines[-40:]))
        raise SystemExit(f"python -X importtime (traced entrypoint): exit {code}, first request seen: {bool(split_at)}")
    with log.lock:
        requests = len(log.entries)
    return parse_importtime(lines[:split_at[0]]), parse_importtime(lines[split_at[0]:]), requests


# -- report ------------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def top_level(module: str) -> str:
    return module.split(".", 1)[0]


def report_breakdown(traced: list[Run]) -> None:
    phases: dict[str, list[float]] = defaultdict(list)
    lazy: dict[str, list[float]] = defaultdict(list)
    for run in traced:
        at = marks(run)
        first, last = run.first, run.last
        if first is None or last is None or not {"ready", "imported", "returned"} <= at.keys():
            continue
        before_first = lazy_loads(run, until=first)
        phases["spawn -> interpreter ready (python startup, site)"].append(at["ready"])
        phases["-> rollback.cli imported"].append(at["imported"] - at["ready"])
        phases["-> first API request"].append(first - at["imported"])
        phases["     of which lazy import_module loads (kubernetes.client)"].append(sum(before_first.values()))
        phases["-> last API request"].append(last - first)
        phases["-> main_action returned (outputs, summary)"].append(at["returned"] - last)
        phases["-> process exit (interpreter finalization)"].append(run.total - at["returned"])
        phases["total"].append(run.total)
        for name, seconds in lazy_loads(run).items():
            lazy[name].append(seconds)
    if not phases:
        print("(no complete traced run)")
        return
    total = statistics.median(phases["total"])
    print(f"Where the time goes (traced copy of entrypoint.py, {len(phases['total'])} runs):")
    print(f"  {'':60}{'min ms':>8}  {'median ms':>9}  {'of total':>8}")
    for label, values in phases.items():
        median = statistics.median(values)
        print(f"  {label:60}{ms(min(values))}  {ms(median):>9}  {100 * median / total:7.0f}%")
    if lazy:
        print("  lazy loads through importlib.import_module (outermost; median ms):")
        for name, values in sorted(lazy.items(), key=lambda kv: -statistics.median(kv[1])):
            print(f"    {statistics.median(values) * 1000:8.1f}  {name}")


def report_imports(before: list[Import], after: list[Import], top: int) -> None:
    total_before = sum(i.self_us for i in before)
    total_after = sum(i.self_us for i in after)
    print("python -X importtime, traced entrypoint (mode history), split at the first API request "
          "(-X importtime inflates import times):")
    print(f"  before the first request: {len(before)} modules, {total_before / 1000:.1f} ms of imports")
    print(f"  after it (during the run): {len(after)} modules, {total_after / 1000:.1f} ms of imports")
    print()
    print(f"  top {top} imports by cumulative time before the first request "
          "(indent: imported by the line above; * = lazy import_module load):")
    print(f"    {'cumul ms':>8}  {'self ms':>7}  module")
    heaviest = {id(i) for i in sorted(before, key=lambda i: -i.cumulative_us)[:top]}

    def show(node: Import) -> None:
        if id(node) in heaviest:
            mark = "*" if node.lazy else ""
            print(f"    {node.cumulative_us / 1000:8.1f}  {node.self_us / 1000:7.1f}  "
                  f"{'  ' * node.depth}{node.module}{mark}")
        for child in node.children:
            show(child)

    for root in as_tree(before):
        show(root)

    stdlib = frozenset(getattr(sys, "stdlib_module_names", ()))
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in before:
        name = top_level(item.module)
        key = name if name in ("rollback", "kubernetes") or name not in stdlib else "(standard library)"
        groups[key][0] += item.self_us
        groups[key][1] += 1
    print()
    print("  import time before the first request by top-level package (sum of self times):")
    for name, (self_us, count) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]:
        share = 100 * self_us / max(total_before, 1)
        print(f"    {self_us / 1000:8.1f} ms  {count:4d} modules  {name}  ({share:.0f}%)")

    print()
    print("  watch list (what `mode: history` without github-token loads before its first request):")
    index_before = {i.module: i for i in before}
    for name in WATCH:
        subs = [i for i in before if i.module.startswith(name + ".")]
        if name in index_before:
            item = index_before[name]
            extra = f", {len(subs)} submodules" if subs else ""
            where = f"before   cumulative {item.cumulative_us / 1000:7.1f} ms{extra}"
        elif subs:
            where = f"before   {len(subs)} submodules, {sum(i.self_us for i in subs) / 1000:.1f} ms self"
        elif any(i.module == name or i.module.startswith(name + ".") for i in after):
            where = "after    (imported during the run)"
        else:
            where = "never"
        print(f"    {name:36} {where}")

    if after:
        print()
        print("  heaviest imports after the first request:")
        for item in sorted(after, key=lambda i: -i.cumulative_us)[:5]:
            print(f"    {item.cumulative_us / 1000:8.1f} ms  {item.module}{'*' if item.lazy else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds of every measurement (default 7)")
    parser.add_argument("--top", type=int, default=10, help="imports to list (default 10)")
    parser.add_argument("--no-kubectl", action="store_true", help="skip the kubectl reference")
    parser.add_argument("--no-bytecode-runs", type=int, default=3, metavar="N",
                        help="rounds of (f), the slow runs without .pyc files (default 3, at most --runs; 0 skips)")
    args = parser.parse_args(argv)
    kubectl = None if args.no_kubectl else shutil.which("kubectl")

    log = RequestLog()
    py = sys.executable
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with serve() as sim, tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        sim.knobs.on_request = log
        sim.apply(DEPLOYMENT)
        sim.reconcile()
        workdir = Path(scratch)
        with open(sim.kubeconfig, encoding="utf-8") as handle:
            kubeconfig = handle.read()
        env = action_environment(kubeconfig, workdir, {"mode": "history", "deployment": "web", "namespace": "default"})
        entry = [py, "entrypoint.py"]
        traced = [py, "-c", TRACED_ENTRYPOINT]
        frozen = [py, "-c", TRACED_ENTRYPOINT.replace("sys.exit(_code)", "import gc; gc.freeze(); sys.exit(_code)")]

        # Warm-up, not measured: byte-compile rollback/ (the image runs compileall at build time), fill the OS
        # page cache, fill kubectl's discovery cache.
        warm = spawn(entry, {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}, log)
        kubectl_cmd = None
        if kubectl:
            kubectl_cmd = [kubectl, "--kubeconfig", sim.kubeconfig, "--cache-dir", str(workdir / "kube-cache"),
                           "get", "deployment", "web", "-n", "default"]
            spawn(kubectl_cmd, env, log)

        nopyc_env = dict(env, PYTHONPYCACHEPREFIX=str(workdir / "empty-pycache"))
        series = {key: Series(label) for key, label in (
            ("a", "(a) python -c pass"),
            ("b", '(b) python -c "import rollback.cli"'),
            ("c", "(c) entrypoint: spawn -> first API request"),
            ("d", "(d) entrypoint: spawn -> exit (mode history)"),
            ("e", "(e) kubectl get deployment web, warm cache: total"),
            ("e1", "    kubectl: spawn -> first API request"),
            ("f", "(f) entrypoint without .pyc: spawn -> first request"),
            ("f1", "    entrypoint without .pyc: spawn -> exit"),
            ("g", "(g) traced copy of entrypoint.py: spawn -> exit"),
            ("h", "(h) what-if: (g) + gc.freeze() before sys.exit"),
        )}
        traced_runs: list[Run] = []
        started = time.monotonic()
        for _ in range(args.runs):
            series["a"].values.append(spawn([py, "-c", "pass"], env, log).total)
            series["b"].values.append(spawn([py, "-c", "import rollback.cli"], env, log).total)
            run = spawn(entry, env, log)
            if run.first is None:
                raise SystemExit("the entrypoint sent no API request")
            series["c"].values.append(run.first)
            series["d"].values.append(run.total)
            if kubectl_cmd:
                run = spawn(kubectl_cmd, env, log)
                series["e"].values.append(run.total)
                if run.first is not None:
                    series["e1"].values.append(run.first)
            if len(series["f1"].values) < args.no_bytecode_runs:
                shutil.rmtree(workdir / "empty-pycache", ignore_errors=True)
                run = spawn(entry, nopyc_env, log)
                if run.first is not None:
                    series["f"].values.append(run.first)
                series["f1"].values.append(run.total)
            traced_runs.append(spawn(traced, env, log))
            series["g"].values.append(traced_runs[-1].total)
            series["h"].values.append(spawn(frozen, env, log).total)
        measured = time.monotonic() - started
        before, after, importtime_requests = importtime_split(env, log)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"Cold start of entrypoint.py against kubesim: Python {sys.version_info.major}.{sys.version_info.minor}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} -> {load_after:.1f}")
    print(f"{args.runs} runs each ((f): {len(series['f1'].values)}) in {measured:.0f}s; OS page cache warm, "
          "bytecode present as in the image (pip compiles at install, the Dockerfile runs compileall on rollback/)")
    print()
    print(f"{'':56}{'min ms':>8}  {'median ms':>9}")
    for s in series.values():
        if s.values:
            print(f"{s.label:56}{ms(s.min)}  {ms(s.median):>9}")
    print()
    low = {key: s.min for key, s in series.items() if s.values}
    med = {key: s.median for key, s in series.items() if s.values}

    def both(a: str, b: str) -> str:
        return f"{ratio(low[a], low[b]):>6} (medians {ratio(med[a], med[b])})"

    print("Ratios (minimums; medians in brackets):")
    print(f"  entrypoint first request / python -c pass:         {both('c', 'a')}")
    print(f"  entrypoint first request / import rollback.cli:    {both('c', 'b')}  "
          f"[import rollback.cli -> first request: {(low['c'] - low['b']) * 1000:.0f} ms]")
    print(f"  entrypoint total / entrypoint first request:       {both('d', 'c')}")
    if "e" in low:
        print(f"  entrypoint total / kubectl get (warm cache):       {both('d', 'e')}")
    if "e1" in low:
        print(f"  entrypoint first request / kubectl first request:  {both('c', 'e1')}")
    if "f" in low:
        print(f"  first request without .pyc / with .pyc:            {both('f', 'c')}  "
              f"[+{(low['f'] - low['c']) * 1000:.0f} ms per run]")
    print(f"  what-if gc.freeze() before exit / as is (traced):  {both('h', 'g')}  "
          f"[{(low['g'] - low['h']) * 1000:.0f} ms less per run]")
    print()
    report_breakdown(traced_runs)
    print()
    requests = warm.requests
    print(f"API requests of one `mode: history` run ({len(requests)}; ms after the first):")
    for at, method, path in requests:
        print(f"  {(at - requests[0][0]) * 1000:7.1f}  {method} {path.split('?', 1)[0]}")
    print()
    report_imports(before, after, args.top)
    if importtime_requests != len(requests):
        print(f"\nnote: the importtime run sent {importtime_requests} requests, the warm-up run {len(requests)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
