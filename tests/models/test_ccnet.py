"""seglib.models.ccnet: RCCA reachability, weight sharing, shapes."""

import pytest
import torch

from seglib.models.attention import CrissCrossAttention
from seglib.models.ccnet import CCNet, RCCAModule
from seglib.models.losses import ccnet_loss


def small_net(num_classes: int = 5, **kwargs) -> CCNet:
    return CCNet(num_classes, backbone="resnet18", **kwargs)


def dependency_map(recurrence: int, H: int = 7, W: int = 9, pixel=(3, 4)) -> torch.Tensor:
    """|d out[pixel] / d x| summed over channels, out = CCA applied R times (gamma = 1)."""
    torch.manual_seed(0)
    head = RCCAModule(32, num_classes=3, recurrence=recurrence).double()
    with torch.no_grad():
        head.cca.gamma.fill_(1.0)
    x = torch.randn(1, 8, H, W, dtype=torch.float64, requires_grad=True)
    out = x
    for _ in range(recurrence):
        out = head.cca(out)
    out[0, :, pixel[0], pixel[1]].sum().backward()
    return x.grad.abs().sum(1)[0]  # (H, W)


def test_one_recurrence_reaches_only_the_cross():
    dep = dependency_map(1)
    cross = torch.zeros(7, 9, dtype=torch.bool)
    cross[3, :] = True
    cross[:, 4] = True
    assert (dep[cross] > 0).all()
    assert (dep[~cross] == 0).all()


def test_two_recurrences_reach_every_pixel():
    dep = dependency_map(2)
    assert (dep > 0).all()


def test_one_shared_cca_for_every_recurrence():
    counts = {}
    for r in (1, 2, 3):
        head = RCCAModule(64, num_classes=4, recurrence=r)
        counts[r] = sum(p.numel() for p in head.parameters())
        assert sum(isinstance(m, CrissCrossAttention) for m in head.modules()) == 1
        calls = []
        head.cca.register_forward_hook(lambda *args, calls=calls: calls.append(1))
        head.eval()(torch.randn(1, 64, 5, 6))
        assert len(calls) == r
    assert counts[1] == counts[2] == counts[3]


def test_rcca_structure():
    head = RCCAModule(2048, num_classes=19)
    assert head.conva[0].out_channels == 512  # C / 4
    assert head.cca.in_channels == 512 and head.cca.query_conv.out_channels == 64  # C'/8
    assert head.bottleneck[0][0].in_channels == 2048 + 512  # concat with the input
    assert head.classifier.out_channels == 19


@pytest.mark.parametrize("size", [(97, 131), (33, 45)])
def test_eval_output_at_input_size(size):
    torch.manual_seed(0)
    net = small_net(num_classes=11).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, *size))
    assert isinstance(y, torch.Tensor) and y.shape == (1, 11, *size)


def test_eval_output_camvid_size():
    torch.manual_seed(0)
    net = small_net(num_classes=11).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, 360, 480))
    assert y.shape == (1, 11, 360, 480) and torch.isfinite(y).all()


def test_backbone_at_output_stride_8():
    net = small_net()
    assert net.backbone.output_stride == 8
    feats = net.backbone(torch.randn(1, 3, 64, 80))
    assert feats[2].shape[-2:] == feats[3].shape[-2:] == (8, 10)


def test_train_returns_main_and_aux_and_grads_reach_every_parameter():
    torch.manual_seed(0)
    net = small_net(num_classes=4).train()
    with torch.no_grad():
        net.head.cca.gamma.fill_(0.5)  # gamma = 0 (its init) blocks gradients to q, k, v
    x = torch.randn(2, 3, 41, 57)
    out = net(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == out[1].shape == (2, 4, 41, 57)
    target = torch.randint(0, 4, (2, 41, 57))
    ccnet_loss(out, target).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad


def test_without_aux():
    torch.manual_seed(0)
    net = small_net(aux=False).train()
    assert net.aux_classifier is None
    y = net(torch.randn(2, 3, 33, 45))
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5, 33, 45)


def test_state_dict_round_trip(assert_state_dict_round_trip):
    assert_state_dict_round_trip(small_net, (33, 45))


def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    net = small_net().eval()
    with torch.no_grad():
        net.head.cca.gamma.fill_(1.0)
        ref = net(torch.randn(1, 3, 33, 45))
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(torch.randn(1, 3, 33, 45))
    assert y.shape == (1, 5, 33, 45) and torch.isfinite(y.float()).all()
    assert torch.corrcoef(torch.stack([y.float().flatten(), ref.flatten()]))[0, 1] > 0.9


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        CCNet(0, backbone="resnet18")
    with pytest.raises(ValueError, match="unknown backbone"):
        CCNet(3, backbone="resnet200")
    with pytest.raises(ValueError, match="num_classes"):
        RCCAModule(64, 0)
    net = small_net().eval()
    with pytest.raises(ValueError, match="4-D"):
        net(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        net(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 64, H, W\)"):
        RCCAModule(64, 3)(torch.randn(1, 32, 5, 5))
    with pytest.raises(ValueError, match="target"):
        ccnet_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="pair"):
        ccnet_loss((torch.randn(1, 3, 4, 4),) * 3, torch.zeros(1, 4, 4, dtype=torch.long))


def test_output_stride_16_quarters_the_feature_map_and_keeps_the_output_size():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 45, 61)
    for stride, cells in ((8, (6, 8)), (16, (3, 4))):
        net = CCNet(5, backbone="resnet18", output_stride=stride).eval()
        assert net.backbone(x)[-1].shape[-2:] == cells  # ceil(45/s), ceil(61/s)
        assert net(x).shape == (1, 5, 45, 61)
