"""One run per workload at a time: the Lease (``rollback/lease.py``) and what two overlapping runs do.

The decision is table-driven (``decide``); the overlapping runs are real: run A is ``python -m rollback`` in a
subprocess, run B starts while A holds the lease and must be refused at once, naming A, without writing
anything; no ledger entry may be false.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import kubectl
from helpers import RequestLog, cli_environ, get_deployment, image_of, make_deployment, run_cli

import kubesim
from kubesim.knobs import Knobs
from kubesim.resources import CONFIGMAPS, LEASES
from rollback.lease import (
    Holder,
    RunIdentity,
    decide,
    format_time,
    holder_of,
    lease_body,
    lease_name,
    parse_time,
)

ROOT = Path(__file__).resolve().parent.parent
IMG = "registry.example/web:"
NOW = 1_800_000_000.0
ME = RunIdentity("acme/shop", "2222", 1, "octocat", "https://github.com/acme/shop/actions/runs/2222", "aaaa0000")


def lease(holder: str | None, renewed: float | None, duration: int = 30) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": duration}
    if holder is not None:
        spec["holderIdentity"] = holder
    if renewed is not None:
        spec["renewTime"] = format_time(renewed)
    return {"metadata": {"name": "x", "resourceVersion": "7"}, "spec": spec}


OTHER = "acme/shop/runs/1111/attempt/1/hubot/bbbb1111"


@pytest.mark.parametrize("current, action", [
    (None, "create"),
    (lease("", NOW - 1), "take"),  # released
    (lease(None, None), "take"),
    (lease(ME.holder, NOW - 5), "renew"),
    (lease(OTHER, NOW - 5), "held"),  # renewed 5 s ago, 30 s duration
    (lease(OTHER, NOW - 29.5), "held"),
    (lease(OTHER, NOW - 31), "take"),  # expired: its run was killed
    (lease(OTHER, None), "take"),  # no renewTime: never valid
    (lease("acme/shop/runs/2222/attempt/1/octocat/cccc2222", NOW - 1), "held"),  # another job of this attempt
    (lease("someone-else-entirely", NOW - 1), "held"),
])
def test_decide(current: dict[str, Any] | None, action: str) -> None:
    assert decide(current, ME, NOW).action == action


def test_a_rerun_takes_over_the_lease_of_its_earlier_attempt() -> None:
    """GitHub never runs two attempts of one run at once: attempt 2 may take attempt 1's live lease."""
    second = RunIdentity("acme/shop", "2222", 2, "octocat", None)
    decision = decide(lease(ME.holder, NOW - 1), second, NOW)
    assert decision.action == "take" and "attempt 1" in decision.why
    assert decide(lease(second.holder, NOW - 1), ME, NOW).action == "held"  # never the other way round


def test_lease_body_names_the_run_and_counts_transitions() -> None:
    body = lease_body("deployment/web", "shop", ME, "deploying 1.3.0", NOW, 30, lease(OTHER, NOW - 60))
    assert body["spec"]["holderIdentity"] == ME.holder and body["spec"]["leaseTransitions"] == 1
    assert body["metadata"]["resourceVersion"] == "7"
    assert parse_time(body["spec"]["renewTime"]) == pytest.approx(NOW)
    holder = holder_of(body)
    assert isinstance(holder, Holder) and holder.expires == pytest.approx(NOW + 30)
    assert "run 2222 (attempt 1) of acme/shop by octocat" in holder.description
    assert "deploying 1.3.0" in holder.description


def test_lease_names_fit_the_api() -> None:
    assert lease_name("deployment/web") == "kube-release-rollback.deployment.web"
    long = lease_name("statefulset/" + "a" * 253)
    assert len(long) <= 253 and long != lease_name("statefulset/" + "a" * 252 + "b")


