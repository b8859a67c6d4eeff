"""Tests for rollback.history: resolve() by release, previous revision, errors and JSON rows."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollback.history import (
    History,
    NoPreviousRevision,
    ReleaseNotFound,
    Resolution,
    Revision,
    available_releases,
    previous_release,
    resolve,
    to_json_rows,
)
from rollback.inputs import WorkloadRef

WEB = WorkloadRef("Deployment", "web")


def rev(number: int, release: str | None, image: str = "") -> Revision:
    created = f"2024-01-0{number % 9 + 1}T00:00:00Z"
    return Revision(number, release, (f"web=nginx:{image or number}",), created, f"web-{number:x}",
                    template={"spec": {"containers": []}},
                    annotations={"kubernetes.io/change-cause": release} if release else {})


def history(*revisions: Revision, live: int | None = None, live_release: str | None = None,
            pruned: tuple[int, ...] = (), limit: int | None = 10) -> History:
    if live is None and revisions:
        live = revisions[-1].number
    if live_release is None and revisions:
        live_release = next(r.release for r in revisions if r.number == live)
    return History(WEB, revisions, live, live_release, pruned, limit)


def test_worked_example_after_rollback_and_renumbering() -> None:
    # design reference 2.6, step 4: R2's ReplicaSet was renumbered to 4 by the rollback
    h = history(rev(1, "R1"), rev(3, "R3"), rev(4, "R2"))
    assert resolve(h, "R3") == Resolution(h.revisions[1], False, ())
    assert resolve(h, "R1").target.number == 1
    # step 5: rolling back to R2 again is a no-op
    assert resolve(h, "R2") == Resolution(h.revisions[2], True, ())


def test_newest_duplicate_wins() -> None:
    h = history(rev(1, "v1"), rev(2, "v2"), rev(3, "v1"), rev(5, "v1"), rev(6, "v3"))
    result = resolve(h, "v1")
    assert result.target.number == 5 and result.duplicates == (3, 1) and not result.skipped


def test_release_match_is_exact() -> None:
    h = history(rev(1, "release 1.2 (hotfix)"), rev(2, "1.2.0"), rev(3, "v1.3"))
    assert resolve(h, "release 1.2 (hotfix)").target.number == 1  # spaces are fine, unlike parsing kubectl
    with pytest.raises(ReleaseNotFound):
        resolve(h, "1.2")
    with pytest.raises(ReleaseNotFound):
        resolve(h, "V1.3")


def test_empty_release_means_previous_revision() -> None:
    h = history(rev(1, "v1"), rev(2, "v2"), rev(7, "v3"))
    result = resolve(h, "")
    assert result.target.number == 2 and not result.skipped and result.duplicates == ()
    assert previous_release(h) == "v2"
    # live is not the highest (e.g. read while a rollback was being written): kubectl still picks 2nd-highest
    assert resolve(history(rev(1, "v1"), rev(2, "v2"), rev(3, "v3"), live=2), "").skipped


@pytest.mark.parametrize("count", [0, 1])
def test_no_previous_revision(count: int) -> None:
    h = history(*[rev(1, "v1")][:count])
    with pytest.raises(NoPreviousRevision, match=f"deployment/web has {count} revision"):
        resolve(h, "")
    assert previous_release(h) is None


def test_previous_release_can_be_none_without_change_cause() -> None:
    assert previous_release(history(rev(1, None), rev(2, "v2"))) is None


def test_not_found_lists_available_newest_first() -> None:
    h = history(rev(1, "v1"), rev(2, None), rev(3, "v2"), rev(4, "v1"), rev(5, "v3"))
    with pytest.raises(ReleaseNotFound) as info:
        resolve(h, "v9")
    error = info.value
    assert error.available == ("v3", "v1", "v2") == available_releases(h)
    assert error.pruned == () and error.history_limit == 10
    assert str(error) == (
        "release 'v9' is not in the revision history of deployment/web. Releases available (newest first): "
        "v3, v1, v2. It was never deployed to this workload (or deployed without a change-cause): deploy it "
        "with mode deploy")


def test_not_found_mentions_pruning() -> None:
    h = history(rev(4, "v4"), rev(5, "v5"), rev(6, "v6"), pruned=(1, 2, 3), limit=2)
    with pytest.raises(ReleaseNotFound) as info:
        resolve(h, "v1")
    assert info.value.pruned == (1, 2, 3)
    assert str(info.value).endswith(
        "3 older revision(s) were pruned by revisionHistoryLimit=2; the release may have been among them: "
        "redeploy it with mode deploy")
    h = history(rev(4, "v4"), rev(5, "v5"), pruned=(2,), limit=None)
    with pytest.raises(ReleaseNotFound, match="1 older revision.s. were pruned by the history limit"):
        resolve(h, "v1")


def test_not_found_on_empty_history() -> None:
    with pytest.raises(ReleaseNotFound, match="available .newest first.: none"):
        resolve(history(), "v1")


def test_to_json_rows() -> None:
    h = history(rev(1, "v1"), rev(2, None, image="1.2"), rev(3, "v3"), live=2)
    rows = to_json_rows(h)
    assert rows == [
        {"revision": 1, "release": "v1", "images": ["web=nginx:1"], "created": "2024-01-02T00:00:00Z",
         "current": False},
        {"revision": 2, "release": None, "images": ["web=nginx:1.2"], "created": "2024-01-03T00:00:00Z",
         "current": True},
        {"revision": 3, "release": "v3", "images": ["web=nginx:3"], "created": "2024-01-04T00:00:00Z",
         "current": False},
    ]
    assert json.loads(json.dumps(rows)) == rows


def test_revision_lookup_and_equality_ignores_template() -> None:
    h = history(rev(1, "v1"), rev(2, "v2"))
    assert h.revision(2) is h.revisions[1] and h.revision(9) is None and h.revision(None) is None
    a = Revision(1, "v1", (), "t", "rs", template={"a": 1})
    assert a == Revision(1, "v1", (), "t", "rs", template={"b": 2})


# --- resolve() against a brute-force oracle ----------------------------------------------------------------

releases = st.sampled_from(["v1", "v2", "v3", "1.0.0", "a b", None])


@st.composite
def histories(draw: st.DrawFn) -> History:
    numbers = sorted(draw(st.sets(st.integers(1, 40), max_size=8)))
    revisions = tuple(rev(n, draw(releases)) for n in numbers)
    live = draw(st.sampled_from(numbers)) if numbers else None
    pruned = tuple(draw(st.sets(st.integers(1, 40).filter(lambda n: n not in numbers), max_size=3)))
    limit = draw(st.none() | st.integers(0, 10))
    return History(WEB, revisions, live, draw(releases), tuple(sorted(pruned)), limit)


@given(histories(), st.sampled_from(["v1", "v2", "v3", "1.0.0", "a b", "missing", ""]))
def test_resolve_matches_brute_force(h: History, release: str) -> None:
    if release:
        best = None
        for candidate in h.revisions:
            if candidate.release == release and (best is None or candidate.number > best.number):
                best = candidate
        if best is None:
            with pytest.raises(ReleaseNotFound) as info:
                resolve(h, release)
            seen: list[str] = []
            for candidate in sorted(h.revisions, key=lambda r: -r.number):
                if candidate.release is not None and candidate.release not in seen:
                    seen.append(candidate.release)
            assert info.value.available == tuple(seen)
            assert info.value.pruned == h.pruned and info.value.history_limit == h.history_limit
            return
        others = sorted((c.number for c in h.revisions if c.release == release and c is not best),
                        reverse=True)
        assert resolve(h, release) == Resolution(best, best.number == h.live, tuple(others))
    else:
        if len(h.revisions) < 2:
            with pytest.raises(NoPreviousRevision):
                resolve(h, release)
            return
        second = max(c.number for c in h.revisions if c.number != max(r.number for r in h.revisions))
        result = resolve(h, release)
        assert result.target.number == second and result.skipped == (second == h.live)
        assert result.duplicates == ()
