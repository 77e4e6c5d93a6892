"""seglib.models.backbone against torchvision's ResNet (same weights -> same features)."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import ResNet18_Weights

from seglib.models import backbone
from seglib.models.backbone import build_backbone

DILATE = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


def tv_features(tv: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's layer1..layer4 outputs, computed with its own modules."""
    x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
    feats = []
    for layer in (tv.layer1, tv.layer2, tv.layer3, tv.layer4):
        x = layer(x)
        feats.append(x)
    return feats


def body_state(tv: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}


def randomise_bn(net: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics so that eval-mode features are not a near-identity."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def dilate_basic_resnet(tv: nn.Module, dilate: list[bool]) -> nn.Module:
    """Reference for BasicBlock nets, which torchvision cannot dilate: edit its modules
    in place following torchvision's bookkeeping (the first block of a dilated stage
    keeps the previous dilation, the later blocks take the new one)."""
    d = 1
    for layer, flag in zip((tv.layer2, tv.layer3, tv.layer4), dilate):
        previous = d
        if not flag:
            continue
        d *= 2
        for i, blk in enumerate(layer):
            rate = previous if i == 0 else d
            for conv in (blk.conv1, blk.conv2):
                conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
            if blk.downsample is not None:
                blk.downsample[0].stride = (1, 1)
    return tv


@pytest.mark.parametrize("os_", [32, 16, 8])
def test_resnet50_matches_torchvision(os_):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=DILATE[os_])
    randomise_bn(tv, 1)
    tv.eval()
    net = backbone.resnet50(output_stride=os_).eval()
    net.load_state_dict(body_state(tv), strict=True)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        ours, ref = net(x), tv_features(tv, x)
    assert net.output_stride == os_
    assert net.stage_channels == (256, 512, 1024, 2048)
    assert ours[-1].shape[-2:] == (-(-64 // os_), -(-80 // os_))  # ceil
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("os_", [32, 16, 8])
def test_resnet18_matches_torchvision(os_):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)  # torchvision cannot dilate BasicBlock
    randomise_bn(tv, 2)
    net = backbone.resnet18(output_stride=os_).eval()
    net.load_state_dict(body_state(tv), strict=True)  # keys fit before any surgery
    tv = dilate_basic_resnet(tv, DILATE[os_]).eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        ours, ref = net(x), tv_features(tv, x)
    assert net.stage_channels == (64, 128, 256, 512)
    assert ours[-1].shape == (1, 512, -(-64 // os_), -(-80 // os_))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_dilation_bookkeeping_is_torchvision_s():
    """OS 8: layer3 starts at dilation 1 then 2; layer4 starts at 2 then 4."""
    net = backbone.resnet50(output_stride=8)
    tv = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    ours = [(n, m.dilation, m.stride) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    ref = [(n, m.dilation, m.stride) for n, m in tv.named_modules() if isinstance(m, nn.Conv2d)]
    assert ours == ref
    assert net.layer3[0].conv2.dilation == (1, 1) and net.layer3[1].conv2.dilation == (2, 2)
    assert net.layer4[0].conv2.dilation == (2, 2) and net.layer4[1].conv2.dilation == (4, 4)


@pytest.mark.parametrize(
    "name, ctor", [("resnet34", torchvision.models.resnet34),
                   ("resnet101", torchvision.models.resnet101),
                   ("resnet152", torchvision.models.resnet152)],
)
def test_big_nets_have_torchvision_keys(name, ctor):
    torch.manual_seed(0)
    net = build_backbone(name, output_stride=16)
    ref = {k: v.shape for k, v in body_state(ctor()).items()}
    assert {k: v.shape for k, v in net.state_dict().items()} == ref
    with torch.no_grad():
        feats = net.eval()(torch.randn(1, 3, 33, 33))
    assert [f.shape[1] for f in feats] == list(net.stage_channels)
    assert feats[-1].shape[-2:] == (3, 3)  # ceil(33 / 16)


def test_weights_from_local_file(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    randomise_bn(tv, 3)
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)  # full torchvision state_dict, fc included
    net = backbone.resnet18(weights=path)
    for k, v in body_state(tv).items():
        assert torch.equal(net.state_dict()[k], v), k
    net2 = backbone.resnet18(weights=str(path), output_stride=8)  # str path, dilated
    assert torch.equal(net2.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        backbone.resnet18(weights=tmp_path / "missing.pth")
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit resnet18"):
        backbone.resnet18(weights=path)
    sd = body_state(torchvision.models.resnet18())
    del sd["layer1.0.conv1.weight"]
    torch.save(sd, path)
    with pytest.raises(ValueError, match="missing 1 keys"):
        backbone.resnet18(weights=path)


@pytest.mark.parametrize(
    "weights", [ResNet18_Weights.IMAGENET1K_V1, "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"]
)
def test_torchvision_weights_enum_and_names(weights, monkeypatch):
    """Enum resolution, with the download replaced by a local state_dict (no network)."""
    torch.manual_seed(0)
    sd = torchvision.models.resnet18().state_dict()
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return sd

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", fake_get_state_dict)
    net = backbone.resnet18(weights=weights)
    assert calls == [ResNet18_Weights.IMAGENET1K_V1]
    assert torch.equal(net.conv1.weight, sd["conv1.weight"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet19")
    with pytest.raises(ValueError, match="output_stride"):
        backbone.resnet18(output_stride=4)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        backbone.resnet18(weights="IMAGENET9K")
    with pytest.raises(ValueError, match="do not belong"):
        backbone.resnet18(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)
    net = backbone.resnet18()
    with pytest.raises(ValueError, match="4-D"):
        net(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        net(torch.randn(1, 1, 32, 32))