def test_identity_from_the_runner_environment() -> None:
    me = RunIdentity.from_env({"GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "3",
                               "GITHUB_ACTOR": "mona", "GITHUB_SERVER_URL": "https://github.com"})
    assert me.holder.startswith("acme/shop/runs/9/attempt/3/mona/")
    assert me.describe() == "run 9 (attempt 3) of acme/shop by mona (https://github.com/acme/shop/actions/runs/9)"
    assert RunIdentity.from_env({}).holder.startswith("local/")


# -- against kubesim -------------------------------------------------------------------------------------------


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(ready_delay=0.05)


def start_run(sim: kubesim.Sim, tmp_path: Path, run_id: str, *args: str) -> subprocess.Popen[str]:
    env = cli_environ(sim, str(tmp_path / f"run-{run_id}"))
    env.update(PYTHONPATH=str(ROOT), GITHUB_RUN_ID=run_id, GITHUB_ACTOR="hubot")
    return subprocess.Popen([sys.executable, "-m", "rollback", "--deployment", "web", *args], env=env,
                            cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lease_holder(sim: kubesim.Sim) -> str:
    found = sim.store.find(LEASES, "default", "kube-release-rollback.deployment.web")
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def entries(sim: kubesim.Sim) -> list[dict[str, Any]]:
    cm = sim.store.find(CONFIGMAPS, "default", "kube-release-rollback-ledger")
    return json.loads(cm["data"]["entries.json"]) if cm else []


@pytest.mark.parametrize("first, second", [
    (("--mode", "deploy", "--release", "2.0.0", "--images", f"web={IMG}broken-2.0.0"),
     ("--mode", "rollback", "--release", "1.0.0")),
    (("--mode", "rollback", "--release", "1.0.0"), ("--mode", "rollback", "--release", "1.0.0")),
])
def test_a_second_run_is_refused_at_once_naming_the_holder(sim: kubesim.Sim, tmp_path: Path,
                                                           first: tuple[str, ...], second: tuple[str, ...]) -> None:
    """Why: two overlapping runs on one workload: the loser exited 0 claiming a rollback it did not do, and
    the ledger recorded a release as succeeded with another release's images."""
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    for release in ("1.0.0", "1.1.0"):
        assert run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", release, "--images",
                       f"web={IMG}{release}").code == 0
    sim.knobs.bad_images.add(IMG + "1.0.0")  # run A's rollback (if it is one) never becomes Ready either
    before = len(entries(sim))

    run_a = start_run(sim, tmp_path, "1111", *first, "--timeout", "8s")
    try:
        sim.wait_until(lambda: lease_holder(sim).startswith("acme/shop/runs/1111/"), timeout=30)
        listed = kubectl(sim, "get", "leases", check=True).stdout
        assert "kube-release-rollback.deployment.web" in listed and "acme/shop/runs/1111/" in listed
        with RequestLog(sim) as log:
            run_b = run_cli(sim, "--deployment", "web", *second, "--timeout", "8s",
                            extra_env={"GITHUB_RUN_ID": "2222"})
        assert run_a.poll() is None, "run A must still be running while B is refused"
    finally:
        out_a, _ = run_a.communicate(timeout=60)

    assert run_b.code == 1, run_b.stdout
    (error,) = run_b.errors
    assert "deployment/web is being changed by another run: run 1111 (attempt 1) of acme/shop by hubot" in error
    assert "Nothing was changed" in error and "wait-for-lease" in error
    assert log.app_writes(include_dry_run=True) == []
    assert [w.path for w in log.writes() if "/configmaps" in w.path] == [], "B must record nothing"
    assert run_b.outputs["skipped"] == "false" and run_b.outputs["rolled-back"] == "false"

    assert run_a.returncode == 1, out_a  # A's release never became Ready: it fails, truthfully
    new = entries(sim)[before:]
    assert [(e["release"], e["result"]) for e in new] == [(first[3], "failed")], new
    assert new[0]["run_url"].endswith("/runs/1111")
    assert lease_holder(sim) == "", "A released its lease at the end"


