"""
# Checkpoints that survive a crash and resume exactly

A training run on Colab can be cut off at any moment. Two properties make its
checkpoints trustworthy:

1. **Atomic writes.** `torch.save` straight onto `last.pt` leaves a truncated file if
   the process dies halfway, destroying the previous good checkpoint. Instead we write
   a temporary file *in the same folder*, `flush` + `os.fsync` it, then `os.replace`
   it over the target: on POSIX and Windows the rename is atomic, so `last.pt` is
   always either the old or the new checkpoint, never a mix.
2. **Everything needed to continue.** Model, optimizer (momentum buffers), LR scheduler,
   AMP grad scaler, the epoch, the best metric so far, the history, the run's config
   and every random number generator state (torch, CUDA, numpy, Python, and the data
   loader's shuffling generator). Restoring them makes "2 epochs" and "1 epoch, then
   resume to 2" give identical numbers on a CPU.

Only plain Python containers and tensors are stored, so `torch.load(weights_only=True)`
(the safe loader) reads them.

Used by `seglib.engine.training_loop.fit` and `seglib.engine.scoring.load_model`; taught in
`notebooks/06_training.ipynb` ("how to resume").
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seglib.torch_load import load_torch_file

__all__ = [
    "FORMAT",
    "atomic_save",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "rng_state_for_rank",
    "check_compatible",
    "is_checkpoint",
]

#: marker stored in every checkpoint written by seglib
FORMAT = "seglib-checkpoint-v1"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj, path)` atomically: temp file in the same folder, fsync, rename.

    If anything fails (disk full, interrupt, a bug in `obj`), the temporary file is
    removed and `path` keeps its previous content. A full disk is an OSError saying so
    (torch's zip writer reports it as an unrelated RuntimeError, with the OSError as
    its context).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the usual mode (POSIX)
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if _disk_full(err):
            full = OSError(f"no space left on device writing {path} (it keeps its previous "
                           "content): free some space, then continue with --resume")
            full.errno = errno.ENOSPC
            raise full from err
        raise
    _fsync_dir(path.parent)
    return path


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # disk full, quota exceeded


def _disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from or while handling, is a full disk."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _FULL:
            return True
        err = err.__cause__ or err.__context__
    return False


def _read_umask() -> int:
    """The process umask, read once at import (before any worker threads exist).

    `os.umask` is the only portable reader and it sets the mask while reading it;
    doing that around every save would race with threads creating files meanwhile.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a seglib checkpoint with the safe (`weights_only=True`) unpickler.

    A missing file is a FileNotFoundError; an empty, truncated or foreign file a
    ValueError naming the file and the problem (`seglib.torch_load.load_torch_file`).
    """
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint", map_location=map_location)
    if not is_checkpoint(ckpt):
        raise ValueError(
            f"{path} is not a seglib checkpoint (expected a dict with format={FORMAT!r}); "
            "a bare state_dict can be loaded with model.load_state_dict(torch.load(...))"
        )
    return ckpt


def is_checkpoint(obj: Any) -> bool:
    """True for what `torch.load` returns on a file seglib's trainer wrote (a dict
    marked with `FORMAT`), False for a bare state_dict or anything else."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def rng_state() -> dict:
    """Every global RNG state as plain containers (tensors, ints, lists)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # noqa: NPY002 - the legacy global RNG
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (CUDA states only if the device count matches)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    legacy = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss)
    np.random.set_state(legacy)  # noqa: NPY002 - the legacy global RNG
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def rng_state_for_rank(stored: dict | list[dict], rank: int) -> dict:
    """The RNG state a rank should restore from a checkpoint's `"rng"` entry.

    DDP runs store a list (one state per rank); single-process runs a single dict. A
    rank missing from the list (a run resumed on more processes) falls back to rank 0's.
    """
    if isinstance(stored, dict):
        return stored
    if not stored:
        raise ValueError("checkpoint holds an empty list of RNG states, expected one per rank")
    return stored[rank] if 0 <= rank < len(stored) else stored[0]


def _shaping_keys(model: Any) -> tuple[str, ...]:
    """The config fields that shape the network: every model's, plus CCNet's number of
    recurrences, output stride and decoder, or RefineNet's width (each model ignores
    the other's fields)."""
    own = {"ccnet": ("recurrence", "output_stride", "decoder"),
           "refinenet": ("features",)}.get(model, ())
    return ("model", "backbone", "num_classes", *own)


def check_compatible(ckpt: dict, model_class: str, config: dict, path: Any = "") -> None:
    """Refuse a checkpoint written for another model: class, model, backbone, number
    of classes, CCNet's recurrence or RefineNet's features. A resumed run would
    otherwise either fail deep inside `load_state_dict` or, for the recurrence (which
    changes no weight shape), silently continue as another model."""
    old = ckpt.get("config", {})
    keys = _shaping_keys(old.get("model", config.get("model")))
    wanted = {"model_class": model_class, **{k: config.get(k) for k in keys}}
    found = {"model_class": ckpt.get("model_class"), **{k: old.get(k) for k in keys}}
    differ = [
        k for k in wanted
        if wanted[k] is not None and found[k] is not None and found[k] != wanted[k]
    ]
    if differ:
        diffs = [f"{k}: checkpoint {found[k]!r} vs this run {wanted[k]!r}" for k in differ]
        cli = ("model", "backbone", "recurrence", "output_stride", "features")
        flags = [f"--{k.replace('_', '-')} {found[k]}" for k in differ if k in cli]
        if "decoder" in differ:
            flags.append("--decoder" if found["decoder"] else "--no-decoder")
        again = f" (on the command line: {' '.join(flags)})" if flags else ""
        raise ValueError(
            f"checkpoint {path} was written for a different model ("
            + "; ".join(diffs)
            + f"). Resume with the run's own options{again}, use another output folder, "
            "or start without resume."
        )
