"""`make demo`: the whole story against an in-process kubesim cluster.

Deploys three releases of deployment/web (each with its change-cause in the same write), rolls back to the
first one by name with a reason, and prints what a workflow would see: the log, the outputs and the job
summary, plus `kubectl rollout history` when kubectl is on PATH (it agrees with us).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from kubesim import serve
from rollback.cli import main

NAMESPACE = "shop"
WEB = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": NAMESPACE, "labels": {"app": "web"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "ghcr.io/example/web:0.9.0"}]},
        },
    },
}


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text} ===\033[0m", flush=True)


def step(title: str, workdir: str, env: dict[str, str], *args: str, expect: int = 0) -> dict[str, str]:
    banner(title)
    print("$ python -m rollback " + " ".join(args), flush=True)
    output = os.path.join(workdir, "output.txt")
    summary = os.path.join(workdir, "summary.md")
    for path in (output, summary):
        open(path, "w").close()
    step_env = dict(env, GITHUB_OUTPUT=output, GITHUB_STEP_SUMMARY=summary)
    code = main(list(args), environ=step_env)
    print(f"(exit code {code})")
    if code != expect:
        raise SystemExit(f"demo step {title!r} exited {code}, expected {expect}")
    with open(summary, encoding="utf-8") as handle:
        markdown = handle.read()
    with open(output, encoding="utf-8") as handle:
        return {"summary": markdown, "outputs": handle.read()}


def main_demo() -> int:
    with tempfile.TemporaryDirectory() as workdir, serve() as sim:
        print(f"kubesim (a simulated Kubernetes API server) is listening on {sim.url}")
        sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        sim.apply(WEB)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
        env["KUBECONFIG"] = sim.kubeconfig
        common = ["--namespace", NAMESPACE, "--deployment", "deployment/web", "--timeout", "2m"]
        for release in ("1.0.0", "1.1.0", "1.2.0"):
            step(f"deploy {release}", workdir, env, "--mode", "deploy", "--release", release,
                 "--images", f"web=ghcr.io/example/web:{release}", *common)
        step("calculate: what would deploying 1.0.0 again be?", workdir, env,
             "--mode", "calculate", "--release", "1.0.0", *common)
        last = step("rollback to 1.0.0 by name", workdir, env, "--mode", "rollback", "--release", "1.0.0",
                    "--reason", "1.2.0 returns 500 on checkout", *common)
        banner("job summary of the rollback ($GITHUB_STEP_SUMMARY)")
        print(last["summary"])
        step("auto-deploy 1.2.0 again: refused, the rollback blocked it", workdir, env, "--mode", "auto",
             "--release", "1.2.0", "--images", "web=ghcr.io/example/web:1.2.0", *common, expect=1)
        if shutil.which("kubectl"):
            banner("kubectl rollout history deployment/web (real kubectl against kubesim)")
            subprocess.run(["kubectl", "--kubeconfig", sim.kubeconfig, "-n", NAMESPACE, "rollout", "history",
                            "deployment/web", "--cache-dir", os.path.join(workdir, "kube-cache")], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main_demo())
