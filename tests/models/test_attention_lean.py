"""The memory-lean path: gradcheck, what it saves, half precision, compile, ONNX export;
and the stacked q/k/v projection of the lean block, against three plain nn.Conv2d."""

import importlib.util
import shutil

import pytest
import torch
from torch import nn

from seglib.models.attention import (
    CrissCrossAttention,
    criss_cross_attention,
    criss_cross_mask,
    dense_masked_attention,
)
from seglib.models.attention_lean import LeanCrissCrossAttention, QKVProjection, project_qkv


def qkv(B, H, W, c=2, C=3, dtype=torch.float64, scale=1.0, requires_grad=True):
    q = (scale * torch.randn(B, c, H, W, dtype=dtype)).requires_grad_(requires_grad)
    k = (scale * torch.randn(B, c, H, W, dtype=dtype)).requires_grad_(requires_grad)
    v = torch.randn(B, C, H, W, dtype=dtype).requires_grad_(requires_grad)
    return q, k, v


@pytest.fixture
def one_thread():
    """Tiny matmuls on a busy 2-core machine: waking an OpenMP worker thread for each
    of gradcheck's thousands of calls costs ~10 ms a call (seen at 13x4); one thread
    makes it ~1000x faster. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("H,W", [(5, 7), (1, 9), (13, 4), (9, 1)])
def test_gradcheck_float64(H, W, one_thread):
    torch.manual_seed(0)
    q, k, v = qkv(1, H, W)
    f = lambda q, k, v: criss_cross_attention(q, k, v, lean=True)  # noqa: E731
    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("H,W", [(5, 7), (1, 9), (13, 4)])
def test_gradcheck_packed_with_gamma_and_residual(H, W, one_thread):
    """The module's Function: q, k, v as channel slices of one channels-last tensor,
    gamma and the residual folded in; every input's gradient checked numerically."""
    from seglib.models.attention_lean import lean_packed_criss_cross_attention

    torch.manual_seed(0)
    qkv = torch.randn(1, 2 + 2 + 3, H, W, dtype=torch.float64)
    qkv = qkv.contiguous(memory_format=torch.channels_last).requires_grad_()
    gamma = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 3, H, W, dtype=torch.float64, requires_grad=True)
    f = lambda t, g, r: lean_packed_criss_cross_attention(t, 2, g, residual=r)  # noqa: E731
    assert torch.autograd.gradcheck(f, (qkv, gamma, x), eps=1e-6, atol=1e-8)


def _saved(fn, *args):
    """Unique storages saved for backward while running fn(*args)."""
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return out, list(saved.values())


def test_lean_saves_only_qkv_and_lse():
    torch.manual_seed(1)
    B, H, W = 2, 6, 5
    q, k, v = qkv(B, H, W, dtype=torch.float32)
    out, saved = _saved(lambda *a: criss_cross_attention(*a, lean=True), q, k, v)
    assert out.grad_fn.name().startswith("LeanCrissCrossAttention")
    # q, k, v themselves (no copies) and one float32 log-sum-exp per pixel, nothing else
    inputs = {t.untyped_storage().data_ptr() for t in (q, k, v)}
    others = [t for t in saved if t.untyped_storage().data_ptr() not in inputs]
    assert len(saved) == 4 and len(others) == 1
    assert others[0].shape == (B, H, W) and others[0].dtype == torch.float32


def test_lean_module_saves_less_than_plain():
    torch.manual_seed(1)
    net = CrissCrossAttention(16, reduction=4)
    for fmt in (torch.contiguous_format, torch.channels_last):
        X = torch.randn(2, 16, 9, 8).contiguous(memory_format=fmt).requires_grad_()
        nbytes = {}
        for lean in (True, False):
            net.lean = lean
            _, saved = _saved(net, X)
            skip = {p.untyped_storage().data_ptr() for p in net.parameters()}
            skip.add(X.untyped_storage().data_ptr())
            nbytes[lean] = sum(t.untyped_storage().nbytes() for t in saved
                               if t.untyped_storage().data_ptr() not in skip)
        # lean, in either layout: q, k, v and lse (no copy of X for the convs; gamma and
        # the residual are folded in, so CCA(X) is not kept for them), and the three
        # conv weights stacked into one (24, 16, 1, 1) matrix
        assert nbytes[True] == 4 * 2 * 9 * 8 * (4 + 4 + 16 + 1) + 4 * 24 * 16
        assert nbytes[True] < nbytes[False]


def test_no_grad_uses_same_forward_without_function():
    torch.manual_seed(2)
    q, k, v = qkv(1, 4, 6, dtype=torch.float32)
    with_grad = criss_cross_attention(q, k, v)
    with torch.no_grad():
        without = criss_cross_attention(q, k, v)
    assert without.grad_fn is None
    torch.testing.assert_close(with_grad.detach(), without, atol=0, rtol=0)
    torch.testing.assert_close(without, criss_cross_attention(q, k, v, lean=False).detach())


