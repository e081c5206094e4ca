"""The code's shape, read from the source (ast): imports point down, no loops, small modules.

Layers, bottom to top: ``finetune`` (data, training, models) ← ``evalsuite`` (evaluation) ←
``tuneproof_demo`` (the demo story) ← ``tuneproof_app`` and ``app.py`` (the app). A module
imports only from its own layer or below, every import counted (inside functions too), and the
project's modules import each other without a cycle. Imports under ``if TYPE_CHECKING:`` are
annotations only: they never run, so they count for the layers but cannot close a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"finetune": 0, "evalsuite": 1, "tuneproof_demo": 2, "tuneproof_app": 3, "app": 4}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Modules allowed over MAX_MODULE_LINES, each with the reason.
MODULE_EXEMPT: dict[str, str] = {}
# Import cycles allowed for now, each with the reason; the test fails when one is gone.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}
# Functions allowed over MAX_FUNCTION_LINES ("path:qualified name"), each with the reason.
FUNCTION_EXEMPT: dict[str, str] = {}


def _source_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in LAYERS:
        if (ROOT / package).is_dir():
            files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if f.is_file()]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_only(tree: ast.AST) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(path: Path, modules: set[str], runtime: bool = False) -> set[str]:
    """The project modules ``path`` imports, at any depth of its code.

    ``runtime``: leave out the imports under ``if TYPE_CHECKING:``.
    """
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_only(tree) if runtime else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` where c is a name
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(runtime: bool = False) -> dict[str, set[str]]:
    """Every project module and the project modules it imports (``runtime``: as it runs)."""
    files = _source_files()
    modules = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, modules, runtime) for f in files}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions_and_from_packages() -> None:
    graph = import_graph()
    # imports inside a function (build_demo's), and `from evalsuite import adapter_checks`
    assert "evalsuite.runner" in graph["tuneproof_demo.pipeline"]
    assert "evalsuite.adapter_checks" in graph["evalsuite.engine_adapters"]
    assert "finetune.models" in graph["evalsuite.engine"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = {tuple(c): " -> ".join(c) for c in _cycles(import_graph(runtime=True))}
    assert {c: t for c, t in found.items() if c not in KNOWN_CYCLES} == {}
    assert [c for c in KNOWN_CYCLES if c not in found] == [], "a known cycle is gone: drop it"


def test_type_checking_imports_count_for_layers_not_cycles() -> None:
    graph, runtime = import_graph(), import_graph(runtime=True)
    assert "evalsuite.task" in graph["evalsuite.metric_names"]  # under TYPE_CHECKING
    assert "evalsuite.task" not in runtime["evalsuite.metric_names"]


def test_imports_point_down_the_layers() -> None:
    upward = sorted(f"{m} imports {t}" for m, targets in import_graph().items() for t in targets
                    if LAYERS[t.split(".")[0]] > LAYERS[m.split(".")[0]])
    assert upward == []


def test_no_module_over_the_line_limit() -> None:
    long = {}
    for f in _source_files():
        rel = f.relative_to(ROOT).as_posix()
        n = len(f.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES and rel not in MODULE_EXEMPT:
            long[rel] = n
    assert long == {}
    stale = [m for m in MODULE_EXEMPT if not (ROOT / m).is_file()
             or len((ROOT / m).read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES]
    assert stale == [], "exempt modules that are gone or short now: drop them from the list"


def function_lengths() -> dict[str, int]:
    """``path:qualified.name`` -> lines, for every function and method of the project."""
    out: dict[str, int] = {}
    for f in _source_files():
        rel = f.relative_to(ROOT).as_posix()

        def walk(node: ast.AST, prefix: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    qual = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                        out[f"{rel}:{qual}"] = child.end_lineno - start + 1
                    walk(child, qual + ".")

        walk(ast.parse(f.read_text(encoding="utf-8")), "")
    return out


def test_no_function_over_the_line_limit() -> None:
    lengths = function_lengths()
    assert lengths["evalsuite/engine.py:Engine.generate"] > 1  # methods are measured too
    long = {f: n for f, n in lengths.items()
            if n > MAX_FUNCTION_LINES and f not in FUNCTION_EXEMPT}
    assert long == {}
    assert [f for f in FUNCTION_EXEMPT if lengths.get(f, 0) <= MAX_FUNCTION_LINES] == []


def _named_in_architecture() -> set[str]:
    """Paths docs/architecture.md's tables name: `a/b.py`, a folder `a/b/`, or a bare `c.py`
    on a row whose first path is in the same folder."""
    import re

    named: set[str] = set()
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        folder = None
        for token in re.findall(r"`([^`\s]+)`", line):
            if "/" in token:
                named.add(token)
                if folder is None:
                    folder = token.rstrip("/") if token.endswith("/") else token.rsplit("/", 1)[0]
            elif token.endswith(".py"):
                named.add(f"{folder}/{token}" if folder else token)
    return named


def test_every_module_is_in_the_architecture_table() -> None:
    named = _named_in_architecture()
    missing = []
    for f in _source_files():
        rel = f.relative_to(ROOT).as_posix()
        if f.name in ("__init__.py", "__main__.py") or rel in named:
            continue
        if any(rel.startswith(n) for n in named if n.endswith("/")):
            continue
        missing.append(rel)
    assert missing == [], "add a row for each to docs/architecture.md"
    assert sorted(n for n in named if not (ROOT / n).exists()) == [], "rows of modules gone"
