"""tools/check_numbers.py: every number in a notebook's prose is shown by one of its outputs,
a results file it reads, or the allow-list. Run on small hand-made notebooks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def checker():
    yield load_script("tools/check_numbers.py", "check_numbers")
    del sys.modules["check_numbers"]


def notebook(path: Path, *cells: tuple[str, str, str]) -> Path:
    """Write a notebook of (kind, source, printed output) cells; the output only for code."""
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    for kind, source, printed in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": printed}]
            cell["execution_count"] = 1
        nb["cells"].append(cell)
    path.write_text(json.dumps(nb))
    return path


def allow_list(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


EMPTY = "# nothing allowed\n"


def test_a_number_printed_by_a_cell_passes(checker, tmp_path, capsys):
    nb = notebook(tmp_path / "a.ipynb", ("code", "print(miou)", "test mIoU 0.4478\n"),
                  ("markdown", "The model reaches a test mIoU of 0.448 (44.8 %, about 45 %).", ""))
    assert checker.main([str(nb), "--allow", str(allow_list(tmp_path / "x.toml", EMPTY))]) == 0
    assert "every number in the prose of 1 notebook" in capsys.readouterr().out


def test_a_number_no_cell_prints_fails_naming_the_cell_and_sentence(checker, tmp_path, capsys):
    nb = notebook(tmp_path / "b.ipynb", ("code", "print(miou)", "test mIoU 0.4478\n"),
                  ("markdown", "# Title\n\nIt reaches 0.448. Training took 94 minutes.", ""))
    assert checker.main([str(nb), "--allow", str(allow_list(tmp_path / "x.toml", EMPTY))]) == 1
    out = capsys.readouterr().out
    assert 'b.ipynb cell 1: 94 is shown nowhere: "Training took 94 minutes."' in out
    assert "0.448 is" not in out
    assert "1 number(s) in the prose of 1 notebook" in out


def test_an_allow_listed_number_passes_and_an_entry_needs_a_reason(checker, tmp_path):
    nb = notebook(tmp_path / "05_data.ipynb",
                  ("markdown", "CamVid has 701 frames, and 367 train.", ""))
    entry = '[[allow]]\nnotebook = "05_"\nnumber = "701"\nnear = "CamVid"\n'
    good = allow_list(tmp_path / "good.toml", entry + 'why = "367 + 101 + 233"\n'
                      '[[allow]]\nnotebook = "*"\nnumber = "367"\nwhy = "the train split"\n')
    assert checker.main([str(nb), "--allow", str(good)]) == 0
    other = allow_list(tmp_path / "other.toml", entry.replace("05_", "06_") + 'why = "x"\n')
    assert checker.main([str(nb), "--allow", str(other)]) == 1  # another notebook's entry
    with pytest.raises(ValueError, match="lacks"):
        checker.load_allowed(allow_list(tmp_path / "bad.toml", entry))


def test_a_ratio_must_be_printed_as_a_ratio(checker, tmp_path):
    prose = ("markdown", "It does 36.2 GMAC, 22x its backbone's 1.64.", "")
    divided = notebook(tmp_path / "c.ipynb", ("code", "", "36.2 GMAC, backbone 1.64 GMAC\n"), prose)
    assert [f.claim.text for f in checker.check_notebook(divided, [])] == ["22"]
    printed = notebook(tmp_path / "d.ipynb", ("code", "", "36.2 GMAC, 1.64: 22.1x\n"), prose)
    assert checker.check_notebook(printed, []) == []


def test_numbers_of_a_results_file_the_notebook_reads_count(checker, tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "runs.csv").write_text("run,miou\nr2,0.4478\nr0,0.4291\n")
    nb = notebook(tmp_path / "e.ipynb",
                  ("code", 'df = pd.read_csv(stored_result("runs.csv"))', ""),
                  ("markdown", "R = 2 scores 44.8 against 42.9 without attention.", ""))
    assert checker.check_notebook(nb, [], root=tmp_path) == []
    assert len(checker.check_notebook(nb, [], root=tmp_path / "elsewhere")) == 2


def test_structural_numbers_are_skipped_by_rule(checker):
    text = """## 3. Dilation
**2. Exercise.** A $3\\times3$ convolution of ResNet-50 (He et al., 2016), `lr=0.01`,
see section 8.6 and notebooks 02 and 06, $r_{l-1} + d_l (k_l - 1)$, layer4, 0001TP_006690,
[14.9 Semantic segmentation](https://d2l.ai/x/14.9.html), d2l==1.0.3, two passes (R = 2).

**Run time:** about 30 s on a laptop CPU.
"""
    assert checker.claims(text) == []


def test_arithmetic_written_out_shows_its_result(checker):
    text = "Sums: $7 + 4 = 11$, $11 + 32 = 43$ and $45 \\cdot 60 / (23 \\cdot 30) \\approx 3.9$."
    assert [c.text for c in checker.claims(text)] == ["32", "45", "60", "23", "30"]
    assert [c.text for c in checker.claims("Wrong: $7 + 4 = 12$.")] == ["12"]

