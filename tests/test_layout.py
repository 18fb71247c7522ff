"""The architecture stays visible: no import cycles, dependencies point one way (DESIGN.md 2),
and every module of the project imports on its own."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "models", "experiments", "plots")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Project modules that ``name`` imports anywhere in its file (module level or inside a
    function), resolved to module names: ``from a.b import c`` is a.b.c when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycle():
    # Explicit imports only: a submodule reaching for its package's namespace (``from sim import
    # methods`` inside sim/methods/) is an edge like any other, and closes a cycle.
    def edges(name):
        return GRAPH[name]

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges(node)):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def _violations(importer_prefix: str, forbidden: tuple[str, ...], allowed=()) -> list[str]:
    return [f"{name} imports {dep}" for name, deps in sorted(GRAPH.items())
            if name == importer_prefix or name.startswith(importer_prefix + ".")
            for dep in sorted(deps)
            if dep.startswith(forbidden) and dep not in allowed]


@pytest.mark.parametrize("importer,forbidden,allowed", [
    # DESIGN.md section 2: experiments -> sim, models; sim and models know nothing above them
    ("sim", ("experiments", "plots", "models"), ()),
    ("models", ("sim", "experiments", "plots"), ()),
    # plots reads results (and the spec schema, for units) and never runs a simulation
    ("plots", ("sim", "experiments"), ("sim.units", "experiments.results", "experiments.spec")),
    # inside sim: the wire formats and the network stand alone; the method registry imports no
    # method module; the network knows nothing of numerics
    ("sim.wire", ("sim.methods", "sim.net", "sim.cluster", "sim.compute"), ()),
    ("sim.net", ("sim.methods", "sim.wire", "sim.cluster", "sim.compute"), ()),
    ("sim.methods.base", ("sim.methods.",), ()),
])
def test_dependencies_point_one_way(importer, forbidden, allowed):
    assert _violations(importer, forbidden, allowed) == []


def test_no_module_of_the_simulator_is_long():
    long = {name: n for name, path in MODULES.items() if name.startswith("sim")
            and (n := len(path.read_text().splitlines())) > 440}
    assert long == {}, "split these modules by concept (about 400 lines at most)"


def test_every_module_imports_on_its_own():
    # One fresh interpreter; before each module, every project module is forgotten, so each is
    # imported with nothing of the project loaded before it.
    script = (
        "import importlib, sys\n"
        f"names = {sorted(MODULES)!r}\n"
        f"packages = {PACKAGES!r}\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in packages]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
