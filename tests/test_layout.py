"""The house rules of the package layout: no import circles, and imports that only go down."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Each part of the package may import only parts of a lower rank (and itself). The shared
# helpers are the ground floor; `cli`, `__main__` and app.py launch everything.
RANKS = {"qa": 0, "qa.config": 0, "qa.types": 0, "qa.errors": 0, "qa.files": 0,
         "qa.progress": 0, "qa.compute": 0, "qa.ingest": 1, "qa.index": 2, "qa.generate": 2,
         "qa.retrieve": 3, "qa.answer": 4, "qa.eval": 5, "qa.serve": 5, "qa.cli": 6,
         "qa.__main__": 7, "app": 7}
SHARED = {"qa.config", "qa.types", "qa.errors", "qa.files", "qa.progress", "qa.compute"}
BACKENDS = ("qa.generate.transformers_backend", "qa.generate.llamacpp_backend",
            "qa.generate.openai_backend", "qa.generate.int8")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Every own module -> the own modules it imports, at any depth of the code (lazy imports
    inside functions count too)."""
    paths = {_module(p): p for p in [*(ROOT / "qa").rglob("*.py"), ROOT / "app.py"]}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                while name and name not in paths:
                    name = name.rpartition(".")[0]
                # A package's own __init__ is not an edge of its submodules.
                if name and name != mod and not mod.startswith(name + "."):
                    graph[mod].add(name)
    return graph


def _part(module: str) -> str:
    """The ranked part a module belongs to (its subpackage, or itself)."""
    return next(p for p in sorted(RANKS, key=len, reverse=True)
                if module == p or module.startswith(p + "."))


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node)
    return found


def test_the_graph_sees_lazy_imports() -> None:
    graph = _graph()
    assert "qa.serve.server" in graph["qa.cli"]  # imported inside main() only
    assert "qa.serve.gradio_app" in graph["qa.serve.api"]


def test_no_import_circles() -> None:
    assert _circles(_graph()) == []


def test_a_circle_is_found() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_imports_only_go_down() -> None:
    upward = []
    for mod, imports in _graph().items():
        for target in imports:
            here, there = _part(mod), _part(target)
            if here != there and not RANKS[there] < RANKS[here] and there not in SHARED:
                upward.append(f"{mod} -> {target}")
    assert upward == []


def test_backends_import_only_the_contract_and_shared_helpers() -> None:
    allowed = SHARED | {"qa", "qa.generate.base", "qa.generate.prefix_store"}
    wrong = [f"{mod} -> {target}" for mod, imports in _graph().items()
             if mod.startswith(BACKENDS) for target in imports
             if target not in allowed and not target.startswith("qa.generate.int8")]
    assert wrong == []


def test_app_py_is_a_launcher_of_the_packaged_app() -> None:
    assert _graph()["app"] == {"qa.serve.server"}
    assert len((ROOT / "app.py").read_text(encoding="utf-8").splitlines()) <= 12
