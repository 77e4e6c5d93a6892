"""Colab (issue 14): every notebook opens on Colab, from this repository, on a GPU.

The repository is one constant, `seglib.paths.REPOSITORY`. The badges and the install
cells of the notebooks, the README's badges and install snippet, and the notebooks'
Colab metadata must all follow it; `tools/sync_colab.py` rewrites them from it (a fork
runs it once; tests/tools/test_sync_colab.py checks that tool). After pip, the install cell says
whether the runtime must be restarted (a package imported before pip replaced it).
"""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path
from urllib.parse import urlparse

import pytest

from seglib.paths import INSTALL_SPEC, REPOSITORY
from tests.helpers import cell_source, load_script, read_notebook

ROOT = Path(__file__).resolve().parents[2]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


OWNER_REPO = urlparse(REPOSITORY).path.strip("/")


GUARD = 'if "google.colab" in sys.modules:'


COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'<>]+")


KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


sync_colab = load_script("tools/sync_colab.py", "sync_colab")


def _expected_url(name: str) -> str:
    return f"https://colab.research.google.com/github/{OWNER_REPO}/blob/main/notebooks/{name}"


def _pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` line, without -q/--quiet."""
    out = []
    for line in text.splitlines():
        if "pip install" not in line:
            continue
        words = shlex.split(line.strip())
        if len(words) > 2 and words[0] in ("%pip", "!pip", "pip") and words[1] == "install":
            out.append([w for w in words[2:] if w not in ("-q", "--quiet")])
    return out


def test_the_repository_is_one_github_url():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPOSITORY)
    assert INSTALL_SPEC == f"seglib @ git+{REPOSITORY}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_install_cell_installs_exactly_seglib_from_the_repository_and_d2l(path):
    code = [cell_source(c) for c in read_notebook(path)["cells"] if c["cell_type"] == "code"]
    install = next((s for s in code if GUARD in s), None)
    assert install is not None, f"no install cell guarded by {GUARD}"
    assert _pip_installs(install) == [[INSTALL_SPEC], ["--no-deps", "d2l==1.0.3"]]
    pip_lines = [line for line in install.splitlines() if "pip install" in line]
    assert all(line.startswith("    ") for line in pip_lines), "pip must run only on Colab"
    assert "Restart now" in install and "no restart needed" in install  # says which


def _run_install_cell(monkeypatch, modules: dict[str, types.ModuleType]) -> None:
    """Run the install cell as on Colab (`fake_colab`), pip skipped, with `modules`
    already imported: what the kernel holds when pip has changed the files on disk."""
    lines = sync_colab.install_cell().splitlines()
    code = "\n".join("    pass" if line.strip().startswith("%pip") else line for line in lines)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)  # put back after the test
    exec(compile(code, "<install cell>", "exec"), {})


def _module(name: str, version: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__version__ = version
    return module


def test_install_cell_says_whether_the_runtime_must_be_restarted(fake_colab, monkeypatch,
                                                                 capsys):
    from importlib.metadata import version

    import numpy
    import torch

    _run_install_cell(monkeypatch, {"numpy": numpy, "torch": torch})  # what pip installed is loaded
    assert capsys.readouterr().out.strip() == "Installed: no restart needed"
    # Colab had imported an older numpy and pillow; torch differs only in its local label
    torch_cuda = version("torch").split("+")[0] + "+cu121"
    _run_install_cell(monkeypatch, {"numpy": _module("numpy", "1.0.0"),
                                    "PIL": _module("PIL", "7.0.0"),
                                    "torch": _module("torch", torch_cuda)})
    out = capsys.readouterr().out.strip()
    assert out.startswith("Restart now (Runtime > Restart session)")
    assert out.endswith("pip replaced numpy, pillow")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badges_point_at_the_repository(path):
    cells = read_notebook(path)["cells"]
    assert _expected_url(path.name) in COLAB_URL.findall(cell_source(cells[0]))
    for cell in cells:
        for url in COLAB_URL.findall(cell_source(cell)):
            name = url.rsplit("/", 1)[-1]
            assert url == _expected_url(name) and (ROOT / "notebooks" / name).is_file(), url


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_opens_the_notebook_on_a_gpu_with_the_python3_kernel(path):
    meta = read_notebook(path)["metadata"]
    assert meta.get("accelerator") == "GPU"
    colab = meta.get("colab", {})
    assert colab.get("provenance") == [] and colab.get("gpuType") == "T4"
    assert meta.get("kernelspec") == KERNELSPEC


def test_readme_badges_and_install_snippet_use_the_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    urls = COLAB_URL.findall(readme)
    assert sorted({u.rsplit("/", 1)[-1] for u in urls}) == [p.name for p in NOTEBOOKS]
    assert all(u == _expected_url(u.rsplit("/", 1)[-1]) for u in urls)
    assert re.findall(r"seglib @ git\+[^\"'\s]+", readme) == [INSTALL_SPEC]
    installs = _pip_installs(readme)
    assert [INSTALL_SPEC] in installs and ["--no-deps", "d2l==1.0.3"] in installs
