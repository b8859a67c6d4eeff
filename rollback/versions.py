"""Release names as versions: parse, order and classify the change between two of them (no I/O).

Accepted (an optional leading ``v``/``V`` everywhere):

- SemVer and any number of numeric parts: ``1``, ``1.2.3``, ``2021.09.23.1``, ``1.2.3.4.5``, with a SemVer
  pre-release (``-rc.1``) and build metadata (``+build.7``);
- PEP 440: epochs (``1!2.0``), pre-releases (``1.2.3rc1``, ``1.0a1``, ``1.0.beta2``), post-releases
  (``1.2.3.post1``, ``1.0r1``), dev releases (``1.0.dev3``) and local versions (``1.0+ubuntu.1``).

When a text fits both (``1.2.3-1``, ``1.2.3-rc1``), SemVer wins: ``-1`` is a pre-release, sorting *before*
``1.2.3``; only ``-post``/``-postN`` is read as a PEP 440 post-release.
Anything else is not a version (``None``): tags like ``latest``, and commit SHAs. A hex string of 7 or more
characters with a letter in it is always taken for a SHA (``5b72941`` would otherwise read as PEP 440
``5b72941``); an all-digit one (``1234567``) is indistinguishable from a 1-part version and is read as one.

Ordering: numeric parts compare as integers with trailing zeros insignificant (``1.2 == 1.2.0``);
pre-releases and dev releases sort before their release, post-releases after; SemVer pre-release identifiers
compare as SemVer says (numeric < alphanumeric, numeric by value, shorter prefix first); PEP 440 pre-release
``a1``/``b2``/``rc3`` compare like SemVer ``a.1``/``b.2``/``rc.3``. Build metadata and local versions are kept
but ignored for ordering and equality (SemVer precedence rules).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

Identifier = tuple[int, int | str]  # (0, number) or (1, text): numbers sort before text, as in SemVer
VersionChange = Literal["major", "minor", "patch", "build", "prerelease", "identical", "none"]

_SEMVER = re.compile(
    r"[vV]?(?P<release>\d+(?:\.\d+)*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?",
    re.ASCII,
)
_PEP440 = re.compile(
    r"[vV]?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>\d+)?)?"
    r"(?:-(?P<post_implicit>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n>\d+)?)?"
    r"(?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?",
    re.IGNORECASE | re.ASCII,
)
_POST = re.compile(r"post\d*", re.IGNORECASE)
_SHA = re.compile(r"[0-9a-fA-F]{7,}")
_PRE_LETTERS = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "rc": "rc", "pre": "rc",
                "preview": "rc"}


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    text: str  # as given
    release: tuple[int, ...]
    epoch: int = 0
    pre: tuple[Identifier, ...] | None = None
    post: int | None = None
    dev: int | None = None
    build: str | None = None  # SemVer build metadata or PEP 440 local version; ignored for ordering
    key: tuple[object, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text


def _key(version: Version) -> tuple[object, ...]:
    """The ordering key, compared as plain tuples.

    Wherever two keys agree on all earlier positions, the next position holds values of the same type, so
    the comparison never mixes int and str. Stages: dev-only release (0) < pre-release (1) < release (2) <
    post-release (3); inside a pre-release: its dev (0) < itself (1) < its post (2).
    """
    release = list(version.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    dev: tuple[int, ...] = (0, version.dev) if version.dev is not None else (1,)
    stage: tuple[object, ...]
    if version.pre is not None:
        stage = (1, version.pre, (2, version.post, dev) if version.post is not None else dev)
    elif version.post is not None:
        stage = (3, version.post, dev)
    elif version.dev is not None:
        stage = dev
    else:
        stage = (2,)
    return (version.epoch, tuple(release), stage)


def _identifiers(text: str) -> tuple[Identifier, ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in text.split("."))


def parse(text: str | None) -> Version | None:
    """Parse a release name as a version, or return None when it is not one (see the module docstring)."""
    if not text or text != text.strip():
        return None
    if _SHA.fullmatch(text) and not text.isdigit():
        return None
    semver = _SEMVER.fullmatch(text)
    if semver and not (semver["pre"] and _POST.fullmatch(semver["pre"])):  # 1.2-post1: PEP 440 post
        release = tuple(int(part) for part in semver["release"].split("."))
        pre = _identifiers(semver["pre"]) if semver["pre"] else None
        return Version(text, release, pre=pre, build=semver["build"])
    pep = _PEP440.fullmatch(text)
    if pep is None:
        return None
    pre = None
    if pep["pre_l"]:
        pre = ((1, _PRE_LETTERS[pep["pre_l"].lower()]), (0, int(pep["pre_n"] or 0)))
    post = None
    if pep["post_implicit"]:
        post = int(pep["post_implicit"])
    elif pep["post_l"]:
        post = int(pep["post_n"] or 0)
    return Version(
        text,
        tuple(int(part) for part in pep["release"].split(".")),
        epoch=int(pep["epoch"] or 0),
        pre=pre,
        post=post,
        dev=int(pep["dev_n"] or 0) if pep["dev_l"] else None,
        build=pep["local"].lower() if pep["local"] else None,
    )


def compare(a: str | None, b: str | None) -> int | None:
    """-1, 0 or 1 when both parse as versions; None otherwise."""
    left, right = parse(a), parse(b)
    if left is None or right is None:
        return None
    return (left > right) - (left < right)


def version_change(old: str | None, new: str | None) -> VersionChange:
    """How ``new`` differs from ``old``.

    - ``none``: ``old`` is missing (first deploy), or either is not a version (a SHA, a tag);
    - ``identical``: the same text, or versions that are equal including build/local metadata;
    - ``major``/``minor``/``patch``: the first differing of the first three numeric parts (missing parts count
      as 0; a different epoch counts as ``major``);
    - ``build``: they differ in the fourth or a later numeric part (Octopus's "Revision", ``1.2.3.4``), or
      only in a post-release or in build metadata / local version (``+build.7``);
    - ``prerelease``: the numeric parts are equal and the pre-release or dev part differs (``1.2.3-rc.1``
      against ``1.2.3``).

    Symmetric: ``version_change(a, b) == version_change(b, a)`` whenever both are given.
    """
    if not old or not new:
        return "none"
    if old == new:
        return "identical"
    left, right = parse(old), parse(new)
    if left is None or right is None:
        return "none"
    if left == right and left.build == right.build:
        return "identical"
    if left.epoch != right.epoch:
        return "major"
    width = max(len(left.release), len(right.release), 3)
    a = left.release + (0,) * (width - len(left.release))
    b = right.release + (0,) * (width - len(right.release))
    for index, category in enumerate(("major", "minor", "patch")):
        if a[index] != b[index]:
            return category  # type: ignore[return-value]
    if a != b:
        return "build"
    if (left.pre, left.dev) != (right.pre, right.dev):
        return "prerelease"
    return "build"
