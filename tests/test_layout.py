"""The package's layers: imports run one way, no import hides inside a function, `models`
and `data` stay independent (`import seglib.models` loads none of data's dependencies), and
every module has its tests at the mirrored path."""

import ast
import pathlib
import subprocess
import sys

import pytest

import seglib
import seglib.paths

PACKAGE = pathlib.Path(seglib.__file__).parent


# Each layer may import only itself and the layers before it.
LAYERS = [
    {"seglib.paths", "seglib.torch_load"},
    {"seglib.models", "seglib.data"},
    {"seglib.engine"},
    {"seglib.viz"},
    {"seglib.course"},
    {"seglib.cli", "seglib.train", "seglib.evaluate", "seglib.export"},
]


# Imports allowed inside functions: optional dependencies, each with its reason in a comment.
OPTIONAL = {"onnx", "d2l", "torch.distributed", "torchvision.models", "google.colab", "ipywidgets",
            "ipyevents"}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in layer):
            return i
    if module == "seglib":
        return len(LAYERS)  # the package's __init__ re-exports from every layer
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def _is_module(name: str) -> bool:
    rel = pathlib.Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _imports(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """(node, module) for every import; `from pkg import submodule` counts as the submodule."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_sub = sub.startswith("seglib") and _is_module(sub)
                out.append((node, sub if is_sub else node.module))
        elif isinstance(node, ast.ImportFrom):
            out.append((node, "." * node.level))
    return out


FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    me = _module_name(path)
    tree = ast.parse(path.read_text())
    for node, name in _imports(tree):
        assert not name.startswith("."), f"{me}: relative import at line {node.lineno}"
        if name.startswith("seglib"):
            assert _layer(name) <= _layer(me), (
                f"{me} (layer {_layer(me)}) imports {name} (layer {_layer(name)})"
            )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_inside_functions_but_optional_ones(path):
    tree = ast.parse(path.read_text())
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node, name in _imports(fn):
                assert name in OPTIONAL, (
                    f"{path.name}:{node.lineno} imports {name} inside {fn.name}()"
                )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_module(path):
    """A leading underscore means "this module's own": a name another module needs is
    public (named, documented), so `from seglib.x import _y` never appears."""
    me = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seglib"):
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, (
                f"{me}:{node.lineno} imports private {', '.join(private)} from {node.module}"
            )


def test_the_import_graph_has_no_cycle():
    graph = {}
    for path in FILES:
        me = _module_name(path)
        graph[me] = {n for _, n in _imports(ast.parse(path.read_text())) if n.startswith("seglib.")}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != "open", "cycle: " + " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_models_and_data_never_import_each_other(path):
    """The bottom layer's two halves: the networks know no dataset, the datasets no network."""
    me = _module_name(path)
    other = {"seglib.models": "seglib.data", "seglib.data": "seglib.models"}
    mine = next((name for name in other if me == name or me.startswith(name + ".")), None)
    if mine is None:
        return
    for node, name in _imports(ast.parse(path.read_text())):
        assert not (name == other[mine] or name.startswith(other[mine] + ".")), (
            f"{me}:{node.lineno} imports {name}"
        )


def test_importing_the_models_loads_none_of_the_datas_dependencies():
    """`import seglib.models` (which imports seglib/__init__.py first) stays light: the
    package re-exports its public names lazily, so OpenCV, albumentations and pandas load
    only with seglib.data. A fresh process: this one has imported everything already."""
    code = ("import sys, seglib.models; "
            "print(sorted(m for m in ('cv2', 'albumentations', 'pandas', 'seglib.data') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    assert out.strip() == "[]"


def test_the_package_still_re_exports_its_public_names():
    from seglib import CCNet, fit  # loaded on first use

    assert seglib.CCNet is CCNet and CCNet.__module__ == "seglib.models.ccnet"
    assert fit.__module__ == "seglib.engine.training_loop"
    assert set(seglib.__all__) <= set(dir(seglib))
    assert all(getattr(seglib, name) is not None for name in seglib.__all__)
    assert seglib.data.ensure_camvid.__module__ == "seglib.data.ensure"  # after `import seglib`
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        seglib.nothing  # noqa: B018


TESTS = pathlib.Path(__file__).parent
# Modules without a test file of their own, each with where it is tested instead.
UNTESTED_ALONE = {
    "models/layers.py": "conv_bn_relu: through models/test_ccnet.py and test_decoder.py",
    "models/factory.py": "build_model: through engine/test_config.py, test_scoring.py",
    "data/dataset.py": "the item format: through data/test_camvid.py and test_synthetic.py",
    "engine/device.py": "devices and AMP: through test_train.py (a device the machine lacks)",
}


def _mirrored(module: pathlib.Path) -> pathlib.Path:
    """The test file of `module`: the same folders, `test_` before the file name
    (seglib/engine/scoring.py -> tests/engine/test_scoring.py, seglib/cli.py -> tests/test_cli.py)
    """
    rel = module.relative_to(PACKAGE)
    return TESTS / rel.parent / f"test_{rel.name}"


def test_every_module_has_its_tests_at_the_mirrored_path():
    modules = [p for p in FILES if p.name != "__init__.py"]
    missing = [str(p.relative_to(PACKAGE)) for p in modules
               if not _mirrored(p).is_file() and str(p.relative_to(PACKAGE)) not in UNTESTED_ALONE]
    assert not missing, f"no tests/<same path>/test_<module>.py for: {', '.join(missing)}"
    stale = [name for name in UNTESTED_ALONE if not (PACKAGE / name).is_file()
             or _mirrored(PACKAGE / name).is_file()]
    assert not stale, f"UNTESTED_ALONE lists modules that are gone or now tested: {stale}"
