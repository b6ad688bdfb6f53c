"""The import rule: a module imports only from lower layers, and nothing imports in a circle.

Every import counts, including those inside functions: an import deferred to dodge a
circle is a concept in the wrong file. Layers, bottom first (README, "Architecture"):

    common (errors, files, settings)  <  backends  <  squad
              <  harness.loadgen | models (peers: never import each other)
              <  harness.runner, agreement, cli, system  <  benchmarks, tests
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backends", "common", "squad", "harness", "models", "benchmarks", "tests")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("common",),
    ("backends",),
    ("squad",),
    ("harness.loadgen", "models"),
    ("harness",),  # the run, agreement, the CLI and the rest of the top of harness
    ("benchmarks", "tests"),
)
# Groups that share a layer without depending on each other.
PEERS = frozenset({"harness.loadgen", "models"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def group_of(module: str) -> tuple[int, str]:
    """(layer index, the longest layer prefix that holds ``module``)."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (index, prefix)
    assert best is not None, f"{module} is in no layer; add it to LAYERS"
    return best


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            # the longest project module that the dotted name starts with
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_no_module_imports_from_a_higher_layer_or_a_peer(graph) -> None:
    wrong = []
    for module, imported in sorted(graph.items()):
        layer, group = group_of(module)
        for target in sorted(imported):
            target_layer, target_group = group_of(target)
            if target_layer > layer:
                wrong.append(f"{module} imports {target} (a higher layer)")
            elif target_layer == layer and {group, target_group} <= PEERS and group != target_group:
                wrong.append(f"{module} imports {target} (peers never import each other)")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles(graph) -> None:
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_test_modules_share_helpers_not_each_other(graph) -> None:
    """Tests take shared code from conftest and helper modules, never from another test."""
    wrong = [f"{module} imports {target}" for module, imported in sorted(graph.items())
             if module.startswith("tests.") for target in sorted(imported)
             if target.startswith("tests.test_")]
    assert not wrong, "\n".join(wrong)


def test_datasets_stays_a_data_folder() -> None:
    """A top-level package named ``datasets`` would shadow Hugging Face's library."""
    assert not (ROOT / "datasets" / "__init__.py").exists()
    assert not list((ROOT / "datasets").glob("*.py"))


def test_the_checker_sees_real_edges(graph) -> None:
    """Guard against a checker that parses nothing: known edges must be found."""
    assert "squad.features" in graph["squad.data"]
    assert "backends.base" in graph["backends"]
    assert group_of("squad.metrics") == (2, "squad")
    assert group_of("common.settings") == (0, "common")
    assert group_of("harness.runner") == (4, "harness")
