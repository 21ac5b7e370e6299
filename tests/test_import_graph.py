"""The package's import graph between its parts is acyclic.

Every module under keras_cnn/ is parsed with `ast`; every import counts, also those inside
functions (a lazy import is still a dependency, it only hides the cycle until run time).
Modules are grouped into the package's parts: its subpackages (`keras_cnn.models`,
`keras_cnn.weights`, ...) and its top-level modules (`keras_cnn.registry`, `keras_cnn.cli`, ...).
The root `keras_cnn/__init__.py` is the public facade that gathers every part, so it is no node.
"""

import ast
import os

import pytest

PACKAGE = "keras_cnn"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
# Cycles about to go away with another change, as (part, part) edges that may close a cycle.
KNOWN_CYCLE_EDGES = set()


def _modules():
    """`{dotted module name: path}` of every module of the package."""
    modules = {}
    for directory, _, files in os.walk(ROOT):
        for file in files:
            if not file.endswith(".py"):
                continue
            relative = os.path.relpath(os.path.join(directory, file), os.path.dirname(ROOT))
            parts = relative[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = os.path.join(directory, file)
    return modules


def part_of(module):
    """The part a dotted module belongs to: `keras_cnn.models.resnet` -> `keras_cnn.models`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


def _imported(module, path, modules):
    """The package modules `module` imports, at any level of its code."""
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from keras_cnn import data` imports the submodule `keras_cnn.data`.
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def part_graph():
    """`{part: {part it imports: [(importing module, imported module)]}}`, self-edges left out."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        source = part_of(module)
        if source is None:
            continue  # the root facade
        graph.setdefault(source, {})
        for target_module in _imported(module, path, modules):
            target = part_of(target_module)
            if target is not None and target != source:
                graph[source].setdefault(target, []).append((module, target_module))
    return graph


def find_cycle(graph, ignored_edges=frozenset()):
    """One cycle of `graph` as a list of parts (first == last), or `None`."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, {})):
            if (node, target) in ignored_edges:
                continue
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def describe(graph, cycle):
    lines = [" -> ".join(cycle)]
    for source, target in zip(cycle, cycle[1:]):
        for importer, imported in sorted(graph[source][target]):
            lines.append(f"  {importer} imports {imported}")
    return "\n".join(lines)


def test_parts_cover_the_package():
    graph = part_graph()
    assert {"keras_cnn.models", "keras_cnn.layers", "keras_cnn.weights", "keras_cnn.training",
            "keras_cnn.ssl", "keras_cnn.distribute", "keras_cnn.data", "keras_cnn.utils",
            "keras_cnn.registry", "keras_cnn.cli"} <= set(graph)
    # Function-level imports count: the registry's hook is filled by keras_cnn.weights,
    # which imports the registry, not the other way round.
    assert "keras_cnn.registry" in graph["keras_cnn.weights"]


def test_the_import_graph_between_parts_is_acyclic():
    graph = part_graph()
    cycle = find_cycle(graph, KNOWN_CYCLE_EDGES)
    assert cycle is None, "import cycle between parts of keras_cnn:\n" + describe(graph, cycle)


def test_known_exceptions_are_still_needed():
    """A known cycle edge that no longer closes a cycle must leave `KNOWN_CYCLE_EDGES`."""
    graph = part_graph()
    for edge in KNOWN_CYCLE_EDGES:
        source, target = edge
        assert target in graph.get(source, {}), f"{edge} is gone: delete it from KNOWN_CYCLE_EDGES"
        assert find_cycle(graph, KNOWN_CYCLE_EDGES - {edge}) is not None


def test_the_cycle_finder_reports_a_cycle():
    graph = {"a": {"b": [("a.x", "b.y")]}, "b": {"c": [("b.y", "c.z")]}, "c": {"a": [("c.z", "a.x")]}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle(graph, {("c", "a")}) is None
    assert "a.x imports b.y" in describe(graph, find_cycle(graph))


@pytest.mark.parametrize("rule", [("keras_cnn.models", "keras_cnn.weights"),
                                  ("keras_cnn.registry", "keras_cnn.weights"),
                                  ("keras_cnn.distribute", "keras_cnn.registry")])
def test_layering_rules(rule):
    """Models and the registry know nothing of weights; distribute knows no registry."""
    source, target = rule
    assert target not in part_graph().get(source, {}), part_graph()[source][target]


def test_depthwise_names_match_the_registry_families():
    """`distribute.xla` matches registry names by pattern, so it need not import the registry."""
    import keras_cnn
    from keras_cnn.distribute import xla

    for name in keras_cnn.list_models():
        expected = keras_cnn.get_model_info(name).family in xla.DEPTHWISE_FAMILIES
        assert xla.has_depthwise(name) is expected, name
