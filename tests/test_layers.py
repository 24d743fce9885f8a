"""qmml's imports follow the layer order documented in docs/architecture.md (read from its table)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qmml"


def documented_layers(text: str) -> dict:
    """{module or package prefix: layer} from the rows ``| N name | `a`, `b/` | ... |`` of the layer table."""
    layers = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*(\d+)\s+[^|]*\|([^|]*)\|", line)
        if match:
            for name in re.findall(r"`([^`]+)`", match.group(2)):
                layers["qmml." + name.rstrip("/").replace("/", ".")] = int(match.group(1))
    return layers


def layer_of(module: str, layers: dict):
    """The layer of ``module`` (a dotted name): that of its longest documented prefix, or None."""
    parts = module.split(".")
    for k in range(len(parts), 1, -1):
        if ".".join(parts[:k]) in layers:
            return layers[".".join(parts[:k])]
    return None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool, known) -> list:
    """(line, qmml module) for every import of a qmml module in ``source``, function-level ones included;
    ``from pkg import name`` counts as importing ``pkg.name`` where that is a module (``known``)."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "qmml"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "qmml":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.append((node.lineno, full if full in known else target))
    return out


def violations(package_dir: Path, layers: dict) -> list:
    files = sorted(package_dir.rglob("*.py"))
    known = {module_name(f, package_dir) for f in files}
    found = []
    for path in files:
        module = module_name(path, package_dir)
        if module == "qmml":
            continue  # the public face gathers names from every layer
        own = layer_of(module, layers)
        if own is None:
            found.append(f"{module}: not in the layer table of docs/architecture.md")
            continue
        for line, target in imported_modules(path.read_text(), module, path.name == "__init__.py", known):
            if target == "qmml":
                found.append(f"{module}:{line} imports the qmml package itself (an import cycle); import the module")
                continue
            theirs = layer_of(target, layers)
            if theirs is None:
                found.append(f"{module}:{line} imports {target}, which is not in the layer table")
            elif theirs > own:
                found.append(f"{module}:{line} (layer {own}) imports {target} (layer {theirs}): upward")
    return found


@pytest.fixture(scope="module")
def layers():
    table = documented_layers((ROOT / "docs" / "architecture.md").read_text())
    assert len(table) >= 20, "the layer table of docs/architecture.md was not found"
    return table


def test_no_import_runs_against_the_documented_layer_order(layers):
    found = violations(PACKAGE, layers)
    assert not found, "\n".join(found)


def test_the_checker_finds_an_upward_import_a_cycle_and_an_undocumented_module(layers, tmp_path):
    package = tmp_path / "qmml"
    (package / "periodic").mkdir(parents=True)
    (package / "__init__.py").write_text("from .md import Simulation\n")
    (package / "periodic" / "__init__.py").write_text("")
    (package / "periodic" / "cell.py").write_text("def f():\n    from ..md.simulation import Simulation\n")
    (package / "units.py").write_text("from . import __version__\n")
    (package / "md").mkdir()
    (package / "md" / "__init__.py").write_text("from ..units import X\n")
    (package / "md" / "simulation.py").write_text("from ..periodic import cell\n")
    (package / "brand_new.py").write_text("")
    found = violations(package, layers)
    assert any("qmml.periodic.cell:2 (layer 0) imports qmml.md.simulation (layer 4): upward" in f for f in found)
    assert any("qmml.units:1 imports the qmml package itself" in f for f in found)
    assert any("qmml.brand_new: not in the layer table" in f for f in found)
    assert len(found) == 3, found  # md importing periodic and units is downward: allowed


MOVED = {"qmml.ml.neighbours": "qmml.periodic.neighbours", "qmml.colvars": "qmml.sampling.colvars",
         "qmml.restraints": "qmml.sampling.restraints", "qmml.umbrella": "qmml.sampling",
         "qmml.analysis.free_energy": "qmml.sampling.free_energy", "qmml.vdw": "qmml.coupling.vdw",
         "qmml.switching": "qmml.coupling.switching", "qmml.reference": "qmml.coupling.reference"}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_still_imports_with_a_warning_naming_its_new_home(old):
    import importlib
    import sys
    import warnings

    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught), caught
    public = [name for name in vars(module) if not name.startswith("_") and name not in ("moved_module",)]
    assert public and all(getattr(module, name) is getattr(new, name) for name in public if hasattr(new, name))


def test_a_moved_function_still_imports_with_a_warning():
    import qmml.ml
    import qmml.parallel

    with pytest.warns(DeprecationWarning, match="qmml.ml.labelling.label_structures"):
        assert qmml.parallel.label_structures is qmml.ml.label_structures
