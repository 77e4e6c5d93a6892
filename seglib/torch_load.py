"""
# Reading files that `torch.save` wrote, with errors a user can act on

`torch.load` on a file that is empty, truncated, not a PyTorch file at all, or pickled
with Python objects fails with whatever its parser hit first: a bare `EOFError`, a
`KeyError: 101`, a zip-reader `RuntimeError` that does not name the file, or an
`UnpicklingError` that suggests `weights_only=False` (which would run arbitrary code
from the file). `load_torch_file` reads with the safe loader (`weights_only=True`) and
turns each of those into one `ValueError` naming the file and what is wrong with it.

Shared by checkpoints (`seglib.engine.checkpoint`), backbone weight files
(`seglib.models.backbone`) and the command lines. Imports nothing from seglib.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnreadableFileError", "load_torch_file"]


class UnreadableFileError(ValueError):
    """A file exists but `torch.load(weights_only=True)` cannot read it (the message
    names the file and says why)."""


def _why(path: Path, err: BaseException) -> str:
    """What is wrong with `path`, in words, from the error `torch.load` raised."""
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, EOFError):
        return "the file ends too early (truncated?)"
    if isinstance(err, RuntimeError) and ("zip archive" in text or "central directory" in text):
        return "it is truncated or corrupt (an incomplete zip archive: a cut-off copy or save?)"
    if isinstance(err, pickle.UnpicklingError):
        return ("it is corrupt, or it holds pickled Python objects that the safe loader "
                "(weights_only=True) does not run; save tensors only, e.g. a state_dict")
    return f"it is not a file torch.save wrote, or it is corrupt ({type(err).__name__}: {text})"


def load_torch_file(path: str | os.PathLike, what: str = "file", map_location: Any = "cpu") -> Any:
    """`torch.load(path, weights_only=True)` whose failures name the file and the problem.

    Args:
        path: the file to read.
        what: what the file is meant to be, for the messages ("checkpoint",
            "backbone weights file", ...).
        map_location: passed to `torch.load`.

    Raises:
        FileNotFoundError: no such file (`no {what} at {path}`).
        IsADirectoryError: `path` is a folder.
        PermissionError / OSError: the file cannot be opened (the message names it).
        UnreadableFileError (a ValueError): empty, truncated, corrupt or not a
            PyTorch file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:  # permissions, I/O errors: the file itself could not be read
        kind = PermissionError if isinstance(err, PermissionError) else OSError
        raise kind(f"cannot read {what} {path}: {err.strerror or err}") from err
    except Exception as err:  # noqa: BLE001 - whatever the parser hit, the file is unreadable
        raise UnreadableFileError(f"cannot read {what} {path}: {_why(path, err)}") from err
