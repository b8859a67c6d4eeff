"""The release ledger: pure state (facts, blocks, bounds, JSON layout) and the ConfigMap store.

The store is tested twice: against kubesim over real HTTP (create, update, conflicts, two OS processes writing at
once) and against a tiny in-memory stand-in for the error paths kubesim is not needed for (403, endless conflicts).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.config import new_client_from_config

from kubesim import serve
from rollback.cluster import Api, ApiFailure
from rollback.ledger import (
    BLOCKS_KEY,
    DRY_RUN,
    ENTRIES_KEY,
    FAILED,
    FORMAT_KEY,
    LEDGER_NAME,
    MAX_BLOCKS,
    MAX_BLOCKS_BYTES,
    MAX_ENTRIES,
    MAX_ENTRIES_BYTES,
    MAX_TEXT,
    REFUSED,
    ROLLED_BACK,
    SUCCEEDED,
    UNBLOCKED,
    Block,
    ConfigMapLedger,
    Entry,
    GitHubContext,
    LedgerError,
    LedgerState,
)
from rollback.modes import LedgerFacts

ROOT = Path(__file__).resolve().parent.parent
CTX = GitHubContext(
    actor="mona",
    repository="octo-org/shop",
    workflow="deploy",
    run_id="42",
    server_url="https://github.com",
    event_name="workflow_dispatch",
)


def entry(
    release: str,
    result: str = SUCCEEDED,
    mode: str = "deploy",
    workload: str = "deployment/web",
    n: int = 0,
    reason: str = "",
) -> Entry:
    return Entry.new(
        CTX,
        namespace="staging",
        workload=workload,
        release=release,
        mode=mode,
        result=result,
        revision=n or None,
        images=(f"web=shop:{release}",),
        reason=reason,
        time=f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}Z",
    )


def state(*entries: Entry) -> LedgerState:
    s = LedgerState()
    for e in entries:
        s = s.with_entry(e)
    return s


def facts(successful: str | None, attempted: str | None) -> tuple[str | None, str | None]:
    return (successful, attempted)


def two(f: LedgerFacts) -> tuple[str | None, str | None]:
    return (f.last_successful, f.last_attempted)


# --- facts: Octopus CurrentForEnvironment (last successful) / PreviousForEnvironment (last attempted) ------------


def test_empty_ledger_has_no_facts() -> None:
    assert LedgerState().facts() == LedgerFacts(last_successful=None, last_attempted=None, succeeded=())
    assert LedgerState().exists is False


def test_first_deploy() -> None:
    assert two(state(entry("1.0.0")).facts()) == facts("1.0.0", "1.0.0")


def test_redeploy() -> None:
    s = state(entry("1.0.0"), entry("1.0.0", mode="redeploy"))
    assert two(s.facts()) == facts("1.0.0", "1.0.0")


def test_failed_deploy_of_higher_version_after_success() -> None:
    """1.2 succeeded, 1.3 failed: deploying 1.2 next is a rollback (Octopus v5 'account for failed releases')."""
    s = state(entry("1.2.0"), entry("1.3.0", result=FAILED))
    assert two(s.facts()) == facts("1.2.0", "1.3.0")
    s = state(entry("1.2.0"), entry("1.3.0", result=ROLLED_BACK))  # failed and undone by the action
    assert two(s.facts()) == facts("1.2.0", "1.3.0")


def test_rollback_entries() -> None:
    s = state(entry("1.1.0"), entry("1.2.0"), entry("1.1.0", mode="rollback", reason="500s on checkout"))
    assert two(s.facts()) == facts("1.1.0", "1.1.0")
    s = s.with_entry(entry("1.2.1"))
    assert two(s.facts()) == facts("1.2.1", "1.2.1")


def test_succeeded_lists_every_successful_release_newest_first_once() -> None:
    s = state(
        entry("1.0"),
        entry("1.1"),
        entry("1.2", result=FAILED),
        entry("1.0", mode="rollback"),
        entry("1.3", result=ROLLED_BACK),
        entry("1.4", result=REFUSED),
    )
    f = s.facts()
    assert f.succeeded == ("1.0", "1.1")
    assert two(f) == facts("1.0", "1.3")
    assert s.facts("deployment/other").succeeded == ()


def test_runs_that_change_nothing_are_not_attempts() -> None:
    base = state(entry("1.2.0"))
    for result in (REFUSED, DRY_RUN, UNBLOCKED, "some-future-result"):
        assert two(base.with_entry(entry("1.3.0", result=result)).facts()) == facts("1.2.0", "1.2.0")


def test_pre_release_is_its_own_release() -> None:
    """Octopus strips at the first '-' so 1.2.3-beta == 1.2.3; we compare releases exactly."""
    s = state(entry("1.2.3"), entry("1.2.3-beta.1"))
    assert two(s.facts()) == facts("1.2.3-beta.1", "1.2.3-beta.1")
    s = state(entry("1.2.3-rc.1"), entry("1.2.3", result=FAILED))
    assert two(s.facts()) == facts("1.2.3-rc.1", "1.2.3")


def test_sha_and_odd_version_shapes() -> None:
    sha1, sha2 = "3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49", "a1b2c3d"
    s = state(entry(sha1), entry(sha2, result=FAILED))
    assert two(s.facts()) == facts(sha1, sha2)
    s = state(entry("1"), entry("1.2.3.4.5"), entry("2021.09.23.1", result=FAILED))  # 1-part, 5-part, calver
    assert two(s.facts()) == facts("1.2.3.4.5", "2021.09.23.1")


def test_facts_per_workload() -> None:
    s = state(
        entry("1.0", workload="deployment/web"), entry("2.0", workload="deployment/worker", result=FAILED)
    )
    assert two(s.facts("deployment/web")) == facts("1.0", "1.0")
    assert two(s.facts("deployment/worker")) == facts(None, "2.0")
    assert two(s.facts("deployment/other")) == facts(None, None)
    assert two(s.facts()) == facts("1.0", "2.0")
    assert [e.release for e in s.entries_for("deployment/worker")] == ["2.0"]


# --- bounds ------------------------------------------------------------------------------------------------------


def test_oldest_entries_dropped_beyond_max() -> None:
    s = state(*(entry(f"1.0.{i}", n=i) for i in range(MAX_ENTRIES + 50)))
    assert len(s.entries) == MAX_ENTRIES
    assert s.entries[0].release == "1.0.50" and s.entries[-1].release == f"1.0.{MAX_ENTRIES + 49}"
    assert two(s.facts()) == facts(f"1.0.{MAX_ENTRIES + 49}", f"1.0.{MAX_ENTRIES + 49}")


def test_byte_budget_and_clipped_reasons() -> None:
    huge = "€" * 100_000  # 3 bytes each in UTF-8
    s = state(*(entry(f"1.0.{i}", n=i, reason=huge) for i in range(MAX_ENTRIES)))
    assert all(len(e.reason) == MAX_TEXT for e in s.entries)
    assert len(s.to_data()[ENTRIES_KEY].encode()) <= MAX_ENTRIES_BYTES
    assert len(s.entries) < MAX_ENTRIES and s.entries[-1].release == f"1.0.{MAX_ENTRIES - 1}"
    blocked = LedgerState()
    for i in range(MAX_BLOCKS + 10):
        blocked = blocked.with_block(Block.new(CTX, release=f"1.0.{i}", namespace="staging", reason=huge))
    assert all(len(b.reason) == MAX_TEXT for b in blocked.blocks)
    data = blocked.to_data()
    assert len(data[BLOCKS_KEY].encode()) <= MAX_BLOCKS_BYTES and len(blocked.blocks) <= MAX_BLOCKS
    assert blocked.block_for(f"1.0.{MAX_BLOCKS + 9}") is not None
    assert len(s.to_data()[ENTRIES_KEY].encode()) + len(data[BLOCKS_KEY].encode()) < 1024 * 1024


# --- blocks ------------------------------------------------------------------------------------------------------


def test_blocks() -> None:
    s = LedgerState()
    assert s.block_for("1.3.0") is None
    first = Block.new(
        CTX, release="1.3.0", namespace="staging", reason="memory leak", time="2024-05-01T12:00:00Z"
    )
    s = s.with_block(first)
    assert s.block_for("1.3.0") == first
    assert s.block_for("1.3.0-rc.1") is None  # exact release only
    again = Block.new(
        GitHubContext(actor="hubot"),
        release="1.3.0",
        namespace="staging",
        reason="still leaking",
        time="2024-05-01T13:00:00Z",
    )
    s = s.with_block(again).with_block(Block.new(CTX, release="1.4.0", namespace="staging", reason="x"))
    assert len(s.blocks) == 2 and s.block_for("1.3.0") == again
    s = s.without_block("1.3.0")
    assert s.block_for("1.3.0") is None and s.block_for("1.4.0") is not None
    assert s.without_block("9.9.9") == s


def test_block_describe_says_who_when_why() -> None:
    b = Block.new(
        CTX, release="1.3.0", namespace="staging", reason="memory leak", time="2024-05-01T12:00:00Z"
    )
    text = b.describe()
    for part in (
        "1.3.0",
        "mona",
        "2024-05-01T12:00:00Z",
        "staging",
        "memory leak",
        "https://github.com/octo-org/shop/actions/runs/42",
    ):
        assert part in text
    assert "no reason given" in Block("1", "", "", None, "t").describe()


# --- GitHub context ----------------------------------------------------------------------------------------------


def test_github_context_from_env() -> None:
    env = {
        "GITHUB_ACTOR": "mona",
        "GITHUB_REPOSITORY": "octo-org/shop",
        "GITHUB_WORKFLOW": "Deploy",
        "GITHUB_RUN_ID": "1234",
        "GITHUB_SERVER_URL": "https://ghe.example.com/",
        "GITHUB_EVENT_NAME": "push",
    }
    ctx = GitHubContext.from_env(env)
    assert ctx.run_url == "https://ghe.example.com/octo-org/shop/actions/runs/1234"
    e = Entry.new(
        ctx, namespace="prod", workload="deployment/web", release="1", mode="deploy", result=SUCCEEDED
    )
    assert (e.actor, e.repository, e.workflow, e.event) == ("mona", "octo-org/shop", "Deploy", "push")
    assert e.run_url == ctx.run_url and e.time.endswith("Z")


def test_github_context_absent_for_local_runs() -> None:
    ctx = GitHubContext.from_env({"GITHUB_RUN_ID": "", "HOME": "/home/runner"})
    assert ctx == GitHubContext() and ctx.run_url is None
    assert GitHubContext.from_env({"GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "1"}).run_url is None


# --- JSON layout -------------------------------------------------------------------------------------------------


def test_data_layout() -> None:
    s = state(entry("1.0", n=1)).with_block(
        Block.new(CTX, release="1.0", namespace="staging", reason="r", time="2024-05-01T00:00:00Z")
    )
    data = s.to_data()
    assert set(data) == {FORMAT_KEY, ENTRIES_KEY, BLOCKS_KEY} and data[FORMAT_KEY] == "1"
    [e] = json.loads(data[ENTRIES_KEY])
    assert e == {
        "time": "2024-05-01T12:00:01Z",
        "namespace": "staging",
        "workload": "deployment/web",
        "release": "1.0",
        "mode": "deploy",
        "result": "succeeded",
        "revision": 1,
        "images": ["web=shop:1.0"],
        "reason": "",
        "actor": "mona",
        "repository": "octo-org/shop",
        "workflow": "deploy",
        "run_url": "https://github.com/octo-org/shop/actions/runs/42",
        "event": "workflow_dispatch",
        "allow_blocked": False,
        "managed_by": [],
        "run": None,
        "would_block": None,
        "cluster": None,
    }
    [b] = json.loads(data[BLOCKS_KEY])
    assert b == {
        "release": "1.0",
        "namespace": "staging",
        "reason": "r",
        "actor": "mona",
        "time": "2024-05-01T00:00:00Z",
        "run_url": "https://github.com/octo-org/shop/actions/runs/42",
        "source": "ledger",
    }
    assert LedgerState().to_data()[ENTRIES_KEY] == "[]"


texts = st.text(max_size=40)
entries_st = st.builds(
    Entry,
    time=texts,
    namespace=texts,
    workload=texts,
    release=texts,
    mode=texts,
    result=st.sampled_from([SUCCEEDED, FAILED, ROLLED_BACK, REFUSED]),
    revision=st.none() | st.integers(1, 10**6),
    images=st.lists(texts, max_size=3).map(tuple),
    reason=texts,
    actor=st.none() | texts.filter(bool),
    repository=st.none() | texts.filter(bool),
    workflow=st.none() | texts.filter(bool),
    run_url=st.none() | texts.filter(bool),
    event=st.none() | texts.filter(bool),
    allow_blocked=st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(entries_st, max_size=5))
def test_data_round_trip(entries: list[Entry]) -> None:
    s = state(*entries)
    assert LedgerState.from_data(s.to_data()) == s


def test_tolerant_parsing_and_refusals() -> None:
    assert LedgerState.from_data(None) == LedgerState()
    assert LedgerState.from_data({}).exists is True
    partial = LedgerState.from_data({ENTRIES_KEY: '[{"release": "1.0", "result": "succeeded", "extra": 1}]'})
    assert two(partial.facts()) == facts("1.0", "1.0") and partial.entries[0].actor is None
    with pytest.raises(LedgerError, match="format '2'.*newer version"):
        LedgerState.from_data({FORMAT_KEY: "2", ENTRIES_KEY: "[]"})
    for bad in ("{", '{"release": "1"}', "[1]", '[{"images": "web=x"}]'):
        with pytest.raises(LedgerError, match="not a valid ledger"):
            LedgerState.from_data({ENTRIES_KEY: bad}, where="ConfigMap staging/x")


# --- ConfigMapLedger against an in-memory stand-in (error paths) --------------------------------------------------


class FakeApi:
    """Just enough of rollback.cluster.Api for one ConfigMap: resourceVersion checks, 404/409, and failure
    injection."""

    def __init__(self) -> None:
        self.cm: Any = None  # the stored ConfigMap (a dict, as the API server answers)
        self.rv = 0
        self.calls: list[tuple[str, str | None]] = []
        self.fail_writes: list[int] = []  # statuses to answer the next writes with

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        self.calls.append(("read", None))
        if self.cm is None:
            raise ApiFailure(404, "NotFound", "not found")
        return copy.deepcopy(self.cm)  # type: ignore[no-any-return]

    def _write(self, verb: str, body: Any, dry_run: str | None) -> dict[str, Any]:
        self.calls.append((verb, dry_run))
        if self.fail_writes:
            raise ApiFailure(self.fail_writes.pop(0), "injected", "injected")
        if verb == "create" and self.cm is not None:
            raise ApiFailure(409, "AlreadyExists", "already exists")
        if verb == "replace" and body["metadata"].get("resourceVersion") != self.cm["metadata"]["resourceVersion"]:
            raise ApiFailure(409, "Conflict", "conflict")
        body = copy.deepcopy(body)
        if dry_run:
            return body  # type: ignore[no-any-return]
        self.rv += 1
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.cm = body
        return copy.deepcopy(body)  # type: ignore[no-any-return]

    def create(self, path: str, body: Any, dryRun: str | None = None, **query: Any) -> dict[str, Any]:  # noqa: N803
        assert path == "/api/v1/namespaces/staging/configmaps"
        return self._write("create", body, dryRun)

    def replace(self, path: str, body: Any, dryRun: str | None = None, **query: Any) -> dict[str, Any]:  # noqa: N803
        assert path == f"/api/v1/namespaces/staging/configmaps/{LEDGER_NAME}"
        return self._write("replace", body, dryRun)


def fake_ledger(api: FakeApi, **kwargs: Any) -> ConfigMapLedger:
    return ConfigMapLedger(api, "staging", sleep=lambda s: None, **kwargs)


def test_fake_create_then_update_and_noop() -> None:
    api = FakeApi()
    ledger = fake_ledger(api)
    assert ledger.load() == LedgerState() and not ledger.load().exists
    assert ledger.update(lambda s: s) == LedgerState()  # nothing to write: no ConfigMap created
    assert [c[0] for c in api.calls].count("create") == 0
    s = ledger.update(lambda s: s.with_entry(entry("1.0")))
    assert s.exists and two(s.facts()) == facts("1.0", "1.0")
    assert api.cm is not None and api.cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kube-release-rollback"
    }
    ledger.update(lambda s: s.without_block("1.0"))  # no block: no write
    assert [c[0] for c in api.calls].count("replace") == 0


def test_fake_dry_run_sends_dry_run_all() -> None:
    api = FakeApi()
    s = fake_ledger(api).update(lambda s: s.with_entry(entry("1.0")), dry_run=True)
    assert two(s.facts()) == facts("1.0", "1.0") and api.cm is None
    assert ("create", "All") in api.calls


def test_fake_forbidden_names_the_rbac() -> None:
    api = FakeApi()
    api.fail_writes = [403]
    with pytest.raises(LedgerError, match="configmaps.*get, create and update.*staging") as info:
        fake_ledger(api).update(lambda s: s.with_entry(entry("1.0")))
    assert info.value.status == 403


def test_fake_gives_up_after_bounded_conflicts() -> None:
    api = FakeApi()
    api.fail_writes = [409] * 3
    sleeps: list[float] = []
    ledger = ConfigMapLedger(api, "staging", max_attempts=3, sleep=sleeps.append, jitter=lambda: 0.5)
    with pytest.raises(LedgerError, match="3 attempts") as info:
        ledger.update(lambda s: s.with_entry(entry("1.0")))
    assert info.value.status == 409 and sleeps == [0.05, 0.1]
    api.fail_writes = [409, 500]
    with pytest.raises(LedgerError, match="HTTP 500"):
        ledger.update(lambda s: s.with_entry(entry("1.0")))


def test_fake_missing_namespace_is_not_retried() -> None:
    api = FakeApi()
    api.fail_writes = [404]
    with pytest.raises(LedgerError, match="namespace staging not found"):
        fake_ledger(api).update(lambda s: s.with_entry(entry("1.0")))
    assert [c[0] for c in api.calls] == ["read", "create"]


def test_fake_deleted_between_read_and_replace_is_retried() -> None:
    api = FakeApi()
    ledger = fake_ledger(api)
    ledger.update(lambda s: s.with_entry(entry("1.0")))
    api.fail_writes = [404]
    ledger.update(lambda s: s.with_entry(entry("1.1")))
    assert [e.release for e in ledger.load().entries] == ["1.0", "1.1"]


def test_fake_keeps_foreign_labels_annotations_and_keys() -> None:
    api = FakeApi()
    api.cm = {"metadata": {"name": LEDGER_NAME, "namespace": "staging", "resourceVersion": "7",
                           "labels": {"team": "shop"}, "annotations": {"note": "hi"}},
              "data": {"README": "do not edit"}}
    fake_ledger(api).update(lambda s: s.with_entry(entry("1.0")))
    assert api.cm["metadata"]["labels"] == {"team": "shop", "app.kubernetes.io/managed-by": "kube-release-rollback"}
    assert api.cm["metadata"]["annotations"] == {"note": "hi"}
    assert api.cm["data"]["README"] == "do not edit" and api.cm["data"][FORMAT_KEY] == "1"


def test_fake_refuses_to_overwrite_unreadable_ledger() -> None:
    api = FakeApi()
    api.cm = {"metadata": {"name": LEDGER_NAME, "resourceVersion": "1"}, "data": {ENTRIES_KEY: "not json"}}
    with pytest.raises(LedgerError, match="not a valid ledger"):
        fake_ledger(api).update(lambda s: s.with_entry(entry("1.0")))
    assert api.cm["data"] == {ENTRIES_KEY: "not json"}


# --- ConfigMapLedger against kubesim -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with serve() as running:
        yield running


_namespaces = iter(range(1, 10**6))


@pytest.fixture()
def ns(sim: Any) -> str:
    """A fresh namespace per test, so tests do not see each other's ledgers."""
    name = f"env-{next(_namespaces)}"
    sim.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def core(sim: Any) -> Api:
    return Api(new_client_from_config(config_file=sim.kubeconfig))


