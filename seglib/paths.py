"""
# Where data and run outputs go

One place decides the folders that the notebooks, the command lines and the tests share,
so that a notebook started in `notebooks/` and a command started at the repository root
write to the same `runs/` and read the same `data/CamVid`:

- in a clone of the repository (seglib installed with `pip install -e .`): the
  repository's own `data/` and `runs/` (both git-ignored);
- elsewhere (seglib installed from a wheel, e.g. on Colab): `data/` and `runs/` in the
  current directory.

`$SEGLIB_RUNS` overrides the runs folder (`seglib.course.keep_runs_on_drive` points it
at Google Drive on Colab so that checkpoints outlive the VM).

`stored_result(name)` is a file of `benchmarks/results/` (the results committed with the
course): the clone's own copy, or, with seglib installed without a clone (Colab), the
same file read from GitHub.

`REPOSITORY` is where the course lives on GitHub: the Colab badges and install cells of
the notebooks and the README are derived from it (`tools/sync_colab.py` rewrites them,
`tests/notebooks/test_colab.py` checks them), so a fork changes this one line.
This module imports nothing from seglib.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["INSTALL_SPEC", "REPOSITORY", "REPO_ROOT", "data_root", "runs_root", "stored_result"]

# The course on GitHub (a fork changes this, then runs tools/sync_colab.py)
REPOSITORY = "https://github.com/seglib-course/seglib"
# What the notebooks' Colab cell gives pip: seglib straight from the repository
INSTALL_SPEC = f"seglib @ git+{REPOSITORY}"

# The checkout holding seglib/ when seglib is used from a clone, else None
_PARENT = Path(__file__).resolve().parent.parent
REPO_ROOT: Path | None = _PARENT if (_PARENT / "pyproject.toml").is_file() else None


def _base() -> Path:
    return REPO_ROOT if REPO_ROOT is not None else Path.cwd()


def data_root() -> Path:
    """The folder downloads land in: `<repo>/data`, or `./data` outside a clone."""
    return _base() / "data"


def runs_root() -> Path:
    """The folder runs are written to: `$SEGLIB_RUNS`, `<repo>/runs`, or `./runs`."""
    env = os.environ.get("SEGLIB_RUNS")
    return Path(env).expanduser() if env else _base() / "runs"


def stored_result(name: str) -> Path | str:
    """`benchmarks/results/<name>` of the clone, else its URL on GitHub's main branch
    (what `pandas.read_csv` and `matplotlib.image.imread` take either way)."""
    if REPO_ROOT is not None:
        return REPO_ROOT / "benchmarks" / "results" / name
    raw = REPOSITORY.replace("https://github.com/", "https://raw.githubusercontent.com/")
    return f"{raw}/main/benchmarks/results/{name}"
