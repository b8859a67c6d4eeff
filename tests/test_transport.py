"""The transport's decisions, table-driven: when a failed request is retried, when a write's outcome is
unknown, how the timeout bounds every request (a fake client and a fake clock: no timing), and how a re-read
tells whether a write whose answer was lost landed."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3

from rollback import transport
from rollback.cluster import AnswerLost, Api, ApiFailure, DeadlineExceeded, duration_text, finish_reserve
from rollback.transport import Next, Outcome, next_step
from rollback.workloads import Intended, judge_write

# -- next_step ------------------------------------------------------------------------------------------------

STEPS = {
    # name: (method, outcome, retries so far, seconds left, expected)
    "429 Retry-After on a PATCH is retried after the wait": ("PATCH", Outcome(429, 2), 0, 60, Next("retry", 2)),
    "503 Retry-After on a PATCH is retried": ("PATCH", Outcome(503, 1), 0, 60, Next("retry", 1)),
    "500 Retry-After on a PATCH is not: it may have landed": ("PATCH", Outcome(500, 1), 0, 60, Next("lost")),
    "500 Retry-After on a GET is retried": ("GET", Outcome(500, 1), 0, 60, Next("retry", 1)),
    "Retry-After is capped": ("GET", Outcome(429, 3600), 0, 60, Next("retry", transport.RETRY_AFTER_CAP)),
    "Retry-After 0 still yields": ("GET", Outcome(429, 0), 0, 60, Next("retry", transport.MIN_WAIT)),
    "429 without Retry-After fails": ("PATCH", Outcome(429), 0, 60, Next("fail")),
    "GET 500 backs off": ("GET", Outcome(500), 0, 60, Next("retry", 0.25)),
    "GET 503 second retry backs off longer": ("GET", Outcome(503), 1, 60, Next("retry", 0.5)),
    "GET lost answer is retried": ("GET", Outcome(0), 2, 60, Next("retry", 1.0)),
    "PATCH lost answer is unknown": ("PATCH", Outcome(0), 0, 60, Next("lost")),
    "PUT 502 is unknown": ("PUT", Outcome(502), 0, 60, Next("lost")),
    "DELETE lost answer is unknown": ("DELETE", Outcome(0), 0, 60, Next("lost")),
    "POST refused connection is retried: nothing was sent": ("POST", Outcome(0, sent=False), 0, 60,
                                                             Next("retry", 0.25)),
    "404 is an answer": ("GET", Outcome(404), 0, 60, Next("fail")),
    "409 on a write is an answer": ("PATCH", Outcome(409), 0, 60, Next("fail")),
    "no deadline": ("GET", Outcome(503, 5), 0, None, Next("retry", 5)),
}


@pytest.mark.parametrize("method,outcome,retries,left,expected", STEPS.values(), ids=STEPS.keys())
def test_next_step(method: str, outcome: Outcome, retries: int, left: float | None, expected: Next) -> None:
    assert next_step(method, outcome, retries, left) == expected


GIVE_UP = {
    "Retry-After longer than what is left": ("PATCH", Outcome(429, 5), 0, 4.0, "more than the 4.0s left"),
    "Retry-After retries used up": ("GET", Outcome(429, 1), transport.RETRY_AFTER_ATTEMPTS, 60, "after 10"),
    "transient retries used up": ("GET", Outcome(500), transport.TRANSIENT_RETRIES, 60, "after 3 retries"),
    "no time for the back-off": ("GET", Outcome(0), 0, 0.1, "no time left"),
}


@pytest.mark.parametrize("method,outcome,retries,left,why", GIVE_UP.values(), ids=GIVE_UP.keys())
def test_next_step_gives_up_and_says_why(method: str, outcome: Outcome, retries: int, left: float,
                                         why: str) -> None:
    step = next_step(method, outcome, retries, left)
    assert step.action == "fail" and why in step.why, step


@pytest.mark.parametrize("header,seconds", [("3", 3.0), (" 10 ", 10.0), ("0", 0.0), (None, None), ("", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("-1", None), ("1.5", None)])
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert transport.parse_retry_after(header) == seconds


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (300, "300s"), (0.25, "250ms"), (1e-9, "1ns"),
                                          (2e-6, "2µs")])
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


# -- Api with a fake client and a fake clock ------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = "OK"
    cost: float = 0.1  # fake seconds the round trip takes

    @property
    def response(self) -> Any:
        return self

    def read(self) -> bytes:
        return self.body


class FakeClient:
    """The two calls ``Api`` makes on a kubernetes ``ApiClient``; answers (or exceptions) in order."""

    def __init__(self, clock: Clock, *answers: Answer | Exception):
        self.clock = clock
        self.answers = list(answers)
        self.calls: list[tuple[str, str, Any]] = []
        self.configuration = SimpleNamespace(host="https://cluster.example")

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[str, str]:
        return method, path

    def call_api(self, method: str, path: str, _request_timeout: Any = None) -> Answer:
        self.calls.append((method, path, _request_timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            self.clock.now += 0.1
            raise answer
        self.clock.now += answer.cost
        return answer


def make(*answers: Answer | Exception, timeout: float | None = 60.0) -> tuple[Api, FakeClient, Clock]:
    clock = Clock()
    client = FakeClient(clock, *answers)
    return Api(client, timeout=timeout, clock=clock, sleep=clock.sleep), client, clock


def dropped() -> Exception:
    return urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))


def refused() -> Exception:
    return urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]


def test_patch_429_with_retry_after_waits_and_succeeds() -> None:
    api, client, clock = make(Answer(429, b'{"reason": "TooManyRequests"}', {"Retry-After": "2"}),
                              Answer(200, b'{"ok": true}'))
    assert api.patch("/apis/apps/v1/namespaces/d/deployments/web", [], "application/json-patch+json") == {"ok": True}
    assert [c[0] for c in client.calls] == ["PATCH", "PATCH"]
    assert clock.now == pytest.approx(1000 + 0.1 + 2 + 0.1)


def test_patch_whose_answer_is_lost_is_not_sent_again() -> None:
    api, client, _ = make(dropped(), Answer())
    with pytest.raises(AnswerLost) as err:
        api.patch("/p", {}, "application/merge-patch+json")
    assert len(client.calls) == 1 and "may or may not have been applied" in err.value.message


def test_patch_500_is_a_lost_answer_with_the_servers_words() -> None:
    api, client, _ = make(Answer(500, b'{"reason": "InternalError", "message": "etcdserver: request timed out"}'))
    with pytest.raises(AnswerLost) as err:
        api.patch("/p", {}, "application/merge-patch+json")
    assert err.value.status == 500 and "etcdserver: request timed out" in err.value.message


def test_post_to_a_refused_connection_is_retried() -> None:
    api, client, _ = make(refused(), Answer(201, b'{"created": 1}'))
    assert api.create("/c", {}) == {"created": 1} and len(client.calls) == 2


def test_get_500_is_retried_with_back_off_then_gives_up() -> None:
    api, client, clock = make(*[Answer(500, b'{"message": "boom"}')] * 4)
    with pytest.raises(ApiFailure) as err:
        api.get("/g")
    assert len(client.calls) == 4 and "still failing after 3 retries" in err.value.message
    assert clock.now == pytest.approx(1000 + 4 * 0.1 + 0.25 + 0.5 + 1.0)


def test_every_request_timeout_is_cut_to_what_is_left() -> None:
    api, client, clock = make(Answer(), Answer(), timeout=5.0)
    api.get("/a")
    clock.now += 4.0
    api.get("/b")
    (_, _, first), (_, _, second) = client.calls
    deadline = 1000 + 5.0 + finish_reserve(5.0)
    assert first == pytest.approx(deadline - 1000) and second == pytest.approx(deadline - (1000 + 4.1))


def test_watch_read_timeout_is_cut_to_the_work_deadline() -> None:
    api, client, clock = make(Answer(), timeout=5.0)
    api.watch("/w", timeout=300)
    connect, read = client.calls[0][2]
    assert connect <= 5.5 and read == pytest.approx(5.0)  # the reserve after it is kept for recording


def test_nothing_is_sent_after_the_deadline() -> None:
    api, client, clock = make(Answer(), timeout=1e-9)
    clock.now += 1e-6
    with pytest.raises(DeadlineExceeded) as err:
        api.patch("/p", {}, "application/merge-patch+json")
    assert client.calls == [] and "timeout (1ns) ran out before PATCH /p" in err.value.message


def test_a_write_is_not_sent_when_the_budget_cannot_cover_it_and_its_check() -> None:
    api, client, clock = make(Answer(cost=2.0), Answer(), timeout=5.0)
    api.get("/slow")  # 2 s: a write and the read that checks it need 4 s
    clock.now += 0.5  # 3 s of 5.5 left
    with pytest.raises(DeadlineExceeded) as err:
        api.patch("/p", {}, "application/merge-patch+json")
    assert len(client.calls) == 1 and "this write was not made" in err.value.message


def test_a_write_leaves_time_for_the_read_that_checks_it() -> None:
    api, client, clock = make(Answer(cost=1.0), Answer(), timeout=5.0)
    api.get("/a")  # 1 s round trip
    api.patch("/p", {}, "application/merge-patch+json")
    left = 1000 + 5.0 + finish_reserve(5.0) - (1000 + 1.0)
    assert client.calls[1][2] == pytest.approx(left - 1.0)


def test_a_read_that_times_out_at_the_deadline_says_the_timeout_ran_out() -> None:
    api, client, clock = make(urllib3.exceptions.ReadTimeoutError(None, "/g", "timed out"),  # type: ignore[arg-type]
                              timeout=5.0)
    clock.now += 5.4
    with pytest.raises(DeadlineExceeded) as err:
        api.get("/g")
    assert "ran out while waiting for the answer to GET /g" in err.value.message


def test_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    api, client, clock = make(Answer(503, b"{}", {"Retry-After": "30"}), Answer(), timeout=5.0)
    with pytest.raises(ApiFailure) as err:
        api.get("/g")
    assert len(client.calls) == 1 and clock.now < 1001 and "retry after 30s" in err.value.message


def test_work_deadline_keeps_the_reserve_for_recording() -> None:
    api, _, clock = make(timeout=10.0)
    assert api.work_deadline(clock() + 10.0) == pytest.approx(clock() + 10.0)
    assert api.deadline == pytest.approx(clock() + 10.0 + 1.0)
    late = Api(FakeClient(clock), clock=clock)
    assert late.deadline is None and late.work_deadline(clock() + 2.0) == pytest.approx(clock() + 2.0)
    assert late.deadline == pytest.approx(clock() + 2.2)


def test_urllib3_retries_are_off_on_a_real_client() -> None:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"
    api_client = client.ApiClient(configuration)
    Api(api_client)
    assert api_client.rest_client.pool_manager.connection_pool_kw["retries"] is False


# -- judge_write ----------------------------------------------------------------------------------------------


def workload(rv: str, image: str, notes: dict[str, str] | None = None, init: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": image}]}
    if init:
        spec["initContainers"] = [{"name": "migrate", "image": init}]
    return {"metadata": {"resourceVersion": rv, "annotations": dict(notes or {})},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}


CAUSE = "kubernetes.io/change-cause"
AT = "kube-release-rollback.io/rolled-back-at"
TEMPLATE_V1 = workload("0", "web:1")["spec"]["template"]

JUDGED = {
    "images and annotations there: landed": (
        Intended("7", {CAUSE: "2.0"}, images={"web": "web:2"}), workload("8", "web:2", {CAUSE: "2.0"}), (True, False)),
    "same resourceVersion: nothing written": (
        Intended("7", {CAUSE: "2.0"}, images={"web": "web:2"}), workload("7", "web:1", {CAUSE: "1.0"}), (False, True)),
    "someone else's change": (
        Intended("7", {CAUSE: "2.0"}, images={"web": "web:2"}), workload("9", "web:hotfix", {CAUSE: "1.0"}),
        (False, False)),
    "template written, but our timestamp is not there": (
        Intended("7", {AT: "t2"}, template=TEMPLATE_V1), workload("8", "web:1", {AT: "t1"}), (False, False)),
    "undo landed: template and annotations": (
        Intended("7", {CAUSE: "1.0", AT: "t2"}, template=TEMPLATE_V1),
        workload("8", "web:1", {CAUSE: "1.0", AT: "t2", "deployment.kubernetes.io/revision": "5"}), (True, False)),
    "a removed annotation must be gone": (
        Intended("7", {CAUSE: "2.0", AT: None}), workload("8", "web:1", {CAUSE: "2.0", AT: "t1"}), (False, False)),
    "removed and gone: landed": (
        Intended("7", {CAUSE: "2.0", AT: None}), workload("8", "web:1", {CAUSE: "2.0"}), (True, False)),
    "init container image counts": (
        Intended(None, {CAUSE: "3"}, images={"migrate": "m:3"}), workload("8", "web:1", {CAUSE: "3"}, init="m:2"),
        (False, False)),
    "unconditional apply landed": (
        Intended(None, {CAUSE: "3"}, images={"web": "web:3", "migrate": "m:3"}),
        workload("2", "web:3", {CAUSE: "3"}, init="m:3"), (True, False)),
    "gone": (Intended("7", {CAUSE: "2.0"}), None, (False, False)),
    "a no-op write keeps the resourceVersion: already as intended, landed": (
        Intended("7", {CAUSE: "2.0"}, images={"web": "web:2"}), workload("7", "web:2", {CAUSE: "2.0"}), (True, False)),
}


@pytest.mark.parametrize("intended,current,expected", JUDGED.values(), ids=JUDGED.keys())
def test_judge_write(intended: Intended, current: dict[str, Any] | None, expected: tuple[bool, bool]) -> None:
    verdict = judge_write(intended, current)
    assert (verdict.landed, verdict.unchanged) == expected, verdict.reason


def test_judge_write_names_what_differs() -> None:
    verdict = judge_write(Intended("7", {CAUSE: "2.0"}, images={"web": "web:2"}),
                          workload("9", "web:hotfix", {CAUSE: "1.0"}))
    assert "container web runs 'web:hotfix', not 'web:2'" in verdict.reason
    assert "annotation kubernetes.io/change-cause is '1.0', not '2.0'" in verdict.reason
