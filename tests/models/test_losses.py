"""seglib.models.losses: the masked cross-entropy and CCNet's loss, by hand."""

import pytest
import torch
import torch.nn.functional as F

from seglib.models.losses import ccnet_loss, labelled_weight_sum, masked_cross_entropy


def manual_ce(logits, target, weight=None, ignore_index=255):
    """Cross-entropy by hand: -log softmax at the target, (weighted) mean over kept pixels."""
    K = logits.shape[1]
    logp = logits.log_softmax(1).permute(0, 2, 3, 1).reshape(-1, K)  # (N, K)
    t = target.reshape(-1)
    keep = t != ignore_index
    nll = -logp[keep].gather(1, t[keep, None]).squeeze(1)
    w = torch.ones(K) if weight is None else weight
    return (w[t[keep]] * nll).sum() / w[t[keep]].sum()


@pytest.mark.parametrize("weighted", [False, True])
def test_ccnet_loss_matches_hand_computation(weighted):
    torch.manual_seed(0)
    main, aux = torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0]) if weighted else None
    expected = manual_ce(main, target, weight) + 0.4 * manual_ce(aux, target, weight)
    torch.testing.assert_close(ccnet_loss((main, aux), target, weight=weight), expected)
    torch.testing.assert_close(ccnet_loss(main, target, weight=weight),
                               manual_ce(main, target, weight))
    ref = F.cross_entropy(main, target, weight=weight, ignore_index=255) + 0.2 * F.cross_entropy(
        aux, target, weight=weight, ignore_index=255)
    torch.testing.assert_close(ccnet_loss([main, aux], target, 0.2, weight), ref)


@pytest.mark.parametrize("weighted", [False, True])
def test_ccnet_loss_of_an_all_void_batch_is_zero_with_finite_grads(weighted):
    torch.manual_seed(0)
    main = torch.randn(2, 3, 4, 5, requires_grad=True)
    aux = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.full((2, 4, 5), 255, dtype=torch.long)
    weight = torch.tensor([0.5, 1.0, 2.0]) if weighted else None
    loss = ccnet_loss((main, aux), target, weight=weight)
    assert loss.item() == 0.0
    loss.backward()
    for t in (main, aux):
        assert t.grad is not None and torch.isfinite(t.grad).all() and not t.grad.any()
    # one valid pixel: the same value as F.cross_entropy on that pixel alone
    target[1, 2, 3] = 2
    ref = F.cross_entropy(main[1:2, :, 2, 3], target[1:2, 2, 3], weight=weight) + 0.4 * (
        F.cross_entropy(aux[1:2, :, 2, 3], target[1:2, 2, 3], weight=weight)
    )
    torch.testing.assert_close(ccnet_loss((main, aux), target, weight=weight), ref)


@pytest.mark.parametrize("weighted", [False, True])
def test_masked_cross_entropy_equals_torch_mean_and_its_sum_divides_back(weighted):
    torch.manual_seed(0)
    logits, target = torch.randn(3, 4, 5, 6), torch.randint(0, 4, (3, 5, 6))
    target[0, :2] = 255
    target[2, :, 1] = 255
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0]) if weighted else None
    ref = F.cross_entropy(logits, target, weight=weight, ignore_index=255, reduction="mean")
    torch.testing.assert_close(masked_cross_entropy(logits, target, weight), ref)
    # the sum over two batches, divided by their summed weights: the mean of both at once
    parts = [(logits[:1], target[:1]), (logits[1:], target[1:])]
    total = sum(masked_cross_entropy(x, t, weight, reduction="sum") for x, t in parts)
    denom = sum(labelled_weight_sum(t, weight, dtype=torch.float64) for _, t in parts)
    torch.testing.assert_close(total.double() / denom, ref.double())
    assert denom.dtype == torch.float64
    if not weighted:
        assert denom == (target != 255).sum()


@pytest.mark.parametrize("weighted", [False, True])
def test_masked_cross_entropy_of_an_all_void_batch_is_zero_with_finite_grads(weighted):
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.full((2, 4, 5), 255, dtype=torch.long)
    weight = torch.tensor([0.5, 1.0, 2.0]) if weighted else None
    assert torch.isnan(F.cross_entropy(logits, target, weight=weight, ignore_index=255))
    loss = masked_cross_entropy(logits, target, weight)
    assert loss.item() == 0.0 and masked_cross_entropy(logits, target, reduction="sum") == 0
    assert labelled_weight_sum(target, weight) == 0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and not logits.grad.any()
    with pytest.raises(ValueError, match="reduction"):
        masked_cross_entropy(logits, target, reduction="none")
