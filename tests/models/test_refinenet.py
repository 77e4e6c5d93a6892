"""seglib.models.refinenet: components against hand-written references, the cascade's shapes."""

import pytest
import torch
import torch.nn.functional as F

from seglib.models.refinenet import (
    ChainedResidualPooling,
    MultiResolutionFusion,
    RefineNet,
    RefineNetBlock,
    ResidualConvUnit,
)


def small_net(num_classes: int = 5, **kwargs) -> RefineNet:
    return RefineNet(num_classes, backbone="resnet18", features=16, **kwargs)


def test_rcu_matches_formula():
    torch.manual_seed(0)
    rcu = ResidualConvUnit(4)
    x = torch.randn(2, 4, 7, 9)
    h = F.conv2d(F.relu(x), rcu.conv1.weight, rcu.conv1.bias, padding=1)
    ref = x + F.conv2d(F.relu(h), rcu.conv2.weight, rcu.conv2.bias, padding=1)
    torch.testing.assert_close(rcu(x), ref)


def test_mrf_resizes_to_largest_exact_size():
    """45x60 and 12x15 (360x480 at strides 8 and 32): not a multiple of each other."""
    torch.manual_seed(0)
    mrf = MultiResolutionFusion([8, 12], features=6)
    a, b = torch.randn(1, 8, 45, 60), torch.randn(1, 12, 12, 15)
    out = mrf([a, b])
    assert out.shape == (1, 6, 45, 60)
    ya = F.conv2d(a, mrf.convs[0].weight, mrf.convs[0].bias, padding=1)
    yb = F.conv2d(b, mrf.convs[1].weight, mrf.convs[1].bias, padding=1)
    ref = ya + F.interpolate(yb, size=(45, 60), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, ref)
    # The largest input may come second as well
    mrf2 = MultiResolutionFusion([12, 8], features=6)
    assert mrf2([b, a]).shape == (1, 6, 45, 60)


def test_mrf_single_input_is_identity():
    mrf = MultiResolutionFusion([7], features=3)
    x = torch.randn(1, 7, 5, 6)
    assert mrf([x]) is x and mrf.out_channels == 7
    assert len(list(mrf.parameters())) == 0


@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_crp_matches_formula(blocks):
    torch.manual_seed(0)
    crp = ChainedResidualPooling(3, blocks=blocks)
    x = torch.randn(2, 3, 9, 11)
    y = F.relu(x)
    path, total = y, y.clone()
    for conv in crp.convs:
        pooled = F.max_pool2d(path, kernel_size=5, stride=1, padding=2)
        path = F.conv2d(pooled, conv.weight, padding=1)
        total = total + path
    torch.testing.assert_close(crp(x), total)
    assert len(crp.convs) == blocks


def test_refinenet_block_shapes():
    torch.manual_seed(0)
    blk = RefineNetBlock([8, 16], features=8, crp_blocks=2)
    out = blk(torch.randn(1, 8, 23, 31), torch.randn(1, 16, 12, 16))
    assert out.shape == (1, 8, 23, 31)
    with pytest.raises(ValueError, match="expected 2 input paths"):
        blk(torch.randn(1, 8, 23, 31))


@pytest.mark.parametrize("size", [(360, 480), (97, 131), (33, 45)])
def test_output_at_input_size(size):
    torch.manual_seed(0)
    net = small_net(num_classes=11).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, *size))
    assert y.shape == (1, 11, *size)
    assert torch.isfinite(y).all()


def test_train_mode_returns_tensor_and_grads_reach_every_parameter():
    torch.manual_seed(0)
    net = small_net(num_classes=3).train()
    x = torch.randn(2, 3, 45, 61)
    y = net(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 45, 61)
    target = torch.randint(0, 3, (2, 45, 61))
    F.cross_entropy(y, target).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad


def test_paper_widths():
    """Default: features 256, layer4 adapted to 512 channels (the paper's widths)."""
    net = RefineNet(11, backbone="resnet50", features=256, crp_blocks=2)
    assert net.adapt[3].in_channels == 2048 and net.adapt[3].out_channels == 512
    assert net.refine4.out_channels == 512 and net.refine3.out_channels == 256
    assert net.refine3.mrf.convs[1].in_channels == 512
    assert len(net.refine1.crp.convs) == 2


def test_state_dict_round_trip(assert_state_dict_round_trip):
    assert_state_dict_round_trip(small_net, (40, 52))


def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    net = small_net().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(torch.randn(1, 3, 33, 45))
    assert y.shape == (1, 5, 33, 45) and torch.isfinite(y.float()).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        RefineNet(0, backbone="resnet18")
    with pytest.raises(ValueError, match="unknown backbone"):
        RefineNet(3, backbone="vgg16")
    net = small_net()
    with pytest.raises(ValueError, match="4-D"):
        net(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        net(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="at least one"):
        MultiResolutionFusion([], 4)
    with pytest.raises(ValueError, match="blocks"):
        ChainedResidualPooling(4, blocks=0)
