r"""
# Self-checks for the notebooks' coding exercises

A coding exercise in a notebook asks the learner to write a function that seglib
already has, then compares the two:

```python
def my_criss_cross_mask(H, W):
    raise NotImplementedError  # your code here

check(my_criss_cross_mask, attention.criss_cross_mask, random_size(), random_size())
```

`check` calls both functions on the same inputs, several random cases when some
inputs are factories (callables that make a fresh input), and prints one line:
`✓ my_criss_cross_mask matches seglib on 5 random inputs`, or the largest difference
and the shapes of the first inputs where the two disagree. A mismatch is never an
error (the learner is experimenting); it returns `False`. A function whose body still
raises `NotImplementedError` prints "not implemented yet". A function that returns
`None` or `NotImplemented` (a stub without a `return`) raises a `TypeError` that
says so, since there is nothing to compare.

A module (the capstone: a whole CCNet head) has weights, and two correct modules only
agree when they hold the same ones: `check_module` copies seglib's weights into the
learner's module (by name when the names agree, else in the order the two modules
register them) and then compares the outputs, in eval mode and float64.

An augmentation has no single right output (it is random), so `check_augmentation`
checks what every correct one must do instead: on a painted checkerboard whose mask
says which squares are bright, the image and the mask must still agree after the
transform (they moved together), the mask must hold only the classes it had and the
ignore value 255 (nearest-neighbour, never interpolated), and pixels the transform
uncovered must be 255 in the mask, not a class.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["check", "check_augmentation", "check_module", "random_size"]

IGNORE = 255  # the mask value that the loss and the metrics skip


def random_size(low: int = 1, high: int = 9) -> Callable[[], int]:
    """A factory for `check`: each call gives a random int in `[low, high]` (e.g. a side H)."""
    return lambda: int(torch.randint(low, high + 1, ()))


def _is_factory(value: Any) -> bool:
    """A callable input that makes an argument (a module or a tensor is an argument)."""
    return callable(value) and not isinstance(value, (Tensor, nn.Module))


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _describe(args: Sequence[Any], names: Sequence[str]) -> str:
    """`H=3, x (2, 4, 5, 7)`: ints by value, tensors by shape."""
    parts = []
    for i, a in enumerate(args):
        label = names[i] if i < len(names) else f"arg{i}"
        if isinstance(a, Tensor):
            parts.append(f"{label} {tuple(a.shape)}")
        elif isinstance(a, (bool, int, float, str)) or a is None:
            parts.append(f"{label}={a!r}")
        elif isinstance(a, (list, tuple)) and all(isinstance(t, Tensor) for t in a):
            parts.append(f"{label} [{', '.join(str(tuple(t.shape)) for t in a)}]")
        else:
            parts.append(f"{label} {type(a).__name__}")
    return ", ".join(parts)


def _param_names(fn: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return []


def _prepare(value: Any, dtype: torch.dtype | None) -> Any:
    """A private copy of a tensor input (floating ones in `dtype`), so that neither
    function can change what the other one sees."""
    if isinstance(value, Tensor):
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_prepare(v, dtype) for v in value)
    return value


def _leaves(out: Any) -> list[Any]:
    """Tensors and numbers of a (possibly nested tuple/list) result, in order."""
    if isinstance(out, (list, tuple)):
        return [leaf for item in out for leaf in _leaves(item)]
    return [out]


def _compare(mine: Any, ref: Any, atol: float, rtol: float) -> str | None:
    """None when `mine` matches `ref`, else why not (one short phrase)."""
    a, b = _leaves(mine), _leaves(ref)
    if len(a) != len(b):
        return f"returns {len(a)} value(s), seglib returns {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        where = f" (output {i})" if len(b) > 1 else ""
        if isinstance(y, Tensor) or isinstance(x, Tensor):
            try:
                x, y = torch.as_tensor(x), torch.as_tensor(y)
            except (TypeError, ValueError, RuntimeError):
                return f"returns a {type(x).__name__}{where}, seglib a tensor"
            x, y = x.detach().cpu(), y.detach().cpu()
            if x.shape != y.shape:
                return f"returns shape {tuple(x.shape)}{where}, seglib {tuple(y.shape)}"
            if y.dtype == torch.bool or x.dtype == torch.bool:
                wrong = int((x.bool() != y.bool()).sum())
                if wrong:
                    return f"{wrong} of {y.numel()} entries differ{where}"
                continue
            x, y = x.double(), y.double()
            nan = int((x.isnan() != y.isnan()).sum())
            if nan:
                return f"NaN in one result but not the other at {nan} of {y.numel()} entries{where}"
            if not torch.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True):
                diff = (x - y).nan_to_num().abs().max().item()
                return f"max |difference| {diff:.3g}{where} (atol {atol:g}, rtol {rtol:g})"
        elif isinstance(y, (int, float)) and isinstance(x, (int, float)):
            if not math.isclose(x, y, rel_tol=rtol, abs_tol=atol):
                return f"returns {x!r}{where}, seglib {y!r}"
        elif x != y:
            return f"returns {x!r}{where}, seglib {y!r}"
    return None


def check(
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    *inputs: Any,
    cases: int = 5,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    dtype: torch.dtype | None = torch.float64,
    seed: int = 0,
    make_args: Callable[[], Sequence[Any]] | None = None,
) -> bool:
    """Compare a learner's function with seglib's on the same inputs; print one verdict line.

    Args:
        learner_fn: the function written in the exercise.
        reference_fn: seglib's function (or a small wrapper around it).
        *inputs: the positional arguments. A callable is a factory: it is called
            (with no argument) once per case to make that argument, e.g.
            `lambda: torch.randn(2, 4, 5, 7)` or `random_size(1, 9)`; anything else
            (a tensor, an int, an `nn.Module`) is passed as it is; tensors as a fresh
            copy to each function.
        cases: how many random cases to try when some input is a factory (else 1).
        atol, rtol: tolerances of `torch.allclose`, applied in float64.
        dtype: floating-point tensor inputs are converted to it (float64 by default, so
            that a correct function matches to rounding error); None keeps their dtype.
        seed: the cases are drawn with `torch.manual_seed(seed + case)`, inside
            `torch.random.fork_rng`, so the caller's random state is left unchanged.
        make_args: instead of `*inputs`, one factory that returns all the arguments of
            a case at once, for inputs whose shapes must agree (e.g. `Q, K, V` of one
            random size).

    Returns:
        True when every case matches, else False. Never raises on a mismatch.

    Raises:
        TypeError: `learner_fn` returned None or NotImplemented (nothing to compare: a
            stub or a missing `return`).
    """
    name = _name(learner_fn)
    if make_args is not None and inputs:
        raise TypeError("pass either the inputs or make_args, not both")
    random = make_args is not None or any(_is_factory(i) for i in inputs)
    n = max(1, cases) if random else 1
    names = _param_names(reference_fn) or _param_names(learner_fn)
    for case in range(n):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + case)
            args = (list(make_args()) if make_args is not None
                    else [i() if _is_factory(i) else i for i in inputs])
        try:
            mine = learner_fn(*_prepare(args, dtype))
        except NotImplementedError:
            print(f"… {name} is not implemented yet: write its body, then run this cell again")
            return False
        if mine is None or mine is NotImplemented:
            raise TypeError(
                f"{name} returned {mine!r}, so there is nothing to compare with seglib: "
                "it is still a stub, or its last line lacks a `return`"
            )
        ref = reference_fn(*_prepare(args, dtype))
        why = _compare(mine, ref, atol, rtol)
        if why is not None:
            print(f"✗ {name} differs from seglib on case {case + 1} of {n}: {why}; "
                  f"inputs: {_describe(args, names)}")
            return False
    what = (f"{n} random input" + "s" * (n > 1)) if random else "the given input"
    print(f"✓ {name} matches seglib on {what}")
    return True


def _copy_weights(source: nn.Module, target: nn.Module) -> str | None:
    """Copy `source`'s parameters and buffers into `target`; None, or why it cannot.

    By name when both state dicts have the same keys, else in registration order (the
    learner's names may differ from seglib's), tensor by tensor with equal shapes."""
    src, dst = source.state_dict(), target.state_dict()
    if list(src) == list(dst):
        pairs = [(k, src[k], k, dst[k]) for k in src]
    else:
        if len(src) != len(dst):
            return (f"holds {len(dst)} parameter and buffer tensors, seglib's module "
                    f"{len(src)}")
        pairs = [(a, src[a], b, dst[b]) for a, b in zip(src, dst)]
    for ref_name, ref, name, mine in pairs:
        if ref.shape != mine.shape:
            return (f"its `{name}` has shape {tuple(mine.shape)} where seglib's `{ref_name}` "
                    f"has {tuple(ref.shape)} (create the layers in the order of the forward "
                    "pass, or with seglib's names)")
    with torch.no_grad():
        for _, ref, _, mine in pairs:
            mine.copy_(ref)
    return None


def check_module(
    learner: nn.Module,
    reference: nn.Module,
    *inputs: Any,
    cases: int = 3,
    atol: float = 1e-8,
    rtol: float = 1e-6,
    seed: int = 0,
) -> bool:
    """Compare a learner's `nn.Module` with seglib's: the same weights, then the same outputs.

    Both modules are copied (the caller's stay untouched), moved to the CPU and float64
    and put in eval mode (dropout off, batch norm with its running statistics); seglib's weights
    are copied into the learner's copy (`_copy_weights`), and both run on the same
    inputs as in `check` (a callable input is a factory called once per case).

    Returns:
        True when every case matches, else False (one verdict line is printed; a
        mismatch or a module that cannot hold seglib's weights is never an error).
    """
    name = type(learner).__name__
    # copies on the CPU in float64: the caller's modules keep their device, dtype and mode
    mine_module = copy.deepcopy(learner).cpu().double().eval()
    ref_module = copy.deepcopy(reference).cpu().double().eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = [i() if _is_factory(i) else i for i in inputs]
    try:  # a stub (no layers yet, a forward that raises) is not a mismatch
        with torch.no_grad():
            mine_module(*_prepare(first, torch.float64))
    except NotImplementedError:
        print(f"… {name} is not implemented yet: write its body, then run this cell again")
        return False
    why = _copy_weights(ref_module, mine_module)
    if why is not None:
        print(f"✗ {name} cannot take seglib's weights: it {why}")
        return False
    return check(mine_module, ref_module, *inputs, cases=cases, atol=atol, rtol=rtol,
                 dtype=torch.float64, seed=seed)


def _checkerboard(size: tuple[int, int], square: int) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 (H, W, 3) image of bright (200) and dark (40) squares, and its mask: class 1
    on the bright squares, class 2 on the dark ones. Neither colour is black, the
    colour a transform fills uncovered pixels with."""
    rows, cols = np.indices(size) // square
    bright = (rows + cols) % 2 == 0
    image = np.where(bright, 200, 40).astype(np.uint8)[..., None].repeat(3, axis=2)
    mask = np.where(bright, 1, 2).astype(np.uint8)
    return image, mask


def check_augmentation(
    augment: Callable[[np.ndarray, np.ndarray], tuple[Tensor, Tensor]],
    *,
    draws: int = 5,
    size: tuple[int, int] = (120, 160),
    square: int = 20,
    agree: float = 0.9,
    seed: int = 0,
) -> bool:
    """Check a learner's augmentation on a painted checkerboard; print one verdict line.

    Args:
        augment: `augment(image, mask) -> (x, y)`, with `image` uint8 (H, W, 3) and `mask`
            uint8 (H, W) as on disk, `x` a float image tensor (3, h, w) (normalised or not)
            and `y` an integer mask (h, w); e.g. `apply_transform` of an Albumentations
            pipeline.
        draws: how many random draws to try.
        size, square: the checkerboard's size and the side of its squares, in pixels.
        agree: the share of labelled pixels whose brightness must match their class
            (pixels on a square's edge are blended by the image's interpolation, so not 1).
        seed: torch's generator is seeded with it inside `torch.random.fork_rng` (seglib's
            pipelines draw from it through `apply_transform`; others use their own).

    Returns:
        True when every draw keeps image and mask together, with only the classes 1, 2
        and 255 in the mask, and at least one draw uncovers pixels (then marked 255);
        False otherwise, or when `augment` raises `NotImplementedError`.
    """
    name = _name(augment)
    image, mask = _checkerboard(size, square)
    uncovered, agreements = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for draw in range(1, draws + 1):
            try:
                x, y = augment(image.copy(), mask.copy())
            except NotImplementedError:
                print(f"… {name} is not implemented yet: write its body, then run this "
                      "cell again")
                return False
            x, y = torch.as_tensor(x).float(), torch.as_tensor(y).long()
            if x.ndim != 3 or x.shape[0] != 3 or y.shape != x.shape[1:]:
                print(f"✗ {name}: expected an image (3, h, w) and a mask (h, w), got "
                      f"{tuple(x.shape)} and {tuple(y.shape)}")
                return False
            values = set(y.unique().tolist())
            if not values <= {1, 2, IGNORE}:
                wrong = sorted(values - {1, 2, IGNORE})
                why = ("uncovered pixels became class 0: fill the mask with 255"
                       if wrong == [0] else "the mask was interpolated or filled with a "
                       "class: use nearest-neighbour and fill 255")
                shown = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
                print(f"✗ {name}, draw {draw}: mask values {shown} appear, which the mask "
                      f"never had; {why}")
                return False
            labelled = y != IGNORE
            if not labelled.any():
                print(f"✗ {name}, draw {draw}: every pixel of the mask is 255")
                return False
            brightness = x.mean(0)  # (h, w); normalisation keeps the order of values
            lo, hi = brightness[labelled].min(), brightness[labelled].max()
            bright = brightness > (lo + hi) / 2
            share = ((bright == (y == 1)) & labelled).sum() / labelled.sum()
            agreements.append(float(share))
            if share < agree:
                print(f"✗ {name}, draw {draw}: image and mask disagree on "
                      f"{1 - share:.0%} of the labelled pixels: they did not move together")
                return False
            uncovered.append(float((~labelled).float().mean()))
    if max(uncovered) == 0:
        print(f"✗ {name}: no draw uncovered a pixel (255 in the mask): is the transform "
              "applied (p=1), and does it move the image?")
        return False
    print(f"✓ {name} keeps image and mask together on {draws} random draws "
          f"({min(agreements):.0%} or more of the labelled pixels agree); uncovered pixels "
          f"are 255 ({np.mean(uncovered):.1%} of the frame on average)")
    return True