def read_configmap(api: Api, ns: str) -> dict[str, Any]:
    return api.get(f"/api/v1/namespaces/{ns}/configmaps/{LEDGER_NAME}")


def test_load_missing_then_create_and_update(sim: Any, ns: str) -> None:
    api = core(sim)
    ledger = ConfigMapLedger(api, ns)
    assert ledger.load() == LedgerState() and ledger.load().exists is False
    with pytest.raises(ApiFailure) as info:
        read_configmap(api, ns)
    assert info.value.status == 404

    written = ledger.update(lambda s: s.with_entry(entry("1.0")))
    assert written.exists and two(written.facts()) == facts("1.0", "1.0")
    cm = read_configmap(api, ns)
    assert cm["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kube-release-rollback"}
    assert cm["data"][FORMAT_KEY] == "1" and json.loads(cm["data"][ENTRIES_KEY])[0]["release"] == "1.0"
    assert json.loads(cm["data"][BLOCKS_KEY]) == []

    block = Block.new(CTX, release="1.1", namespace=ns, reason="leaks memory", time="2024-05-01T00:00:00Z")
    ledger.update(lambda s: s.with_entry(entry("1.1", result=FAILED)).with_block(block))
    loaded = ConfigMapLedger(core(sim), ns).load()
    assert loaded.exists and two(loaded.facts()) == facts("1.0", "1.1") and loaded.block_for("1.1") == block
    rv = read_configmap(api, ns)["metadata"]["resourceVersion"]
    ledger.update(lambda s: s.without_block("9.9"))  # nothing to change: no write
    assert read_configmap(api, ns)["metadata"]["resourceVersion"] == rv


