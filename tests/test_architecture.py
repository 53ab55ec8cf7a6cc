"""The dependency rules between our top-level packages (docs/CONTRACTS.md), checked on the source.

Every ``import`` and ``from ... import`` of every module counts, including imports inside functions and
under ``TYPE_CHECKING``: a cycle hidden in a function body is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Which of our packages each package may import. Anything not listed is forbidden.
ALLOWED: dict[str, set[str]] = {
    "speech": set(),
    "messaging": set(),
    "agent": set(),
    "knowledge": {"messaging"},
    "scheduler": {"agent", "messaging"},
    # server is the composition root: it wires every package, the scheduler included (embedded profile).
    "server": {"agent", "speech", "knowledge", "messaging", "scheduler"},
    "configs": set(),  # YAML only
    "web": set(),  # static pages only
}
PACKAGES = set(ALLOWED)


def imported_packages(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level package, line) of every absolute import in ``path`` that names one of ours."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                yield top, node.lineno


def package_edges(root: Path) -> dict[tuple[str, str], list[str]]:
    """``(importer, imported) -> ["file:line", ...]`` between different top-level packages under ``root``."""
    edges: dict[tuple[str, str], list[str]] = {}
    for package in sorted(PACKAGES):
        for path in sorted((root / package).rglob("*.py")):
            for imported, line in imported_packages(path):
                if imported != package:
                    where = f"{path.relative_to(root)}:{line}"
                    edges.setdefault((package, imported), []).append(where)
    return edges


def forbidden_edges(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    return [
        f"{a} -> {b} ({', '.join(where[:3])})" for (a, b), where in sorted(edges.items()) if b not in ALLOWED[a]
    ]


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Every elementary cycle's package list, found by a depth-first search from each package."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found: set[tuple[str, ...]] = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > start:
                visit(start, nxt, [*path, nxt])

    for package in sorted(graph):
        visit(package, package, [package])
    return [list(c) for c in sorted(found)]


def test_no_package_imports_what_the_contracts_forbid() -> None:
    assert forbidden_edges(package_edges(ROOT)) == []


def test_no_cycle_between_top_level_packages() -> None:
    assert cycles(package_edges(ROOT)) == []


def test_every_top_level_package_is_known() -> None:
    """A new top-level package must get its row in ALLOWED (and in docs/CONTRACTS.md)."""
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "scripts", "docs"}
    assert ours <= PACKAGES, f"add {sorted(ours - PACKAGES)} to ALLOWED"


@pytest.mark.parametrize(
    ("files", "expected_forbidden", "expected_cycles"),
    [
        (  # a cycle hidden in a function-level import, and a forbidden direction
            {
                "scheduler/a.py": "def f():\n    from server.b import x\n",
                "server/b.py": "import scheduler.a\n",
            },
            ["scheduler -> server (scheduler/a.py:2)"],
            [["scheduler", "server"]],
        ),
        ({"speech/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import agent\n"},
         ["speech -> agent (speech/a.py:3)"], []),
        ({"server/a.py": "import messaging.bus\nfrom . import b\n"}, [], []),
    ],
)
def test_the_check_finds_hidden_imports(
    tmp_path: Path, files: dict[str, str], expected_forbidden: list[str], expected_cycles: list[list[str]]
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = package_edges(tmp_path)
    assert forbidden_edges(edges) == expected_forbidden
    assert cycles(edges) == expected_cycles
