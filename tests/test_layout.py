"""labutils' layout: no import cycle between its modules (function-level imports included), no module over ~500 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import labutils

ROOT = Path(labutils.__file__).resolve().parent
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The labutils modules that ``path`` imports, anywhere in the file (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import mod" imports the submodule pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    graph = {name: _imports(path, modules) for name, path in files.items()}
    # a package's __init__ re-exports its modules: importing "pkg" means importing them, not a cycle
    # through the package itself, so edges *into* a package from its own modules are ignored
    return {name: {t for t in deps if not name.startswith(t + ".")} for name, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_labutils():
    graph = _graph()
    assert "labutils.training.cache" in graph and "labutils.training.loop" in graph["labutils.training.cache"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_lower_layers_do_not_import_higher_ones():
    """data, models, runtime, files and settings import nothing above them; course imports everything."""
    graph = _graph()
    low = ("labutils.data", "labutils.models", "labutils.runtime", "labutils.files", "labutils.settings",
           "labutils.extras")
    high = ("labutils.training", "labutils.attacks", "labutils.robustness", "labutils.uncertainty", "labutils.selective",
            "labutils.viz", "labutils.course")
    for name, deps in graph.items():
        if name.startswith(low):
            assert not [d for d in deps if d.startswith(high)], (name, deps)
        if not name.startswith("labutils.course"):
            assert not [d for d in deps if d.startswith("labutils.course")], (name, deps)


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