def test_dry_run_persists_nothing(sim: Any, ns: str) -> None:
    ledger = ConfigMapLedger(core(sim), ns)
    would = ledger.update(lambda s: s.with_entry(entry("1.0")), dry_run=True)
    assert two(would.facts()) == facts("1.0", "1.0")
    assert ledger.load().exists is False
    ledger.update(lambda s: s.with_entry(entry("1.0")))
    ledger.update(lambda s: s.with_entry(entry("2.0")), dry_run=True)
    assert two(ledger.load().facts()) == facts("1.0", "1.0")


def test_stale_replace_is_retried_and_both_writes_land(sim: Any, ns: str) -> None:
    """Between our read and our write, another client writes: our replace gets 409 Conflict, we re-read and
    re-apply the change, and neither write is lost."""
    mine, theirs = ConfigMapLedger(core(sim), ns), ConfigMapLedger(core(sim), ns)
    mine.update(lambda s: s.with_entry(entry("1.0")))
    seen: list[int] = []

    def change(s: LedgerState) -> LedgerState:
        seen.append(len(s.entries))
        if len(seen) == 1:
            theirs.update(lambda t: t.with_entry(entry("1.1", workload="deployment/worker")))
        return s.with_entry(entry("1.2"))

    result = mine.update(change)
    assert seen == [1, 2]  # applied to the stale read, then again to the fresh one
    assert [e.release for e in result.entries] == ["1.0", "1.1", "1.2"]
    assert [e.release for e in mine.load().entries] == ["1.0", "1.1", "1.2"]


