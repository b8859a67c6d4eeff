"""The image's diet is safe: the action works with everything the Dockerfile removes made unimportable.

There is no Docker engine here, so instead of building the image, the entrypoint runs in a subprocess whose
import system refuses exactly the distributions and paths the Dockerfile uninstalls or deletes, through a
deploy, a calculate and a rollback against kubesim.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import make_deployment, parse_github_output

import kubesim

ROOT = Path(__file__).resolve().parents[1]
# distribution name -> the top-level modules it installs
MODULES = {
    "aiohttp": ("aiohttp",), "aiohttp-retry": ("aiohttp_retry",), "aiohappyeyeballs": ("aiohappyeyeballs",),
    "aiosignal": ("aiosignal",), "attrs": ("attr", "attrs"), "frozenlist": ("frozenlist",),
    "multidict": ("multidict",), "propcache": ("propcache",), "yarl": ("yarl",), "pip": ("pip",),
    "setuptools": ("setuptools", "pkg_resources"),
}
BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or any(name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"{name} is removed from the image", name=name)
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = [sys.argv[2]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def removed_by_dockerfile() -> list[str]:
    """Module names the Dockerfile removes: its `pip uninstall --yes ...` lists and deleted package paths."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    modules: list[str] = []
    for names in re.findall(r"pip uninstall --yes ([^\\&\n]+)", text):
        for name in names.split():
            assert name in MODULES, f"the Dockerfile uninstalls {name}: add its modules to MODULES"
            modules.extend(MODULES[name])
    for path in re.findall(r"rm -rf \S*/site-packages/(\S+)", text):
        modules.append(path.strip("/").replace("/", "."))
    return modules


def test_the_dockerfile_diet_is_what_this_test_blocks() -> None:
    removed = removed_by_dockerfile()
    assert "kubernetes.aio" in removed and "aiohttp" in removed and "pip" in removed


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text("import aiohttp\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", BLOCKER, "aiohttp", str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "removed from the image" in proc.stderr


def test_action_runs_without_what_the_image_removes(tmp_path: Path) -> None:
    blocked = ",".join(removed_by_dockerfile())
    with kubesim.serve(kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", image="registry.example/web:0")
        kubeconfig = Path(sim.kubeconfig).read_text(encoding="utf-8")

        def entrypoint(**inputs: str) -> dict[str, str]:
            output = tmp_path / "output"
            output.write_text("", encoding="utf-8")
            env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CI": "true",
                   "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output),
                   "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "GITHUB_WORKSPACE": str(tmp_path),
                   "INPUT_KUBECONFIG": kubeconfig, "INPUT_DEPLOYMENT": "web", "INPUT_NAMESPACE": "default",
                   "INPUT_TIMEOUT": "60s"}
            env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
            proc = subprocess.run([sys.executable, "-c", BLOCKER, blocked, str(ROOT / "entrypoint.py")],
                                  capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "removed from the image" not in proc.stderr
            return parse_github_output(output.read_text(encoding="utf-8"))

        first = entrypoint(mode="deploy", release="1.0.0", images="web=registry.example/web:1")
        entrypoint(mode="deploy", release="2.0.0", images="web=registry.example/web:2")
        calculated = entrypoint(mode="calculate", release="1.0.0")
        rolled = entrypoint(mode="rollback", release="1.0.0", reason="diet check")
    assert first["mode"] == "deploy" and first["release"] == "1.0.0"
    assert calculated["mode"] == "rollback"
    assert rolled["release"] == "1.0.0" and rolled["previous-release"] == "2.0.0"
    assert json.loads(rolled["result"])[0]["action"] == "rolled-back"

