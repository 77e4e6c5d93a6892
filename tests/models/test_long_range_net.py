"""LongRangeNet: its stated receptive field, and what R = 0, 1, 2 passes can reach."""

from __future__ import annotations

import pytest
import torch

from seglib.data import LongRangeTask
from seglib.models import LongRangeNet, RCCAModule, rcca_attention
from seglib.models.long_range_net import RECEPTIVE_FIELD


def net_with_attention(recurrence: int, seed: int = 0) -> LongRangeNet:
    """A random float64 network in eval mode whose attention is switched on (gamma = 1)."""
    torch.manual_seed(seed)
    net = LongRangeNet(recurrence=recurrence).double().eval()
    with torch.no_grad():
        net.head.cca.gamma.fill_(1.0)  # gamma starts at 0: the attention would add nothing
    return net


@pytest.mark.parametrize("recurrence", [0, 1, 2])
def test_logits_at_the_input_size(recurrence):
    net = LongRangeNet(num_classes=4, recurrence=recurrence).eval()
    assert isinstance(net.head, RCCAModule) and net.head.recurrence == recurrence
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)
    assert net(torch.randn(1, 3, 38, 50)).shape == (1, 4, 38, 50)


def test_receptive_field_of_the_local_network_is_as_stated():
    net = net_with_attention(0)
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    widest = 0
    for r, c in [(32, 32), (33, 33), (31, 30), (20, 41)]:
        x.grad = None
        net(x)[:, :, r, c].sum().backward()
        rows, cols = x.grad.abs().sum((0, 1)).nonzero().unbind(1)  # input pixels it reads
        reach = int(max((rows - r).abs().max(), (cols - c).abs().max()))
        assert reach <= RECEPTIVE_FIELD  # zero gradient farther away
        widest = max(widest, reach)
    assert widest == RECEPTIVE_FIELD  # and the bound is tight


def cue_gradient(net: LongRangeNet, image: torch.Tensor, mask: torch.Tensor,
                 where: torch.Tensor) -> float:
    """|d (random projection of the logits at `where`) / d (cue pixels)|, summed."""
    x = image[None].double().requires_grad_(True)  # (1, 3, 64, 64)
    out = net(x)[0]  # (K, 64, 64)
    w = torch.rand(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (out * w)[:, where].sum().backward()
    return float(x.grad[0][:, mask == 1].abs().sum())


@pytest.mark.parametrize("i", range(4))
def test_one_pass_reaches_aligned_objects_two_passes_the_far_ones(i):
    ds = LongRangeTask(4, seed=11, split="test")
    image, mask = ds[i]
    regions = torch.from_numpy(ds.regions(i))
    aligned, far = regions == 1, regions == 2
    nets = {r: net_with_attention(r) for r in (0, 1, 2)}
    assert cue_gradient(nets[0], image, mask, aligned) == 0.0
    assert cue_gradient(nets[0], image, mask, far) == 0.0
    assert cue_gradient(nets[1], image, mask, aligned) > 0.0
    assert cue_gradient(nets[1], image, mask, far) == 0.0
    assert cue_gradient(nets[2], image, mask, far) > 0.0


def test_rcca_attention_records_the_passes_of_the_small_network():
    image, _ = LongRangeTask(1)[0]
    att = rcca_attention(net_with_attention(2).float(), image)
    assert att["size"] == (32, 32) and len(att["weights"]) == 2
    assert att["weights"][0].shape == (32, 32, 63)
    assert torch.allclose(att["weights"][1].sum(-1), torch.ones(32, 32))
