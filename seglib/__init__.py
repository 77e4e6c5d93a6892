"""seglib: attention-based semantic segmentation, built step by step.

The package behind the notebook series: a torchvision-compatible ResNet backbone,
criss-cross attention and CCNet, RefineNet, CamVid and synthetic street scenes,
metrics and a d2l-style trainer. Import the submodules you need, e.g.
``from seglib.ccnet import CCNet``; nothing heavy happens on ``import seglib``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