def test_wait_for_lease_waits_for_the_other_run_then_acts(sim: kubesim.Sim, tmp_path: Path) -> None:
    make_deployment(sim, "web", image=IMG + "1.0.0", replicas=2)
    assert run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.0.0", "--images",
                   f"web={IMG}1.0.0").code == 0
    run_a = start_run(sim, tmp_path, "1111", "--mode", "deploy", "--release", "2.0.0", "--images",
                      f"web={IMG}broken-2.0.0", "--timeout", "4s", "--rollback-on-failure")
    try:
        sim.wait_until(lambda: lease_holder(sim).startswith("acme/shop/runs/1111/"), timeout=30)
        run_b = run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "2.0.1", "--images",
                        f"web={IMG}2.0.1", "--wait-for-lease", "--timeout", "60s", extra_env={"GITHUB_RUN_ID": "2"})
    finally:
        out_a, _ = run_a.communicate(timeout=60)
    assert run_a.returncode == 2, out_a  # A failed and put 1.0.0 back before B started
    assert run_b.code == 0, run_b.stdout
    assert image_of(get_deployment(sim)) == IMG + "2.0.1"
    assert [(e["release"], e["result"]) for e in entries(sim)[-2:]] == [("2.0.0", "rolled-back"),
                                                                        ("2.0.1", "succeeded")]


def test_history_and_dry_runs_take_no_lease(sim: kubesim.Sim) -> None:
    make_deployment(sim, "web", image=IMG + "1.0.0")
    with RequestLog(sim) as log:
        assert run_cli(sim, "--deployment", "web", "--mode", "history").code == 0
        run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.0.1", "--images",
                f"web={IMG}1.0.1", "--dry-run")
    assert not [e for e in log.entries if "/leases" in e.path]


def test_a_lease_is_renewed_while_held_and_released_at_the_end(sim: kubesim.Sim) -> None:
    from rollback.cluster import Api, ApiFailure, Credentials, connect
    from rollback.lease import LeaseHeld, Leases

    api = Api(connect(Credentials(), {"KUBECONFIG": sim.kubeconfig}).api_client)
    mine = Leases(api, "default", ME, duration=1)  # renewed every third of a second
    (taken,) = mine.acquire(["deployment/web"], "deploying 1.3.0")
    assert taken.decision.action == "create"
    first = sim.store.get(LEASES, "default", taken.name)["spec"]["renewTime"]
    mine.keep_renewed(until=float("inf"))
    try:
        sim.wait_until(lambda: sim.store.get(LEASES, "default", taken.name)["spec"]["renewTime"] != first,
                       timeout=20)
        other = Leases(api, "default", RunIdentity("acme/shop", "3333", 1, "hubot", None))
        with pytest.raises(LeaseHeld) as held:
            other.acquire(["deployment/web"], "rolling back to 1.2.0")
        assert "run 2222 (attempt 1) of acme/shop by octocat" in str(held.value)
        assert "deploying 1.3.0" in str(held.value)
    finally:
        mine.release()
    spec = sim.store.get(LEASES, "default", taken.name)["spec"]
    assert spec["holderIdentity"] == ""
    (again,) = Leases(api, "default", RunIdentity("acme/shop", "3333", 1, "hubot", None)).acquire(
        ["deployment/web"], "rolling back to 1.2.0")
    assert again.decision.action == "take" and "released" in again.decision.why
    with pytest.raises(ApiFailure) as invalid:  # kubesim validates Leases like the API server
        api.replace(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{taken.name}",
                    {**sim.store.get(LEASES, "default", taken.name), "spec": {"leaseDurationSeconds": 0}})
    assert invalid.value.status == 422 and "must be greater than 0" in str(invalid.value)


