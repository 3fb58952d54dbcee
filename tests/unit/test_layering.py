"""Imports inside ``src/vlab`` point one way, and no vlab module imports itself back through others.

Every ``import`` statement of every module counts: at the top, inside functions (lazy imports) and under
``if TYPE_CHECKING:``. An edge ``a → b`` means "module ``a`` names module ``b`` in an import statement".

How an import becomes an edge:

- ``import x.y`` and ``from x.y import name``: an edge to ``x.y``; but ``from x import y`` where ``x.y``
  is a module is an edge to ``x.y``. Relative imports are resolved first.
- A name imported from a package (``from vlab.emulator import Emulator``, ``from vlab import Session``)
  is an edge to the module that defines the name, found through the package ``__init__``'s own imports
  (``__init__`` modules only re-export, often lazily with a ``TYPE_CHECKING`` mirror). A name the
  ``__init__`` defines itself is an edge to the package.
- Importing ``x.y.z`` also runs ``x/__init__`` and ``x/y/__init__``; those implicit edges are not
  counted, or every ``__init__`` that re-exports its submodules would close a cycle with each of them.
  For the same reason an explicit import of an ancestor package's own name (``from vlab import
  __version__`` in ``vlab.session``) is no edge: that package has run before the module could start.
  A package ``__init__``'s own import statements are edges like any other, so the rules hold for it too.

The rules (``RULES``) are a small table: who may not import whom, and why. Nothing is marked xfail: a
broken rule lists each offending edge with file, line and kind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Edge:
    """One import statement of one vlab module, resolved to the vlab module it reaches."""

    importer: str
    imported: str
    where: str
    """``path:line`` of the import statement, the path relative to the source root."""
    kind: str
    """``top``, ``function`` (inside a def) or ``type-checking`` (under ``if TYPE_CHECKING``)."""

    def __str__(self) -> str:
        return f"{self.importer} → {self.imported} ({self.where}, {self.kind})"


def _module_files(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


class _Imports(ast.NodeVisitor):
    """Collects ``(target, names, level, line, kind)`` for every import statement, wherever it is."""

    def __init__(self) -> None:
        self.found: list[tuple[str, tuple[str, ...], int, int, str]] = []
        self._kind = ["top"]

    def _visit_body(self, node: ast.AST, kind: str) -> None:
        self._kind.append(kind if self._kind[-1] == "top" else self._kind[-1])
        self.generic_visit(node)
        self._kind.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_body(node, "function")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_body(node, "function")

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self._kind.append("type-checking")
        for child in node.body:
            self.visit(child)
        self._kind.pop()
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, (), 0, node.lineno, self._kind[-1]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(alias.name for alias in node.names)
        self.found.append((node.module or "", names, node.level, node.lineno, self._kind[-1]))


def _absolute(module: str, is_package: bool, target: str, level: int) -> str:
    if not level:
        return target
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def import_graph(root: Path, top: str = "vlab") -> tuple[dict[str, Path], list[Edge]]:
    """Every vlab module under ``root`` and every import edge between them (see the module docstring)."""
    files = _module_files(root)
    parsed = {}
    for module, path in files.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        parsed[module] = visitor.found

    def is_package(module: str) -> bool:
        return files[module].name == "__init__.py"

    reexports: dict[str, dict[str, str]] = {}  # package → name → module the name comes from
    for package in filter(is_package, files):
        for target, names, level, _, _ in parsed[package]:
            source = _absolute(package, True, target, level)
            for name in names:
                reexports.setdefault(package, {})[name] = (
                    f"{source}.{name}" if f"{source}.{name}" in files else source
                )

    def defining(module: str, name: str, seen: frozenset[str] = frozenset()) -> str:
        origin = reexports.get(module, {}).get(name)
        if origin is None or origin == module or origin in seen or origin not in files:
            return module
        return defining(origin, name, seen | {module}) if is_package(origin) else origin

    edges = []
    for module, found in parsed.items():
        for target, names, level, line, kind in found:
            source = _absolute(module, is_package(module), target, level)
            if source != top and not source.startswith(top + "."):
                continue
            if not names:
                reached = [source]
            else:
                reached = [
                    f"{source}.{name}"
                    if f"{source}.{name}" in files
                    else defining(source, name)
                    if source in files and is_package(source)
                    else source
                    for name in names
                ]
            for imported in dict.fromkeys(reached):
                ancestor = module.startswith(imported + ".")
                if imported != module and imported in files and not ancestor:
                    edges.append(Edge(module, imported, f"{files[module].relative_to(root)}:{line}", kind))
    return files, edges


# --- the rules -----------------------------------------------------------------------------------------


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    """Modules within ``importers`` (minus ``exempt``) never import modules within ``forbidden``
    (minus ``allowed``)."""

    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def broken_by(self, edge: Edge) -> bool:
        return (
            _within(edge.importer, self.importers)
            and not _within(edge.importer, self.exempt)
            and _within(edge.imported, self.forbidden)
            and not _within(edge.imported, self.allowed)
        )


CORE = (
    "vlab.errors",
    "vlab.clock",
    "vlab.protocol",
    "vlab.protocol_limits",
    "vlab.log",
    "vlab.audio",
    "vlab.metrics",
)
"""Modules that everything else may build on; they build on nothing above them."""

APPLICATION = (
    "vlab.widgets",
    "vlab.emulator",
    "vlab.session",
    "vlab.sweep",
    "vlab.report",
    "vlab.calibrate",
    "vlab.cassette",
    "vlab.demo",
    "vlab.cli",
    "vlab.commands",
)
"""The session, the emulator, sweeps, reports and the user interfaces."""

RULES = (
    Rule(
        "core-is-at-the-bottom",
        importers=CORE,
        forbidden=APPLICATION,
        why="log, audio, metrics, protocol, clock and errors are the base every other part uses",
    ),
    Rule(
        "emulator-speaks-only-the-wire",
        importers=("vlab.emulator",),
        forbidden=("vlab.session", "vlab.widgets", "vlab.sweep"),
        why="the emulator is the other end of the wire: it shares protocol facts, never the client",
    ),
    Rule(
        "leaves-stand-alone",
        importers=("vlab.errors", "vlab.clock", "vlab.protocol"),
        forbidden=("vlab",),
        why="errors, clocks and wire-protocol facts are what every other module may import",
    ),
    Rule(
        "protocol-table-reads-only-the-protocol",
        importers=("vlab.protocol_limits",),
        forbidden=("vlab",),
        allowed=("vlab.protocol", "vlab.errors"),
        why="the table of protocol defaults and limits is derived from the protocol facts alone",
    ),
    Rule(
        "settings-are-data",
        importers=("vlab.settings",),
        forbidden=("vlab.log", "vlab.audio", "vlab.metrics", *APPLICATION),
        why="settings are validated data that the session, the emulator and sweeps all read",
    ),
    Rule(
        "the-log-knows-no-sound",
        importers=("vlab.log",),
        forbidden=("vlab.audio", "vlab.endpoint", "vlab.plots"),
        why="recording events never depends on handling sound (and the other way round)",
    ),
    Rule(
        "sound-knows-no-log",
        importers=("vlab.audio",),
        forbidden=("vlab.log", "vlab.endpoint", "vlab.plots"),
        why="handling sound never depends on recording events (and the other way round)",
    ),
    Rule(
        "emulator-is-not-the-client",
        importers=("vlab.emulator",),
        forbidden=("vlab.metrics", "vlab.log", "vlab.endpoint", "vlab.settings"),
        why="the emulator shares protocol facts with the client, not its log, metrics or settings",
    ),
    Rule(
        "session-never-needs-the-emulator",
        importers=("vlab.session",),
        forbidden=("vlab.emulator", "vlab.widgets", "vlab.plots"),
        why="the session talks to any Voice Live endpoint; the embedded emulator is started by the connector",
    ),
    Rule(
        "widgets-are-the-top",
        importers=("vlab",),
        exempt=("vlab.widgets", "vlab.cli", "vlab.commands", "vlab.demo"),
        forbidden=("vlab.widgets",),
        why="widgets use the library; only the entry points (cli, commands, demo) may show them",
    ),
)


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Edge]]:
    return import_graph(SRC)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_imports_point_one_way(rule: Rule, graph: tuple[dict[str, Path], list[Edge]]) -> None:
    _, edges = graph
    broken = [str(edge) for edge in edges if rule.broken_by(edge)]
    assert not broken, f"{rule.why}; these imports break that:\n" + "\n".join(broken)


def _cycles(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    out: dict[str, set[str]] = {n: set() for n in nodes}
    for edge in edges:
        out[edge.importer].add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(out[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle(graph: tuple[dict[str, Path], list[Edge]]) -> None:
    files, edges = graph
    report = []
    for component in _cycles(list(files), edges):
        inside = [str(e) for e in edges if e.importer in component and e.imported in component]
        report.append(f"cycle among {', '.join(component)}:\n  " + "\n  ".join(inside))
    assert not report, "\n".join(report)


# --- the graph builder itself ----------------------------------------------------------------------------


def test_the_graph_counts_lazy_type_checking_relative_and_reexported_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "vlab"
    (pkg / "core").mkdir(parents=True)
    (pkg / "ui").mkdir()
    files = {
        "__init__.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vlab.ui.panel import Panel\nVERSION = 1\n"
        ),
        "core/__init__.py": "",
        "core/base.py": "import json\nfrom . import util\nfrom vlab import VERSION\n",
        "core/util.py": "def f():\n    from vlab import Panel\n",
        "ui/__init__.py": "from vlab.ui.panel import Panel\n",
        "ui/panel.py": "import typing\nif typing.TYPE_CHECKING:\n    from ..core.base import X\nPanel = 1\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    _, edges = import_graph(tmp_path)
    assert {(e.importer, e.imported, e.kind) for e in edges} == {
        ("vlab", "vlab.ui.panel", "type-checking"),
        ("vlab.core.base", "vlab.core.util", "top"),
        ("vlab.core.util", "vlab.ui.panel", "function"),  # through vlab/__init__, to where Panel lives
        ("vlab.ui", "vlab.ui.panel", "top"),
        ("vlab.ui.panel", "vlab.core.base", "type-checking"),
    }
    assert _cycles([e.importer for e in edges] + ["vlab.core"], edges) == [
        ["vlab.core.base", "vlab.core.util", "vlab.ui.panel"]
    ]
    core_rule = Rule("t", importers=("vlab.core",), forbidden=("vlab.ui",), why="")
    assert [str(e) for e in edges if core_rule.broken_by(e)] == [
        "vlab.core.util → vlab.ui.panel (vlab/core/util.py:2, function)"
    ]


def test_the_graph_sees_the_real_tree(graph: tuple[dict[str, Path], list[Edge]]) -> None:
    files, edges = graph
    assert {"vlab", "vlab.protocol", "vlab.widgets.session_panel"} <= set(files) and len(files) > 50

    def reached(importer: str, kind: str) -> set[str]:
        return {e.imported for e in edges if e.importer == importer and e.kind == kind}

    # the panel imports the Session only when it runs; vlab/__init__ mirrors its lazy re-exports for typing
    assert any(_within(m, ("vlab.session",)) for m in reached("vlab.widgets.session_panel", "function"))
    assert any(_within(m, ("vlab.session",)) for m in reached("vlab", "type-checking"))


def test_the_emulator_speaks_the_wire_format_itself() -> None:
    """The emulator never uses the SDK it emulates the service for (that would hide wire-format bugs)."""
    files = sorted((SRC / "vlab" / "emulator").rglob("*.py"))
    assert len(files) > 10  # the emulator's modules were found
    users = [
        str(path.relative_to(SRC))
        for path in files
        if "azure" in {alias.split(".")[0] for alias in _top_level_imports(path)}
    ]
    assert users == []


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
