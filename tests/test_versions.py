"""Tests for rollback.versions: parsing, total ordering and version_change."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rollback.versions import Version, compare, parse, version_change


def v(text: str) -> Version:
    version = parse(text)
    assert version is not None, text
    return version


@pytest.mark.parametrize(("text", "release"), [
    ("1", (1,)), ("v1", (1,)), ("1.2", (1, 2)), ("1.2.3", (1, 2, 3)), ("V1.2.3", (1, 2, 3)),
    ("2021.09.23.1", (2021, 9, 23, 1)), ("1.2.3.4.5", (1, 2, 3, 4, 5)), ("1234567", (1234567,)),
    ("1.2.3-rc.1+build.5", (1, 2, 3)), ("1.2.3rc1", (1, 2, 3)), ("1.2.3.post1", (1, 2, 3)),
    ("2!1.0", (1, 0)), ("1.0.dev3", (1, 0)), ("1.0+ubuntu_1", (1, 0)),
])
def test_accepted(text: str, release: tuple[int, ...]) -> None:
    assert v(text).release == release
    assert str(v(text)) == text


@pytest.mark.parametrize("text", [
    "", "latest", "main", "deadbeef", "5b72941", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3", "1234abcd",
    "release-1.2", "1.2.x", "1..2", ".1", "1.", "v", " 1.2", "1.2 ", "1.2.3-", "1.2.3+", "1.2.3-rc..1",
    "١.٢", "1.0a1b2", "build 42",
])
def test_not_versions(text: str) -> None:
    assert parse(text) is None


def test_parts() -> None:
    assert v("1.2.3-rc.1+build.5").pre == ((1, "rc"), (0, 1))
    assert v("1.2.3-rc.1+build.5").build == "build.5"
    assert v("2!1.0").epoch == 2
    assert v("1.2.3.post1").post == 1 and v("1.2.3-post2").post == 2 and v("1.0r").post == 0
    assert v("1.0.dev3").dev == 3 and v("1.0dev").dev == 0
    assert v("1.0c1").pre == v("1.0rc1").pre == v("1.0.preview.1").pre == ((1, "rc"), (0, 1))
    assert v("1.0alpha").pre == ((1, "a"), (0, 0))
    assert v("1.2.3-1").pre == ((0, 1),)  # SemVer wins: a pre-release, not PEP 440's implicit post


SEMVER_SPEC_ORDER = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                     "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
PEP440_SPEC_ORDER = ["1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456",
                     "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345", "1.0rc1.dev456", "1.0rc1", "1.0",
                     "1.0.post456.dev34", "1.0.post456", "1.1.dev1", "1!0.1"]


@pytest.mark.parametrize("order", [SEMVER_SPEC_ORDER, PEP440_SPEC_ORDER])
def test_spec_orderings(order: list[str]) -> None:
    for a, b in itertools.combinations(order, 2):
        assert v(a) < v(b), (a, b)
        assert compare(a, b) == -1 and compare(b, a) == 1


def test_equalities() -> None:
    assert v("1.2") == v("1.2.0") == v("v1.2.0.0")
    assert v("1.0.0+a") == v("1.0.0+b")  # build metadata is ignored for precedence
    assert v("1.0.0-rc.1") == v("1.0.0rc1")
    assert v("2021.09.23.1") == v("2021.9.23.1")
    assert compare("1.0", "1.0.0") == 0
    assert len({v("1.2"), v("1.2.0")}) == 1


def test_cross_format_examples() -> None:
    assert v("1.2.3") < v("1.2.3.4") < v("1.2.4") < v("1.10")
    assert v("2021.09.23.1") < v("2021.09.23.2") < v("2021.10.1")
    assert v("1.2.3-rc.1") < v("1.2.3") < v("1.2.3.post1") < v("1.2.3.1")
    assert v("9") < v("10") and v("1.2.3.4.5") < v("1.2.3.4.6")


def test_compare_none_for_non_versions() -> None:
    assert compare("abc1234", "1.0") is None
    assert compare(None, "1.0") is None


@pytest.mark.parametrize(("old", "new", "expected"), [
    (None, "1.0.0", "none"), ("", "1.0.0", "none"), ("1.0.0", None, "none"),
    ("deadbeef1", "1.0.0", "none"), ("1.0.0", "latest", "none"),
    ("deadbeef1", "deadbeef1", "identical"), ("1.2.3", "1.2.3", "identical"), ("v1.2", "1.2.0", "identical"),
    ("1.2.3", "2.0.0", "major"), ("1.2.3", "1.3.0", "minor"), ("1.2.3", "1.2.4", "patch"),
    ("1", "2", "major"), ("1", "1.1", "minor"), ("1.0", "1.0.1", "patch"),
    ("2021.09.23.1", "2021.09.23.2", "build"), ("2021.09.23.1", "2021.09.24.1", "patch"),
    ("1.2.3.4.5", "1.2.3.4.6", "build"), ("1.2.3", "1.2.3.1", "build"), ("1.2.3-rc.1", "1.2.3", "prerelease"),
    ("1.2.3-rc.1", "1.2.3-rc.2", "prerelease"), ("1.2.3", "1.2.3.post1", "build"),
    ("1.0.0+a", "1.0.0+b", "build"), ("1.0.0", "1.0.0+b", "build"), ("1!1.0", "1.0", "major"),
    ("1.2.3-beta", "1.3.0-beta", "minor"), ("1.0.dev1", "1.0", "prerelease"),
    ("1.2.3.4-rc.1", "1.2.3.5", "build"),
])
def test_version_change(old: str | None, new: str | None, expected: str) -> None:
    assert version_change(old, new) == expected


# --- properties ------------------------------------------------------------------------------------

numbers = st.integers(min_value=0, max_value=30)
semver_ids = st.one_of(numbers.map(str), st.from_regex(r"[a-zA-Z-][0-9A-Za-z-]{0,4}", fullmatch=True))
semver_texts = st.builds(
    lambda rel, pre, build, prefix: prefix + ".".join(map(str, rel)) + (
        "-" + ".".join(pre) if pre else "") + ("+" + build if build else ""),
    st.lists(numbers, min_size=1, max_size=5),
    st.lists(semver_ids, max_size=3),
    st.none() | st.from_regex(r"[0-9A-Za-z]{1,4}", fullmatch=True),
    st.sampled_from(["", "v"]),
)
pep440_texts = st.builds(
    lambda epoch, rel, pre, post, dev: (f"{epoch}!" if epoch else "") + ".".join(map(str, rel)) + (
        f"{pre[0]}{pre[1]}" if pre else "") + (f".post{post}" if post is not None else "") + (
        f".dev{dev}" if dev is not None else ""),
    st.integers(0, 2),
    st.lists(numbers, min_size=1, max_size=5),
    st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), numbers),
    st.none() | numbers,
    st.none() | numbers,
)
version_texts = semver_texts | pep440_texts


@given(pep440_texts, pep440_texts)
def test_pep440_order_matches_packaging(a: str, b: str) -> None:
    packaging_version = pytest.importorskip("packaging.version")
    expected = (packaging_version.Version(a) > packaging_version.Version(b)) - (
        packaging_version.Version(a) < packaging_version.Version(b))
    assert compare(a, b) == expected


@given(version_texts, version_texts)
def test_ordering_is_total_and_antisymmetric(a: str, b: str) -> None:
    x, y = v(a), v(b)
    assert [x < y, x == y, x > y].count(True) == 1
    assert (x <= y) and (y <= x) if x == y else (x <= y) != (y <= x)
    assert compare(a, b) == -(compare(b, a) or 0)
    if x == y:
        assert hash(x) == hash(y)


@given(version_texts, version_texts, version_texts)
def test_ordering_is_transitive(a: str, b: str, c: str) -> None:
    x, y, z = v(a), v(b), v(c)
    if x <= y and y <= z:
        assert x <= z
    if x < y and y <= z:
        assert x < z
    if x == y and y == z:
        assert x == z


@given(version_texts | st.text(max_size=12), version_texts | st.text(max_size=12))
def test_version_change_is_symmetric(a: str, b: str) -> None:
    assume(a and b)
    assert version_change(a, b) == version_change(b, a)


@given(version_texts, version_texts)
def test_version_change_agrees_with_order(a: str, b: str) -> None:
    change = version_change(a, b)
    if change in ("major", "minor", "patch"):
        assert v(a) != v(b)
    if change == "identical":
        assert v(a) == v(b)


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    result = parse(text)
    assert result is None or isinstance(result, Version)
