"""tools/sync_colab.py rewrites every Colab badge and install cell of the notebooks, their Colab
metadata and the README's badges and install snippet from `seglib.paths.REPOSITORY` (a fork
runs it once); tests/notebooks/test_colab.py checks that they agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import cell_source, load_script, read_notebook

ROOT = Path(__file__).resolve().parents[2]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


sync_colab = load_script("tools/sync_colab.py", "sync_colab")


def test_sync_tool_finds_nothing_to_change():
    assert sync_colab.sync(ROOT, write=False) == []


def test_sync_tool_moves_everything_to_a_fork_and_back(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    before = {p.name: read_notebook(p) for p in (tmp_path / "notebooks").glob("*.ipynb")}
    fork = "https://github.com/someone/seglib-fork"
    changed = sync_colab.sync(tmp_path, fork)
    assert changed == [f"notebooks/{p.name}" for p in NOTEBOOKS] + ["README.md"]
    assert sync_colab.sync(tmp_path, fork, write=False) == []  # idempotent
    for path in (tmp_path / "notebooks").glob("*.ipynb"):
        nb, old = read_notebook(path), before[path.name]
        assert "someone/seglib-fork/blob/main/notebooks/" + path.name in cell_source(nb["cells"][0])
        assert f"seglib @ git+{fork}" in "".join(cell_source(c) for c in nb["cells"])
        # only badges, the install cell and metadata change: ids, outputs, counts stay
        for new_cell, old_cell in zip(nb["cells"], old["cells"], strict=True):
            for key in ("id", "cell_type", "outputs", "execution_count"):
                assert new_cell.get(key) == old_cell.get(key)
        assert nb["metadata"]["language_info"] == old["metadata"]["language_info"]
    assert "github/someone/seglib-fork/blob/main/notebooks/" in (tmp_path / "README.md").read_text()
    sync_colab.sync(tmp_path)  # and back: the same checks as on the real files pass
    assert sync_colab.sync(tmp_path, write=False) == []


def test_sync_tool_refuses_a_repository_colab_cannot_open():
    with pytest.raises(ValueError, match="github.com"):
        sync_colab.badge_url("01_backbone.ipynb", "https://gitlab.com/someone/seglib")
