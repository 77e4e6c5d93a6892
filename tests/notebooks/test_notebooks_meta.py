"""What every course notebook must carry (issue 7), checked on the stored files.

nbval checks that the notebooks run; these checks cover what nbval does not: the Colab
badge and guarded install cell, that the stored copy is executed without errors, and
that its outputs stay small.
"""

from pathlib import Path

import pytest

from tests.helpers import cell_source, read_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
MAX_IMAGE_BYTES = 200_000  # base64 characters of one stored figure


def _cells(path: Path) -> list[dict]:
    return read_notebook(path)["cells"]


def test_there_are_nine_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badge_points_at_this_notebook(path):
    first = cell_source(_cells(path)[0])
    assert "colab-badge.svg" in first
    assert f"notebooks/{path.name})" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_guarded_install_cell_installs_seglib_and_d2l_without_its_pins(path):
    code = [cell_source(c) for c in _cells(path) if c["cell_type"] == "code"]
    install = next((s for s in code if 'if "google.colab" in sys.modules:' in s), None)
    assert install is not None, "no install cell guarded by google.colab"
    assert "seglib @ git+" in install
    assert "--no-deps d2l==1.0.3" in install


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_executed_without_errors_and_small(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code" and cell_source(c).strip()]
    assert all(c["execution_count"] is not None for c in code), "store it executed"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    for o in outputs:
        for mime, data in o.get("data", {}).items():
            if mime.startswith("image/") and mime != "image/svg+xml":
                assert len("".join(data)) < MAX_IMAGE_BYTES, f"a {mime} output is too large"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_one_sitting(path):
    """About 40 cells and 2,500 words of prose at most, no markdown cell past ~400 words."""
    cells = _cells(path)
    words = [len(cell_source(c).split()) for c in cells if c["cell_type"] == "markdown"]
    assert len(cells) <= 40, f"{len(cells)} cells"
    assert sum(words) <= 2500, f"{sum(words)} words of prose"
    assert max(words) <= 430, f"a markdown cell of {max(words)} words"