def test_lean_and_plain_grads_agree_under_bf16_autocast():
    torch.manual_seed(3)
    net = CrissCrossAttention(16, reduction=4)
    with torch.no_grad():
        net.gamma.fill_(1.0)
    X = torch.randn(2, 16, 7, 9)

    def flat_grads(lean, autocast, dtype=torch.float32):
        net.lean = lean
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            Y = net.to(dtype)(X.to(dtype))
        Y.float().square().mean().backward()
        return torch.cat([p.grad.double().flatten() for p in net.parameters()])

    ref = flat_grads(False, False, torch.float64)  # no rounding to speak of
    lean, plain = flat_grads(True, True), flat_grads(False, True)
    net.float()
    assert torch.isfinite(lean).all()
    # both paths round the same bf16 convs and products, so the lean path must be as
    # close to the float64 gradient as the plain one (measured on the whole gradient:
    # the key bias's true gradient is 0, its bf16 value is rounding noise only)
    err_lean, err_plain = (lean - ref).abs().max(), (plain - ref).abs().max()
    assert err_lean <= 2 * err_plain + 1e-3 * ref.abs().max()
    assert err_plain < 5e-2 * ref.abs().max()  # and bf16 is a fair approximation at all


# bf16 and fp16 matmul/conv on CPU exist in torch >= 2.1; skip (with the reason) if not.
def _cpu_kernels(dtype) -> bool:
    try:
        x = torch.ones(1, 2, 2, 2, dtype=dtype)
        torch.nn.functional.conv2d(x, torch.ones(2, 2, 1, 1, dtype=dtype))
        _ = x @ x
        return True
    except RuntimeError:
        return False


LOW = [
    pytest.param(d, marks=pytest.mark.skipif(not _cpu_kernels(d), reason=f"no CPU {d} kernels"))
    for d in (torch.bfloat16, torch.float16)
]


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("dtype", LOW)
def test_huge_energies_low_precision_match_float32(dtype, lean):
    torch.manual_seed(4)
    # |q|, |k| ~ 45 per channel, 8 channels: energies of order 1e4
    q, k, v = qkv(2, 9, 11, c=8, C=6, dtype=torch.float32, scale=45.0, requires_grad=False)
    q, k, v = (t.to(dtype) for t in (q, k, v))
    e = torch.einsum("bchw,bchw->bhw", q.float(), k.float())
    assert e.abs().max() > 5e3
    out = criss_cross_attention(q, k, v, lean=lean)
    ref = criss_cross_attention(q.double(), k.double(), v.double(), lean=lean)
    assert out.dtype == dtype and torch.isfinite(out).all()
    # Energies and softmax run in float32 from the (exact) low-precision inputs, so
    # a naive fp16 exp overflow or a 1e4 * 2**-8 ~ 40 rounding of the energies cannot
    # happen. What remains is rounding the weights to `dtype` (relative u = eps / 2,
    # summed over weights adding to 1: <= u max|v|), rounding the row and column
    # partial sums and their total (3 more u max|v|): 4 u max|v|, plus float32 noise.
    u = torch.finfo(dtype).eps / 2
    atol = 4 * u * v.double().abs().max().item() + 1e-5
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", LOW)
def test_module_after_half_and_bfloat16(dtype):
    torch.manual_seed(5)
    net = CrissCrossAttention(32)
    with torch.no_grad():
        net.gamma.fill_(1.0)
    X = torch.randn(2, 32, 7, 10)
    net_low = net.to(dtype)
    X_low = X.to(dtype).requires_grad_()
    Y = net_low(X_low)
    assert Y.dtype == dtype and torch.isfinite(Y).all()
    Y.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net_low.parameters())
    ref = net_low.double()(X_low.detach().double())  # same rounded weights and input
    # convs round q, k, v to `dtype` (u = eps/2): energies of size ~|q||k| ~ 5 move by
    # ~10 u, weights by ~10 u relative; with rounding of v and the sums, 16 u of the
    # output's scale is a safe bound (2% for bf16, 0.8% for fp16 is far from failure
    # modes such as a lost softmax normaliser, which is off by O(1))
    u = torch.finfo(dtype).eps / 2
    torch.testing.assert_close(
        Y.double(), ref, atol=16 * u * ref.abs().max().item(), rtol=0
    )


