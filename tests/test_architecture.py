"""The import structure docs/ARCHITECTURE.md describes, checked on the source: no circle,
no import from a lower room to a higher one, layers that never touch the network object,
and one table of parameters."""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "darknet_py"


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """The darknet_py modules a file imports (module level or inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("darknet_py")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("darknet_py"):
                continue
            for alias in node.names:   # `from . import log` imports the module log
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
    return found


def _exists(module):
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or \
        (PACKAGE / relative / "__init__.py").exists()


GRAPH = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _importers_of(target, room):
    return sorted(module for module, imported in GRAPH.items()
                  if module.startswith(room) and any(i == target or i.startswith(target + ".")
                                                     for i in imported))


def test_the_graph_was_read():
    assert "darknet_py.network" in GRAPH and "darknet_py.layers.convolutional" in GRAPH
    assert "darknet_py.layers.params" in GRAPH["darknet_py.weights"]


@pytest.mark.parametrize("room, forbidden", [
    ("darknet_py.layers", "darknet_py.network"),
    ("darknet_py.weights", "darknet_py.network"),
    ("darknet_py.ops", "darknet_py.layers"),
    ("darknet_py.ops", "darknet_py.network"),
    ("darknet_py.layers", "darknet_py.cli"),
    ("darknet_py.layers", "darknet_py.train"),
])
def test_no_import_from_a_lower_room_to_a_higher_one(room, forbidden):
    assert _importers_of(forbidden, room) == []


def test_no_import_circle():
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if target not in GRAPH or target == module:
                continue
            # a package's __init__ importing its own submodules is how packages work
            if target.startswith(module + ".") and module.count(".") >= 1:
                continue
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target] if target in path else [target]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_layers_never_read_the_network():
    offenders = []
    for path in (PACKAGE / "layers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "net":
                offenders.append(f"{path.name}:{node.lineno} net.{node.attr}")
            if isinstance(node, ast.arg) and node.arg == "net":
                offenders.append(f"{path.name}:{node.lineno} parameter 'net'")
    assert offenders == []


def test_one_list_of_parameter_layers():
    """No module names the layer types that carry parameters: the tables say it."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        # a list of exactly the parameter-carrying types, in any order
        if re.search(r'[(\[]\s*("(convolutional|connected|batchnorm)",?\s*){3}[)\]]', text) or \
                "_PARAMETER_LAYERS" in text or "_PARAM_LAYER_TYPES" in text:
            offenders.append(str(path.relative_to(PACKAGE)))
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    for path in scripts.glob("*.py"):
        if "hasattr(layer, \"weights\")" in path.read_text():
            offenders.append(str(path))
    assert offenders == []
