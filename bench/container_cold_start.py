"""Container cold start and image size: the action's image with the standard library byte-compiled vs not.

Needs a Docker engine (``docker info`` must answer; ``DOCKER_HOST`` is honoured). Without one it prints a
SKIP line and exits 0, so ``make bench`` works everywhere.

Builds two images from a clean copy of the build context (what ``.dockerignore`` lets through):

- ``compiled``: the Dockerfile as it is (the runtime stage byte-compiles the stdlib);
- ``plain``: the same Dockerfile without that step (only ``/app/rollback`` compiled), as before issue 13.

Then runs each ``--runs`` times, interleaved, the way the runner starts a container action (``docker run``
with every input as ``INPUT_<NAME>``, ``mode: history``, the kubeconfig as content, ``GITHUB_OUTPUT`` and
``GITHUB_STEP_SUMMARY`` files in a mounted directory, host network) against kubesim on 127.0.0.1, and reports
min and median of: ``docker run`` spawn to kubesim's first request, and spawn to exit; and each image's size.

``--base IMAGE`` replaces the Dockerfile's ``FROM`` reference (e.g. ``python:3.11-slim`` for a local stand-in
base that has no registry digest, see the README's measurements); the figures are then from that base.

Usage (from the repository root): ``.venv/bin/python bench/container_cold_start.py [--runs N] [--base IMAGE]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cold_start import DEPLOYMENT, RequestLog, action_environment  # noqa: E402 - needs the paths above

from kubesim import serve  # noqa: E402

STDLIB_STEP = re.compile(r"RUN python -m compileall [^\n]*-x [^\n]*\\\n[^\n]*sysconfig[^\n]*\\\n\s*&& ")
FROM_DIGEST = re.compile(r"^FROM python:3\.11-slim@sha256:[0-9a-f]{64}", re.MULTILINE)


def docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        return f"docker info failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return None


def dockerfiles(base: str | None) -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    if base:
        text, count = FROM_DIGEST.subn(f"FROM {base}", text)
        assert count == 2, "the Dockerfile's two FROM lines were not found"
    plain, count = STDLIB_STEP.subn("RUN ", text)
    assert count == 1, "the stdlib compile step of the Dockerfile was not found"
    return {"compiled": text, "plain": plain}


def build_context(target: Path) -> None:
    """What .dockerignore admits: requirements.txt, entrypoint.py and the .py files of every rollback/ package."""
    shutil.copy(ROOT / "requirements.txt", target / "requirements.txt")
    shutil.copy(ROOT / "entrypoint.py", target / "entrypoint.py")
    for source in (ROOT / "rollback").rglob("*.py"):
        dest = target / source.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)


def build(name: str, dockerfile: str, context: Path) -> int:
    (context / f"Dockerfile.{name}").write_text(dockerfile, encoding="utf-8")
    tag = f"kube-release-rollback:bench-{name}"
    subprocess.run(["docker", "build", "-q", "--network", "host", "-t", tag, "-f",
                    str(context / f"Dockerfile.{name}"), str(context)], check=True, capture_output=True,
                   timeout=1800)
    size = subprocess.run(["docker", "image", "inspect", tag, "--format", "{{.Size}}"], check=True,
                          capture_output=True, text=True).stdout.strip()
    return int(size)


def run_once(tag: str, env: dict[str, str], files: Path, log: RequestLog) -> tuple[float, float]:
    args = ["docker", "run", "--rm", "--network", "host", "-v", f"{files}:{files}"]
    for key, value in env.items():
        if key.startswith(("INPUT_", "GITHUB_", "RUNNER_", "CI")) or key in ("HOME",):
            args += ["-e", f"{key}={value}"]
    log.reset()
    start = time.monotonic()
    proc = subprocess.run([*args, tag], capture_output=True, text=True, timeout=300)
    end = time.monotonic()
    first = log.first_time()
    if proc.returncode != 0 or first is None:
        raise RuntimeError(f"{tag} failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return first - start, end - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--base", help="FROM reference to build on instead of the Dockerfile's pinned digest")
    args = parser.parse_args()
    why = docker_available()
    if why is not None:
        print(f"SKIP: no Docker engine ({why}); the container cold start and the image size were not measured. "
              f"Start one (or set DOCKER_HOST) and run this again.")
        return 0
    with tempfile.TemporaryDirectory(prefix="krr-bench-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        build_context(context)
        sizes = {name: build(name, text, context) for name, text in dockerfiles(args.base).items()}
        files = Path(tmp) / "files"
        files.mkdir()
        log = RequestLog()
        with serve() as sim:
            sim.knobs.on_request = log
            sim.apply(DEPLOYMENT)
            kubeconfig = Path(sim.kubeconfig).read_text(encoding="utf-8")
            env = action_environment(kubeconfig, files, {"mode": "history", "deployment": "web"})
            for name in ("output", "summary"):
                (files / name).write_text("", encoding="utf-8")
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in sizes}
            for _ in range(args.runs):
                for name in sizes:
                    results[name].append(run_once(f"kube-release-rollback:bench-{name}", env, files, log))
    print(f"container cold start, mode: history, {args.runs} runs each, interleaved "
          f"(load average {os.getloadavg()[0]:.2f}){'; base ' + args.base if args.base else ''}")
    print(f"{'image':<10} {'size MB':>8} {'first request min/median ms':>30} {'exit min/median ms':>22}")
    for name, runs in results.items():
        first = [f for f, _ in runs]
        done = [d for _, d in runs]
        print(f"{name:<10} {sizes[name] / 1e6:>8.1f} {min(first) * 1e3:>14.0f} / "
              f"{statistics.median(first) * 1e3:<13.0f} {min(done) * 1e3:>10.0f} / "
              f"{statistics.median(done) * 1e3:<9.0f}")
    compiled, plain = results["compiled"], results["plain"]
    print(json.dumps({
        "size_cost_mb": round((sizes["compiled"] - sizes["plain"]) / 1e6, 1),
        "first_request_ratio_plain_over_compiled": round(min(f for f, _ in plain) / min(f for f, _ in compiled), 2),
        "exit_ratio_plain_over_compiled": round(min(d for _, d in plain) / min(d for _, d in compiled), 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
