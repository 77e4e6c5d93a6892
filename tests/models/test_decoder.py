"""seglib.models.decoder and CCNet(decoder=True): sizes, the classifier's input stride, a functional
reference."""

import pytest
import torch
import torch.nn.functional as F

from seglib.models import CCNet, SkipDecoder


def conv_bn_relu_reference(x, block):
    """One Conv-BN-ReLU block in eval mode with torch.nn.functional and its weights."""
    conv, bn = block[0], block[1]
    y = F.conv2d(x, conv.weight, padding=conv.padding)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    return y.clamp_min(0)


def randomise_batch_norm(module):
    """Non-trivial running statistics, so that a skipped or misplaced BN shows."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n, dtype = m.num_features, m.running_mean.dtype
            m.running_mean.copy_(torch.randn(n, generator=g, dtype=dtype))
            m.running_var.copy_(torch.rand(n, generator=g, dtype=dtype) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g, dtype=dtype))
            m.bias.data.copy_(torch.randn(n, generator=g, dtype=dtype))


@torch.no_grad()
def test_decoder_equals_a_functional_reference():
    torch.manual_seed(0)
    dec = SkipDecoder(16, 8, projected=4).double().eval()
    randomise_batch_norm(dec)
    head = torch.randn(2, 16, 3, 4, dtype=torch.float64)  # stride 8 of 21x27 (ceil)
    low = torch.randn(2, 8, 6, 7, dtype=torch.float64)  # stride 4 of 21x27 (ceil): not 2x
    up = F.interpolate(head, size=(6, 7), mode="bilinear", align_corners=False)
    ref = torch.cat([up, conv_bn_relu_reference(low, dec.project)], dim=1)  # head first
    for block in dec.fuse:
        ref = conv_bn_relu_reference(ref, block)
    out = dec(head, low)
    assert out.shape == (2, 16, 6, 7)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def classifier_input_size(net, x):
    """Spatial size of what the head's classifier reads, through a forward hook."""
    seen = []
    hook = net.head.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    net(x)
    hook.remove()
    return tuple(seen[0][-2:])


@pytest.mark.parametrize("stride", [8, 16])
def test_the_classifier_reads_stride_4_features_with_a_decoder(stride):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 45, 61)
    plain = CCNet(5, backbone="resnet18", output_stride=stride).eval()
    fine = CCNet(5, backbone="resnet18", output_stride=stride, decoder=True).eval()
    coarse = (-(-45 // stride), -(-61 // stride))
    assert classifier_input_size(plain, x) == coarse
    assert classifier_input_size(fine, x) == (12, 16)  # ceil(45/4), ceil(61/4)
    assert fine(x).shape == plain(x).shape == (1, 5, 45, 61)


def test_decoder_ccnet_trains_every_parameter_and_keeps_the_backbone_keys():
    torch.manual_seed(0)
    plain = CCNet(4, backbone="resnet18")
    net = CCNet(4, backbone="resnet18", decoder=True).train()
    extra = set(net.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("decoder.") for k in extra)
    assert set(plain.state_dict()) <= set(net.state_dict())
    with torch.no_grad():
        net.head.cca.gamma.fill_(0.5)
    main, aux = net(torch.randn(2, 3, 41, 57))
    (main.logsumexp(1).mean() + aux.logsumexp(1).mean()).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not no_grad


def test_bad_decoder_inputs():
    with pytest.raises(ValueError, match="channels must be >= 1"):
        SkipDecoder(16, 0)
    dec = SkipDecoder(16, 8)
    with pytest.raises(ValueError, match=r"head \(B, 16"):
        dec(torch.randn(1, 15, 3, 3), torch.randn(1, 8, 6, 6))
    with pytest.raises(ValueError, match=r"low \(1, 8"):
        dec(torch.randn(1, 16, 3, 3), torch.randn(2, 8, 6, 6))
