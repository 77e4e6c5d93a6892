"""
# Colab links from one constant: badges, install cells and metadata of the notebooks

`seglib.paths.REPOSITORY` says where the course lives on GitHub. This script derives
from it what Colab needs, in every `notebooks/*.ipynb` and in `README.md`:

- every Colab badge URL,
  `https://colab.research.google.com/github/<owner>/<repo>/blob/main/notebooks/<file>`;
- the install cell guarded by `if "google.colab" in sys.modules:`, which installs
  seglib from the repository and d2l without its pins (see README, "conda"), then says
  whether the runtime must be restarted (when pip replaced a package already imported);
- the notebook metadata that makes Colab open the notebook on a GPU (T4) with the
  `python3` kernel.

    python tools/sync_colab.py           # rewrite what differs, list the files changed
    python tools/sync_colab.py --check   # only list what differs; exit 1 if anything does

A fork changes `REPOSITORY` and runs it once. It is idempotent and changes nothing else:
cell ids, outputs and execution counts stay, and notebooks are written as Jupyter
writes them (indent 1, sorted keys, UTF-8, final newline). `tests/notebooks/test_colab.py`
checks the result (and `tests/tools/test_sync_colab.py` this tool). It lives outside the
package: it edits the repository, not an install.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

from seglib.paths import REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"  # the branch Colab opens
INSTALL_GUARD = 'if "google.colab" in sys.modules:'
D2L = "d2l==1.0.3"
# What Colab writes when a notebook is saved with a T4 GPU runtime, and the kernel
METADATA = {
    "accelerator": "GPU",
    "colab": {"provenance": [], "gpuType": "T4"},
    "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                   "language": "python"},
}
# A Colab URL of a notebook in any repository and branch; group 1 is the file name
COLAB_URL = re.compile(
    r"https://colab\.research\.google\.com/github/[^/\s()]+/[^/\s()]+/blob/[^/\s()]+"
    r"/notebooks/([^/\s()\"']+\.ipynb)"
)
PIP_SPEC = re.compile(r"seglib @ git\+[^\"'\s]+")


def owner_repo(repository: str = REPOSITORY) -> str:
    """`owner/repo` of a GitHub URL (Colab's /github/ route opens only GitHub)."""
    url = urlparse(repository)
    parts = url.path.strip("/").removesuffix(".git").split("/")
    if url.netloc != "github.com" or len(parts) != 2 or not all(parts):
        raise ValueError(f"REPOSITORY must be https://github.com/<owner>/<repo>, got {repository}")
    return "/".join(parts)


def badge_url(name: str, repository: str = REPOSITORY) -> str:
    """The Colab URL that opens `notebooks/<name>` of `repository`."""
    return (f"https://colab.research.google.com/github/{owner_repo(repository)}"
            f"/blob/{BRANCH}/notebooks/{name}")


# After pip, on Colab: does the runtime need a restart? (see install_cell)
RESTART_CHECK = """\
    # Colab imported some packages at start-up: if pip replaced one, the kernel still
    # runs the old version, and only a restart loads the new one
    from importlib.metadata import version

    imported = {"numpy": "numpy", "PIL": "pillow", "torch": "torch", "pandas": "pandas",
                "matplotlib": "matplotlib"}  # module: distribution
    stale = [d for m, d in imported.items() if m in sys.modules
             and sys.modules[m].__version__.split("+")[0] != version(d).split("+")[0]]
    print(f"Restart now (Runtime > Restart session), then run from the top: pip replaced "
          f"{', '.join(stale)}" if stale else "Installed: no restart needed")"""


def install_cell(repository: str = REPOSITORY) -> str:
    """The canonical Colab install cell (does nothing outside Colab).

    After pip it says whether the runtime must be restarted. Colab's kernel imports some
    packages at start-up; when pip replaces one of them (seglib's pins can move numpy,
    pillow, torch, pandas or matplotlib), the kernel keeps the old version in memory
    until a restart, and mixing it with the new files fails in confusing ways. The cell
    compares each imported version with the installed one (ignoring a local label such
    as `+cu121`) with the standard library only: importing anything heavier would load
    the very modules it checks.
    """
    return (
        "import sys\n\n"
        f"{INSTALL_GUARD}  # on Colab: install seglib, and d2l without its pins\n"
        f'    %pip install -q "seglib @ git+{repository}"\n'
        f"    %pip install -q --no-deps {D2L}\n"
        f"{RESTART_CHECK}"
    )


def sync_text(text: str, repository: str = REPOSITORY) -> str:
    """`text` with every Colab notebook URL and `seglib @ git+...` pointing at `repository`."""
    text = COLAB_URL.sub(lambda m: badge_url(m.group(1), repository), text)
    return PIP_SPEC.sub(f"seglib @ git+{repository}", text)


def _set_source(cell: dict, text: str) -> None:
    if "".join(cell["source"]) != text:  # untouched cells keep their exact form
        cell["source"] = text.splitlines(keepends=True)


def sync_notebook(nb: dict, repository: str = REPOSITORY) -> dict:
    """A copy of notebook `nb` with its badges, install cell and Colab metadata synced.

    Raises ValueError when the notebook has no guarded install cell (add one by hand).
    """
    nb = copy.deepcopy(nb)
    install = next((c for c in nb["cells"] if c["cell_type"] == "code"
                    and INSTALL_GUARD in "".join(c["source"])
                    and "pip install" in "".join(c["source"])), None)
    if install is None:
        raise ValueError(f"no Colab install cell (`{INSTALL_GUARD}` with `%pip install`)")
    _set_source(install, install_cell(repository))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            _set_source(cell, sync_text("".join(cell["source"]), repository))
    meta = nb.setdefault("metadata", {})
    meta["accelerator"] = METADATA["accelerator"]
    meta["colab"] = {**meta.get("colab", {}), **METADATA["colab"]}
    meta["kernelspec"] = dict(METADATA["kernelspec"])
    return nb


def dump_notebook(nb: dict) -> str:
    """The notebook as Jupyter writes it, so that a later save in JupyterLab changes nothing."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def sync(root: Path = ROOT, repository: str = REPOSITORY, write: bool = True) -> list[str]:
    """Sync `root`'s notebooks and README with `repository`; the files that differed.

    With `write=False` nothing is written (the check). Raises ValueError naming the
    notebook when one has no install cell.
    """
    changed = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        old = path.read_text(encoding="utf-8")
        try:
            new = dump_notebook(sync_notebook(json.loads(old), repository))
        except ValueError as err:
            raise ValueError(f"{path.relative_to(root)}: {err}") from None
        if new != old:
            changed.append(str(path.relative_to(root)))
            if write:
                path.write_text(new, encoding="utf-8")
    readme = root / "README.md"
    old = readme.read_text(encoding="utf-8")
    if (new := sync_text(old, repository)) != old:
        changed.append("README.md")
        if write:
            readme.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: sync (default) or `--check`; exit status 1 when a check finds work."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0].lstrip("# "))
    parser.add_argument("--check", action="store_true", help="only list what differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository folder")
    args = parser.parse_args(argv)
    changed = sync(args.root, write=not args.check)
    verb = "differs from" if args.check else "synced with"
    for name in changed:
        print(f"{name} {verb} {REPOSITORY}")
    if not changed:
        print(f"notebooks and README match {REPOSITORY}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
