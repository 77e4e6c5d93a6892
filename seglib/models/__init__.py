"""
# seglib.models: the networks (notebooks 01-04)

Bottom layer of seglib: depends on torch and torchvision only.

| file | idea | notebook |
|---|---|---|
| `backbone.py` | dilated ResNet, torchvision keys, output stride 8/16/32 | 01 |
| `attention.py` | criss-cross attention (einsum + softmax), the module, the dense reference | 02 |
| `attention_lean.py` | the same, memory-lean (one log-sum-exp per pixel; q/k/v as one conv) | 09 |
| `ccnet.py` | RCCA (R passes of one shared attention), auxiliary head, CCNet | 03 |
| `losses.py` | cross-entropy over the labelled pixels, written once; CCNet's main + 0.4 aux | 03 |
| `layers.py` | the conv-BN-ReLU block the heads share | 03 |
| `decoder.py` | optional stride-4 decoder on layer1 for thin objects (DeepLabv3+) | 07 |
| `rcca_probes.py` | a trained RCCA head's weights, shares, entropies; the knockout | 08 |
| `long_range_net.py` | a local stem + RCCA for the long-range task (R = 0, 1, 2) | 03 |
| `refinenet.py` | RCU, multi-resolution fusion, chained residual pooling, 4-cascade | 04 |
| `factory.py` | `build_model("ccnet" / "refinenet", ...)` | 06 |
"""

from seglib.models.attention import (
    CrissCrossAttention,
    attention_to_map,
    criss_cross_attention,
    criss_cross_mask,
    criss_cross_weights,
    cross_positions,
    dense_masked_attention,
)
from seglib.models.backbone import ResNet, build_backbone
from seglib.models.ccnet import CCNet, RCCAModule
from seglib.models.decoder import SkipDecoder
from seglib.models.factory import MODELS, build_model
from seglib.models.long_range_net import LongRangeNet
from seglib.models.losses import ccnet_loss, labelled_weight_sum, masked_cross_entropy
from seglib.models.rcca_probes import attention_knockout, rcca_attention
from seglib.models.refinenet import (
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNet,
    RefineNetBlock,
    ResidualConvUnit,
)

__all__ = [
    "CCNet",
    "ChainedResidualPooling",
    "CrissCrossAttention",
    "LongRangeNet",
    "MODELS",
    "MultiResolutionFusion",
    "RCCAModule",
    "RefineNet",
    "RefineNetBlock",
    "ResNet",
    "ResidualConvUnit",
    "SkipDecoder",
    "attention_to_map",
    "build_backbone",
    "build_model",
    "attention_knockout",
    "ccnet_loss",
    "criss_cross_attention",
    "criss_cross_mask",
    "criss_cross_weights",
    "cross_positions",
    "dense_masked_attention",
    "labelled_weight_sum",
    "masked_cross_entropy",
    "rcca_attention",
]
