"""Project-level checks: the package imports, and the install files agree."""

import re
import tomllib
from pathlib import Path

import seglib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """The bare distribution name of a PEP 508 requirement, normalised."""
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


# pip names whose conda-forge package has another name.
CONDA_NAMES = {"torch": "pytorch", "opencv-python-headless": "py-opencv"}


def test_version_is_a_release_string():
    assert re.fullmatch(r"\d+\.\d+\.\d+", seglib.__version__)


def test_every_pyproject_dependency_is_in_environment_yml():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for reqs in project["optional-dependencies"].values():
        wanted += [r for r in reqs if not r.startswith("seglib")]
    env = (ROOT / "environment.yml").read_text()
    listed = {
        _name(line.strip()[2:])
        for line in env.splitlines()
        if line.strip().startswith("- ") and not line.strip().startswith("- -")
    }
    missing = [r for r in wanted if CONDA_NAMES.get(_name(r), _name(r)) not in listed]
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"


def test_environment_yml_uses_conda_forge_only():
    env = (ROOT / "environment.yml").read_text()
    channels = re.search(r"channels:\n((?:\s+- .*\n)+)", env).group(1)
    assert [c.strip()[2:] for c in channels.splitlines()] == ["conda-forge"]


def test_notebooks_are_numbered_from_01():
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names, "no notebooks found"
    assert not any(n.startswith("00") for n in names)
    assert all(re.match(r"\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names
