"""models.cost.conv_macs: multiply-adds counted by hooks against hand-counted layers."""

import pytest
import torch
from torch import nn

from seglib.models import backbone
from seglib.models.cost import conv_macs


def test_a_single_convolution_matches_the_formula():
    # 3x3, 4 -> 6 channels, stride 2, padding 1 on 9x11: output 6 x 5 x 6 values, 4 * 9 MACs each
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    assert conv_macs(conv, torch.zeros(2, 4, 9, 11)) == {"": 6 * 5 * 6 * 4 * 9}


def test_groups_dilation_and_children_are_counted_per_image():
    net = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4),  # keeps 7x7: 8*49 values, 2*9 each
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 3, 1)),  # 3*49 values, 8 each
    )
    counts = conv_macs(net, torch.zeros(3, 8, 7, 7))
    assert counts == {"0": 8 * 49 * 2 * 9, "2": 3 * 49 * 8}


def test_a_shared_module_run_twice_counts_twice_and_hooks_are_removed():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    net = Twice()
    assert conv_macs(net, torch.zeros(1, 2, 4, 5)) == {"conv": 2 * (2 * 20 * 2)}
    assert not net.conv._forward_hooks


@pytest.mark.parametrize("output_stride", [32, 8])
def test_resnet18_stages_match_a_count_by_hand(output_stride):
    # layer4 of ResNet-18 on 64x64: at OS 32 a 2x2 map; first block 3x3 256->512 (stride 2),
    # 3x3 512->512, 1x1 shortcut 256->512; second block two 3x3 512->512. At OS 8: 8x8.
    net = backbone.resnet18(output_stride=output_stride).eval()
    counts = conv_macs(net, torch.zeros(1, 3, 64, 64))
    cells = {32: 4, 8: 64}[output_stride]
    expected = cells * 512 * (256 * 9 + 512 * 9 + 256 + 2 * 512 * 9)
    assert counts["layer4"] == expected
    assert list(counts) == ["conv1", "layer1", "layer2", "layer3", "layer4"]
