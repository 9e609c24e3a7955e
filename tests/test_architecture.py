"""The import direction and the absence of import cycles, checked on the code itself.

The layers are declared in setup.cfg ([importlinter]) and checked with import-linter; the
cycle check below counts every import, inside functions too (grimp sees them), so a
function-local import cannot hide a cycle.  ``importlib.import_module`` would hide one
from both: only the package's lazy re-exports (``lxcvirt/__init__.py``) may use it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Set
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lxcvirt"


def cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (each holds a cycle), and
    modules that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycles() -> None:
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("lxcvirt", include_external_packages=False,
                              exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 30  # the package was really read
    assert cycles(edges) == []


def test_no_hidden_imports() -> None:
    """import_module hides an import from both checks: only the lazy public API uses it."""
    users = sorted(
        str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
        if re.search(r"\bimport_module\(", p.read_text())
    )
    assert users == ["lxcvirt/__init__.py"]


def test_the_layers_contract_is_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("import-linter is not installed (it is in the dev extras)")
    proc = subprocess.run([lint, "--config", str(ROOT / "setup.cfg")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.fail("ruff is not installed (it is in the dev extras)")
    return subprocess.run([ruff, "check", "--output-format", "concise", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_libvirt_errors_are_converted_in_one_module() -> None:
    """libvirt.libvirtError appears in lxcvirt/_libvirt.py only (ruff's banned-api rule,
    configured in pyproject.toml); everything else catches lxcvirt's error types."""
    assert _ruff("--select", "TID251", "lxcvirt").returncode == 0
    snippet = "import libvirt\n\ntry:\n    pass\nexcept libvirt.libvirtError:\n    pass\n"
    flagged = _ruff("--select", "TID251", "--stdin-filename", "lxcvirt/new.py", "-",
                    stdin=snippet)
    assert flagged.returncode == 1 and "TID251" in flagged.stdout
    allowed = _ruff("--select", "TID251", "--stdin-filename", "lxcvirt/_libvirt.py", "-",
                    stdin=snippet)
    assert allowed.returncode == 0, allowed.stdout