def test_missing_lease_permissions_never_stop_a_rollback_but_stop_a_deploy(tmp_path: Path) -> None:
    knobs = Knobs(ready_delay=0.05)
    knobs.grant("admin", "admin")
    knobs.grant("old-role", "deployer", resources=("deployments", "replicasets", "configmaps", "pods"))
    with kubesim.serve(knobs=knobs, token="admin", kubeconfig_path=str(tmp_path / "kubeconfig")) as sim:
        make_deployment(sim, "web", image=IMG + "1.0.0")
        for release in ("1.0.0", "1.1.0"):
            assert run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", release, "--images",
                           f"web={IMG}{release}").code == 0
        old = tmp_path / "old-role.kubeconfig"
        old.write_text(Path(sim.kubeconfig).read_text().replace("token: admin", "token: old-role"))
        deploy = run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.2.0", "--images",
                         f"web={IMG}1.2.0", extra_env={"KUBECONFIG": str(old)})
        assert deploy.code == 1 and any("403" in e and "RBAC" in e for e in deploy.errors), deploy.stdout
        assert image_of(get_deployment(sim)) == IMG + "1.1.0"
        rollback = run_cli(sim, "--deployment", "web", "--mode", "rollback", "--release", "1.0.0",
                           extra_env={"KUBECONFIG": str(old)})
        assert rollback.code == 0, rollback.stdout
        assert any("could not take the workloads' leases" in w for w in rollback.warnings)
        assert image_of(get_deployment(sim)) == IMG + "1.0.0"


def test_kubectl_sees_kubesims_leases(sim: kubesim.Sim) -> None:
    """kubesim serves coordination.k8s.io/v1 Leases as the API server does: discovery, create, get, the
    NAME/HOLDER/AGE table, validation."""
    resources = kubectl(sim, "api-resources", "--api-group", "coordination.k8s.io", check=True).stdout
    assert "leases" in resources and "coordination.k8s.io/v1" in resources and "Lease" in resources
    body = lease_body("deployment/web", "default", ME, "deploying 1.3.0", NOW, 30, None)
    kubectl(sim, "create", "-f", "-", input=json.dumps(body), check=True)
    table = kubectl(sim, "get", "leases", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "HOLDER", "AGE"]
    assert table[1].split()[:2] == ["kube-release-rollback.deployment.web", ME.holder]
    got = json.loads(kubectl(sim, "get", "lease", "kube-release-rollback.deployment.web", "-o", "json",
                             check=True).stdout)
    assert got["spec"]["holderIdentity"] == ME.holder and got["spec"]["leaseDurationSeconds"] == 30
    body["spec"]["leaseDurationSeconds"] = -1
    body["metadata"].pop("resourceVersion", None)
    refused = kubectl(sim, "replace", "-f", "-", input=json.dumps(body))
    assert refused.returncode != 0 and "spec.leaseDurationSeconds: Invalid value: -1: must be greater than 0" in (
        refused.stderr)


def test_taking_over_an_expired_lease_is_said_and_a_released_one_is_not(sim: kubesim.Sim) -> None:
    """A killed run's lease (expired) is taken over and the log names whose it was; the lease an earlier run
    released at its end is simply taken (no line: every second run would print one)."""
    make_deployment(sim, "web", image=IMG + "1.0.0")
    first = run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.0.1", "--images",
                    f"web={IMG}1.0.1")
    assert first.code == 0, first.stdout
    second = run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.0.2", "--images",
                     f"web={IMG}1.0.2")
    assert second.code == 0 and "took over the lease" not in second.stdout, second.stdout
    name = lease_name("deployment/web")
    held = sim.store.get(LEASES, "default", name)
    held["spec"].update(holderIdentity=OTHER, renewTime=format_time(time.time() - 3600), leaseDurationSeconds=30)
    sim.apply(held)
    third = run_cli(sim, "--deployment", "web", "--mode", "deploy", "--release", "1.0.3", "--images",
                    f"web={IMG}1.0.3")
    assert third.code == 0, third.stdout
    (line,) = [line for line in third.stdout.splitlines() if "took over the lease" in line]
    assert line.startswith("deployment/web: took over the lease of ") and "expired" in line, line