@pytest.mark.slow
def test_torch_compile_cpu_same_output():
    torch.manual_seed(6)
    net = CrissCrossAttention(16, reduction=4)
    with torch.no_grad():
        net.gamma.fill_(0.5)
    X = torch.randn(2, 16, 9, 7, requires_grad=True)
    ref = net(X)
    # Skip only when inductor cannot work at all here (no C compiler, or no inductor);
    # any other failure of torch.compile is a regression and must fail the test.
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile (inductor) needs a C compiler; none found (gcc / cc)")
    if importlib.util.find_spec("torch._inductor") is None:
        pytest.skip("torch._inductor is not available in this torch build")
    # forward only (the autograd.Function is traced with grad enabled): compiling the
    # backward too doubles the ~20 s of a cold inductor cache on 2 cores
    out = torch.compile(net, backend="inductor")(X)
    assert out.requires_grad
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx / onnxruntime not installed",
)
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_dynamic_size(tmp_path, dynamo):
    import onnxruntime as ort

    torch.manual_seed(7)
    net = CrissCrossAttention(16, reduction=4).eval()
    with torch.no_grad():
        net.gamma.fill_(0.5)
    path = tmp_path / "cca.onnx"
    X = torch.randn(1, 16, 9, 11)
    torch.onnx.export(
        net,
        (X,),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamo=dynamo,
        **(
            {"dynamic_shapes": {"x": {2: torch.export.Dim("h"), 3: torch.export.Dim("w")}}}
            if dynamo
            else {"dynamic_axes": {"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}}
        ),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in [(9, 11), (5, 13), (1, 6), (7, 1)]:
        X = torch.randn(1, 16, h, w)
        (y,) = session.run(None, {"x": X.numpy()})
        with torch.no_grad():
            ref = net(X)
        torch.testing.assert_close(torch.from_numpy(y), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [True, False])
def test_module_output_keeps_input_memory_format(lean, channels_last, grad):
    torch.manual_seed(9)
    net = CrissCrossAttention(16, reduction=4, lean=lean)
    with torch.no_grad():
        net.gamma.fill_(0.5)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    X = torch.randn(2, 16, 5, 7).contiguous(memory_format=fmt)
    with torch.set_grad_enabled(grad):
        Y = net(X.requires_grad_(grad))
        other = net(X.detach().contiguous(memory_format=torch.contiguous_format))
    assert Y.is_contiguous(memory_format=fmt)
    if channels_last:  # really channels-last, not a layout that is both
        assert not Y.is_contiguous()
    else:
        assert not Y.is_contiguous(memory_format=torch.channels_last)
    # the layout changes nothing in the values
    torch.testing.assert_close(Y, other, atol=1e-6, rtol=1e-5)


def test_function_is_exposed():
    assert issubclass(LeanCrissCrossAttention, torch.autograd.Function)


@pytest.mark.parametrize("block_bytes", [1, 700, 3000])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_blocks_layouts_and_residual_give_the_same_result(monkeypatch, fmt, block_bytes):
    """Large maps run a block of images at a time and every C-channel product in blocks
    of rows and of columns, reading q, k, v and dY in the layout they come in; force
    small blocks on a small map (one line of one image; a few rows of one image; one
    image whole) and compare with the default (both images at once)."""
    import seglib.models.attention_lean as lean

    torch.manual_seed(8)
    q, k, v = (t.detach().contiguous(memory_format=fmt).requires_grad_()
               for t in qkv(2, 6, 11, c=3, C=4))
    gamma = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 4, 6, 11, dtype=torch.float64).contiguous(memory_format=fmt)
    x.requires_grad_()
    grad = torch.randn(2, 4, 6, 11, dtype=torch.float64)

    def run():
        out = lean.lean_criss_cross_attention(q, k, v, gamma, residual=x)
        assert out.is_contiguous(memory_format=fmt)  # the residual's layout
        return (out, *torch.autograd.grad(out, (q, k, v, gamma, x), grad))

    ref = run()
    assert lean._image_blocks(v) == [slice(0, 2)]
    monkeypatch.setattr(lean, "BLOCK_BYTES", block_bytes)
    assert len(lean._image_blocks(v)) == 2  # one image (4 x 6 x 11 doubles) at a time
    if block_bytes == 1:  # one row / one column per block
        assert lean._blocks(11, 4 * 6 * 8) == [slice(i, i + 1) for i in range(11)]
        # on a GPU the budget is GPU_BLOCK_BYTES (a device object is all it looks at)
        assert lean._blocks(11, 4 * 6 * 8, torch.device("cuda")) == [slice(0, 11)]
    for a, b in zip(run(), ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    plain = 0.7 * criss_cross_attention(q, k, v, lean=False)
    torch.testing.assert_close(ref[0], x + plain, atol=1e-12, rtol=0)
    # d/dgamma of <grad, x + gamma * CCA> is <grad, CCA>; d/dx is grad itself
    torch.testing.assert_close(ref[4], (grad * plain / 0.7).sum().reshape(1))
    torch.testing.assert_close(ref[5], grad, atol=0, rtol=0)
    # and q, k, v gradients equal those of the plain autograd path
    plain_grads = torch.autograd.grad(x + plain, (q, k, v), grad)
    for a, b in zip(ref[1:4], plain_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


# The stacked q/k/v projection (`project_qkv`, `QKVProjection`)

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def convs(C=6, c=2, bias=True, dtype=torch.float64):
    torch.manual_seed(0)
    return tuple(nn.Conv2d(C, n, 1, bias=bias).to(dtype) for n in (c, c, C))


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("bias", [True, False])
def test_projection_equals_three_convs_with_grads(fmt, bias):
    cq, ck, cv = convs(bias=bias)
    X = torch.randn(2, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=fmt)
    X.requires_grad_()
    qkv = project_qkv(X, cq, ck, cv)
    assert qkv.shape == (2, 10, 5, 7)
    assert qkv.is_contiguous(memory_format=torch.channels_last)
    ref = torch.cat([cq(X), ck(X), cv(X)], dim=1)
    torch.testing.assert_close(qkv, ref, atol=1e-12, rtol=0)
    params = [p for c in (cq, ck, cv) for p in c.parameters()]
    grad = torch.randn_like(ref)
    ours = torch.autograd.grad(qkv, [X, *params], grad)
    theirs = torch.autograd.grad(ref, [X, *params], grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    # the gradient of X comes back in X's layout
    assert ours[0].is_contiguous(memory_format=fmt)


def test_projection_gradcheck():
    cq, ck, cv = convs(C=3, c=1)
    weight = torch.cat([c.weight for c in (cq, ck, cv)]).detach().requires_grad_()
    bias = torch.cat([c.bias for c in (cq, ck, cv)]).detach().requires_grad_()
    X = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, b: QKVProjection.apply(x, w, b, torch.float64)  # noqa: E731
    assert torch.autograd.gradcheck(f, (X, weight, bias))


def test_projection_saves_only_input_and_stacked_weight():
    cq, ck, cv = convs(C=8, c=2, dtype=torch.float32)
    X = torch.randn(1, 8, 6, 5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        project_qkv(X, cq, ck, cv)
    shapes = sorted(tuple(t.shape) for t in saved)
    assert shapes == [(1, 8, 6, 5), (12, 8, 1, 1)]  # X itself, W_q; W_k; W_v stacked
    assert any(t.data_ptr() == X.data_ptr() for t in saved)


def test_projection_without_grad_and_under_autocast():
    cq, ck, cv = convs(C=8, c=2, dtype=torch.float32)
    X = torch.randn(2, 8, 5, 4)
    with torch.no_grad():
        out = project_qkv(X, cq, ck, cv)
        ref = torch.cat([cq(X), ck(X), cv(X)], dim=1)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = project_qkv(X.requires_grad_(), cq, ck, cv)
    assert low.dtype == torch.bfloat16  # as nn.Conv2d under autocast
    low.float().sum().backward()
    assert cq.weight.grad.dtype == torch.float32 and X.grad.dtype == torch.float32


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_lean_module_gradients_equal_an_independent_reference(fmt):
    """Lean block (stacked projection + packed Function, gamma and residual folded in)
    against plain convs + dense masked attention under autograd, in float64."""
    torch.manual_seed(5)
    net = CrissCrossAttention(16, reduction=4).double()
    with torch.no_grad():
        net.gamma.fill_(0.6)
    X = torch.randn(2, 16, 5, 7, dtype=torch.float64).contiguous(memory_format=fmt)
    X.requires_grad_()
    grad = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    params = list(net.parameters())
    Y = net(X)
    assert Y.grad_fn.name().startswith("LeanPackedCrissCrossAttention")
    ours = torch.autograd.grad(Y, [X, *params], grad)
    q, k, v = net.query_conv(X), net.key_conv(X), net.value_conv(X)
    ref = net.gamma * dense_masked_attention(q, k, v, criss_cross_mask(5, 7)) + X
    torch.testing.assert_close(Y, ref, atol=1e-12, rtol=0)
    theirs = torch.autograd.grad(ref, [X, *params], grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_projection_rejects_convs_that_are_not_plain_1x1():
    cq, ck, _ = convs(C=6, c=2)
    for bad in (nn.Conv2d(6, 6, 3, padding=1), nn.Conv2d(6, 6, 1, stride=2),
                nn.Conv2d(6, 6, 1, groups=2)):
        with pytest.raises(ValueError, match="plain 1x1"):
            project_qkv(torch.randn(1, 6, 4, 4), cq, ck, bad.double())