def test_create_race_is_retried(sim: Any, ns: str) -> None:
    """Both writers see no ConfigMap; the second create gets 409 AlreadyExists and turns into a replace."""
    mine, theirs = ConfigMapLedger(core(sim), ns), ConfigMapLedger(core(sim), ns)
    seen: list[bool] = []

    def change(s: LedgerState) -> LedgerState:
        seen.append(s.exists)
        if len(seen) == 1:
            theirs.update(lambda t: t.with_entry(entry("1.0")))
        return s.with_entry(entry("1.1"))

    mine.update(change)
    assert seen == [False, True]
    assert [e.release for e in mine.load().entries] == ["1.0", "1.1"]


def test_forbidden_write_names_the_rbac(sim: Any, ns: str) -> None:
    sim.knobs.fail_next(1, method="POST", path="/configmaps", status=403)
    with pytest.raises(LedgerError, match="configmaps.*get, create and update") as info:
        ConfigMapLedger(core(sim), ns).update(lambda s: s.with_entry(entry("1.0")))
    assert info.value.status == 403


WRITER = textwrap.dedent("""
    import sys, time
    from kubernetes import config
    from rollback.cluster import Api
    from rollback.ledger import ConfigMapLedger, Entry, GitHubContext, SUCCEEDED

    kubeconfig, namespace, who = sys.argv[1:4]
    count, start_at = int(sys.argv[4]), float(sys.argv[5])
    api = Api(config.new_client_from_config(config_file=kubeconfig))
    ledger = ConfigMapLedger(api, namespace, max_attempts=50)
    time.sleep(max(0.0, start_at - time.time()))
    calls = 0
    for i in range(count):
        e = Entry.new(GitHubContext(actor=who), namespace=namespace, workload="deployment/web",
                      release=f"{who}-{i}", mode="deploy", result=SUCCEEDED)
        def change(s, e=e):
            global calls
            calls += 1
            return s.with_entry(e)
        ledger.update(change)
    print(calls)
""")


def test_two_processes_writing_at_once_lose_nothing(sim: Any, ns: str) -> None:
    count = 20
    start_at = time.time() + 1.5  # both interpreters are up and connected before either writes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, sim.kubeconfig, ns, who, str(count), str(start_at)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    releases = [e.release for e in ConfigMapLedger(core(sim), ns).load().entries]
    assert sorted(releases) == sorted(f"{who}-{i}" for who in "ab" for i in range(count))
    for who in "ab":  # each writer's own entries stay in its order
        assert [r for r in releases if r.startswith(who)] == [f"{who}-{i}" for i in range(count)]
    calls = sum(int(out) for out, _ in outs)
    assert calls >= 2 * count  # more than 2*count when writes collided and were re-applied
