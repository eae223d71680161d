"""The layout: dependencies point one way, no module reaches into another's private names, names are unique."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hil", "instruments", "protocols", "sim_backend", "benchmarks")
# what each package may import of the project's packages (design.md: hil → protocols → instruments;
# sim_backend serves the emulated instruments, which instruments reach only through a VISA address)
ALLOWED = {
    "instruments": {"instruments"},
    "protocols": {"protocols", "instruments"},
    "sim_backend": {"sim_backend", "instruments"},
    "hil": set(PACKAGES) - {"benchmarks"},
    "benchmarks": set(PACKAGES),
}


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path, ast.parse(path.read_text(), str(path))


def imported(tree):
    """``(module, names)`` of every import in a module (names empty for ``import x``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package):
    for own, path, tree in modules():
        if own != package:
            continue
        for module, _ in imported(tree):
            top = module.split(".")[0]
            if top in PACKAGES:
                assert top in ALLOWED[package], f"{path.relative_to(ROOT)} imports {module}"


def test_no_module_imports_another_modules_private_names():
    for _, path, tree in modules():
        for module, names in imported(tree):
            if module.split(".")[0] in PACKAGES:
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {module}"


def test_instruments_and_protocols_import_no_torch_and_only_sessions_touch_h5py():
    for package, path, tree in modules():
        for module, _ in imported(tree):
            top = module.split(".")[0]
            if package in ("instruments", "protocols"):
                assert top != "torch", f"{path.relative_to(ROOT)} imports torch"
            if top == "h5py":
                assert path.parent == ROOT / "hil" / "session", f"{path.relative_to(ROOT)} imports h5py"


def test_no_two_modules_share_a_name_stem():
    stems = defaultdict(list)
    for _, path, _ in modules():
        if path.stem not in ("__init__", "__main__"):
            stems[path.stem].append(str(path.relative_to(ROOT)))
    shared = {stem: paths for stem, paths in stems.items() if len(paths) > 1}
    assert not shared, shared


def test_every_folder_of_modules_is_a_package_the_wheel_ships():
    """A folder of modules without ``__init__.py`` is left out of the wheel (setup.py finds packages)."""
    for package in PACKAGES:
        for folder in sorted({path.parent for path in (ROOT / package).rglob("*.py")}):
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"
