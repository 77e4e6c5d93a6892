"""The package's layers: imports run one way, no import hides inside a function."""

import ast
import pathlib

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


def test_runs_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLIB_RUNS", str(tmp_path / "drive"))
    assert seglib.paths.runs_root() == tmp_path / "drive"
    monkeypatch.delenv("SEGLIB_RUNS")
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", tmp_path / "repo")
    assert seglib.paths.runs_root() == tmp_path / "repo" / "runs"
    assert seglib.paths.data_root() == tmp_path / "repo" / "data"
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", None)
    monkeypatch.chdir(tmp_path)
    assert seglib.paths.runs_root() == tmp_path / "runs"


def test_the_repository_is_found_from_a_clone():
    # the tests run from a clone: seglib/ sits beside pyproject.toml
    assert seglib.paths.REPO_ROOT == PACKAGE.parent
    assert (seglib.paths.REPO_ROOT / "pyproject.toml").is_file()


def test_stored_results_come_from_the_clone_or_from_github(monkeypatch):
    local = seglib.paths.stored_result("camvid_cpu.csv")
    assert local == PACKAGE.parent / "benchmarks" / "results" / "camvid_cpu.csv"
    assert local.is_file()  # notebook 07 reads it: it must be committed
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", None)  # installed without a clone (Colab)
    monkeypatch.setattr(seglib.paths, "REPOSITORY", "https://github.com/someone/fork")
    assert seglib.paths.stored_result("camvid_cpu_metrics/ccnet-r0.csv") == (
        "https://raw.githubusercontent.com/someone/fork/main/benchmarks/results/"
        "camvid_cpu_metrics/ccnet-r0.csv"
    )
