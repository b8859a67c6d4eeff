"""Installed size of the action's runtime dependencies, as the Dockerfile installs them.

Builds what the Dockerfile's build stage builds (``python -m venv`` + ``pip install --only-binary=:all: -r
requirements.txt``) in a temporary directory and reports, side by side:

* the venv as built (pip byte-compiles every module at install time, so the image ships ``.pyc`` files; the
  runtime stage's PYTHONDONTWRITEBYTECODE only stops *new* ones being written at run time),
* the runtime closure (the pins of requirements.txt) with and without bytecode,
* the venv bootstrap (pip, setuptools) that ``python -m venv`` adds and the action never imports,
* the closure without ``kubernetes/aio`` and the packages only the asyncio client needs (aiohttp & co.),
* the top distributions and the kubernetes subtrees (``client/api``, ``client/models``, ``aio/``),
* optionally the rejected ``actions-toolkit`` closure (``pip install --target``) for comparison.

Sizes are apparent file sizes (sum of st_size, MB = 10**6 bytes); "deflate" is the sum of each file compressed
with zlib level 6, an estimate of the gzip'd image layer a runner pulls.

Usage (from the repository root)::

    .venv/bin/python bench/dependency_size.py                   # temporary venv, removed afterwards
    .venv/bin/python bench/dependency_size.py --cached .bench-cache   # keep/reuse the venv between runs
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
BOOTSTRAP = {"pip", "setuptools", "wheel"}  # what `python -m venv` puts in /opt/venv besides the closure
ASYNC_ENTRY = frozenset({"aiohttp", "aiohttp-retry"})  # kubernetes requires these for kubernetes.aio only
KUBERNETES_SUBTREES = ("kubernetes/client/api", "kubernetes/client/models", "kubernetes/client",
                       "kubernetes/aio/client/api", "kubernetes/aio/client/models", "kubernetes/aio",
                       "kubernetes/config", "kubernetes/dynamic", "kubernetes/stream", "kubernetes/watch")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Size:
    files: int = 0
    source: int = 0  # everything except bytecode
    bytecode: int = 0  # __pycache__/ and *.pyc
    deflated: int = 0
    deflated_source: int = 0

    @property
    def total(self) -> int:
        return self.source + self.bytecode

    def add(self, other: Size) -> None:
        self.files += other.files
        self.source += other.source
        self.bytecode += other.bytecode
        self.deflated += other.deflated
        self.deflated_source += other.deflated_source


@dataclass
class FileInfo:
    rel: str  # relative to site-packages, "/"-separated
    size: Size
    dist: str = "(unowned)"


@dataclass
class Tree:
    files: list[FileInfo] = field(default_factory=list)

    def sum(self, keep: Iterable[FileInfo]) -> Size:
        total = Size()
        for info in keep:
            total.add(info.size)
        return total


def run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")


def stamp_for(extra: str) -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + extra.encode()).hexdigest()
    return f"{sys.version_info.major}.{sys.version_info.minor} {digest}"


def ensure_venv(base: Path) -> tuple[Path, bool]:
    """The venv as the Dockerfile builds it; returns (site-packages, reused)."""
    venv = base / "venv"
    stamp_file = base / "venv.stamp"
    stamp = stamp_for("venv")
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return site_packages(venv), True
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "--only-binary=:all:", "-r", str(REQUIREMENTS)], "pip install -r requirements.txt")
    stamp_file.write_text(stamp)
    return site_packages(venv), False


def ensure_toolkit(base: Path) -> tuple[Path, bool]:
    target = base / "actions-toolkit"
    stamp_file = base / "actions-toolkit.stamp"
    stamp = stamp_for("actions-toolkit")
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return target, True
    shutil.rmtree(target, ignore_errors=True)
    run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--only-binary=:all:",
         "--target", str(target), "actions-toolkit"], "pip install --target actions-toolkit")
    stamp_file.write_text(stamp)
    return target, False


def site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise SystemExit("no site-packages in the venv")
    return found[0]


def is_bytecode(rel: str) -> bool:
    return "__pycache__/" in rel or rel.endswith((".pyc", ".pyo"))


def scan(root: Path) -> Tree:
    """Every file under ``root`` with its size, deflated size and owning distribution (from RECORD)."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions(path=[str(root)]):
        name = canonical(dist.metadata["Name"])
        for entry in dist.files or ():
            owners[os.path.normpath(str(entry)).replace(os.sep, "/")] = name
    # Bytecode pip did not list (or a package's own __pycache__) belongs to the owner of its directory.
    dir_owner: dict[str, str] = {}
    for rel, name in owners.items():
        dir_owner.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else rel, name)
    tree = Tree()
    compressor_level = 6
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            path = Path(dirpath) / filename
            if path.is_symlink():
                continue
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            deflated = len(zlib.compress(data, compressor_level))
            size = Size(files=1)
            if is_bytecode(rel):
                size.bytecode, size.deflated = len(data), deflated
            else:
                size.source, size.deflated, size.deflated_source = len(data), deflated, deflated
            owner = owners.get(rel)
            if owner is None:
                parent = rel.replace("/__pycache__", "").rsplit("/", 1)[0] if "/" in rel else rel
                owner = dir_owner.get(parent)
            if owner is None:  # top-level modules/.pth files: owner of a sibling with the same stem
                stem = rel.split("/", 1)[0].split(".", 1)[0]
                owner = next((n for r, n in owners.items() if r.split("/", 1)[0].split(".", 1)[0] == stem), None)
            tree.files.append(FileInfo(rel, size, owner or "(unowned)"))
    return tree


def requirement_graph(root: Path) -> dict[str, set[str]]:
    """distribution -> the distributions it requires (markers evaluated here, extras ignored)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - pip always vendors it
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]
    graph: dict[str, set[str]] = {}
    for dist in metadata.distributions(path=[str(root)]):
        deps: set[str] = set()
        for spec in dist.requires or ():
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            deps.add(canonical(req.name))
        graph[canonical(dist.metadata["Name"])] = deps
    return graph


def closure(graph: dict[str, set[str]], roots: Iterable[str], skip: frozenset[str] = frozenset()) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r not in skip]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in graph.get(name, ()) if d not in skip and d not in seen)
    return seen


def pins() -> set[str]:
    names = set()
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonical(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0]))
    return names


def mb(n: int) -> str:
    return f"{n / 1e6:7.1f}"


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "   - "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cached", metavar="DIR", help="build the venv in DIR and reuse it when requirements.txt "
                        "and the Python version are unchanged (default: a temporary directory)")
    parser.add_argument("--top", type=int, default=12, help="distributions to list (default 12)")
    parser.add_argument("--no-toolkit", action="store_true", help="skip the actions-toolkit comparison")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-deps-") as scratch:
        base = Path(args.cached) if args.cached else Path(scratch)
        base.mkdir(parents=True, exist_ok=True)
        site, reused = ensure_venv(base)
        installed = time.monotonic()
        tree = scan(site)
        graph = requirement_graph(site)
        toolkit_tree: Tree | None = None
        if not args.no_toolkit:
            toolkit_root, _ = ensure_toolkit(base)
            toolkit_tree = scan(toolkit_root)
        scanned = time.monotonic()

    pinned = pins()
    missing = pinned - {f.dist for f in tree.files}
    runtime = [f for f in tree.files if f.dist in pinned]
    bootstrap = [f for f in tree.files if f.dist in BOOTSTRAP]
    other = [f for f in tree.files if f.dist not in pinned and f.dist not in BOOTSTRAP]
    sync_dists = closure(graph, ("kubernetes", "pyyaml"), skip=ASYNC_ENTRY)
    async_only = sorted(pinned - sync_dists)
    diet = [f for f in runtime if f.dist in sync_dists and not f.rel.startswith("kubernetes/aio/")]

    everything = tree.sum(tree.files)
    rt = tree.sum(runtime)
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"Runtime dependencies of the action: requirements.txt ({len(pinned)} pins), Python {py}, "
          f"{sys.platform}/{os.uname().machine}")
    print(f"venv {'reused from --cached' if reused else 'built'} "
          f"(python -m venv + pip install --only-binary=:all: -r requirements.txt); "
          f"install {installed - started:.1f}s, scan {scanned - installed:.1f}s")
    if missing:
        print(f"warning: pins with no installed files: {', '.join(sorted(missing))}")
    print()
    print("MB = 10**6 bytes of file content; deflate = zlib level 6 per file (about the gzip'd image layer)")
    print(f"{'':58}{'MB':>7}  {'files':>6}  {'deflate':>7}  {'of venv':>7}")

    def row(label: str, size: Size, whole: int, source_only: bool = False) -> None:
        total = size.source if source_only else size.total
        deflated = size.deflated_source if source_only else size.deflated
        print(f"{label:58}{mb(total)}  {size.files:6d}  {mb(deflated)}  {pct(total, whole):>7}")

    whole = everything.total
    row("venv as the image ships it (/opt/venv/lib, with .pyc)", everything, whole)
    row("  venv bootstrap (pip, setuptools): never imported", tree.sum(bootstrap), whole)
    if other:
        row("  other (not pinned, not bootstrap)", tree.sum(other), whole)
    row("  runtime closure (requirements.txt), with .pyc", rt, whole)
    row("    of which .pyc bytecode", Size(bytecode=rt.bytecode, files=sum(
        1 for f in runtime if f.size.bytecode), deflated=rt.deflated - rt.deflated_source), whole)
    source = Size(files=sum(1 for f in runtime if f.size.source), source=rt.source,
                  deflated_source=rt.deflated_source)
    row("  runtime closure without __pycache__/*.pyc", source, whole, source_only=True)
    diet_size = tree.sum(diet)
    row("  closure without kubernetes/aio + asyncio-only packages", diet_size, whole)
    print()
    print(f"asyncio-only packages (required by kubernetes only via {', '.join(sorted(ASYNC_ENTRY))}): "
          f"{', '.join(async_only) or 'none'}")

    by_dist: dict[str, Size] = defaultdict(Size)
    for f in runtime:
        by_dist[f.dist].add(f.size)
    print()
    print(f"Top {args.top} runtime distributions (share of the runtime closure, with .pyc):")
    print(f"  {'distribution':28}{'MB':>7}  {'.pyc MB':>7}  {'files':>6}  {'deflate':>7}  {'share':>6}")
    for name, size in sorted(by_dist.items(), key=lambda kv: -kv[1].total)[:args.top]:
        flag = "  asyncio only" if name in async_only else ""
        print(f"  {name:28}{mb(size.total)}  {mb(size.bytecode)}  {size.files:6d}  {mb(size.deflated)}  "
              f"{pct(size.total, rt.total):>6}{flag}")
    rest = sorted(by_dist.items(), key=lambda kv: -kv[1].total)[args.top:]
    if rest:
        rest_size = Size()
        for _, size in rest:
            rest_size.add(size)
        print(f"  {f'{len(rest)} others':28}{mb(rest_size.total)}  {mb(rest_size.bytecode)}  {rest_size.files:6d}  "
              f"{mb(rest_size.deflated)}  {pct(rest_size.total, rt.total):>6}")

    kube = tree.sum(f for f in runtime if f.dist == "kubernetes")
    print()
    print("kubernetes subtrees (share of the kubernetes distribution, with .pyc):")
    for prefix in KUBERNETES_SUBTREES:
        size = tree.sum(f for f in runtime if f.rel.startswith(prefix + "/"))
        print(f"  {prefix + '/':30}{mb(size.total)}  {size.files:6d} files  {pct(size.total, kube.total):>6}")

    print()
    print("Ratios:")
    print(f"  kubernetes is {pct(kube.total, rt.total).strip()} of the runtime closure "
          f"({pct(kube.source, rt.source).strip()} without .pyc)")
    aio = tree.sum(f for f in runtime if f.rel.startswith("kubernetes/aio/"))
    async_pkgs = tree.sum(f for f in runtime if f.dist in async_only)
    print(f"  kubernetes/aio/ (unused: the action uses the synchronous client) is "
          f"{pct(aio.total, rt.total).strip()} of the closure; with the asyncio-only packages "
          f"{pct(aio.total + async_pkgs.total, rt.total).strip()}")
    print(f"  .pyc bytecode is {pct(rt.bytecode, rt.total).strip()} of the closure "
          f"(with it / without it: {rt.total / max(rt.source, 1):.2f}x)")
    print(f"  venv as shipped / closure without aio: {everything.total / max(diet_size.total, 1):.2f}x "
          f"({mb(everything.total).strip()} MB -> {mb(diet_size.total).strip()} MB; deflate "
          f"{mb(everything.deflated).strip()} -> {mb(diet_size.deflated).strip()} MB)")
    if toolkit_tree is not None:
        tk = toolkit_tree.sum(toolkit_tree.files)
        dists = sorted({f.dist for f in toolkit_tree.files if f.dist != "(unowned)"})
        shared = sorted(set(dists) & pinned)
        extra = toolkit_tree.sum(f for f in toolkit_tree.files if f.dist not in pinned)
        print(f"  rejected actions-toolkit closure (pip install --target, with .pyc): {mb(tk.total).strip()} MB, "
              f"{len(dists)} distributions ({', '.join(dists)})")
        print(f"    already in our closure: {', '.join(shared) or 'none'}; it would add "
              f"{mb(extra.total).strip()} MB = {pct(extra.total, rt.total).strip()} of the runtime closure "
              f"(rollback/gha.py, the standard-library replacement, is "
              f"{(ROOT / 'rollback' / 'gha.py').stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
