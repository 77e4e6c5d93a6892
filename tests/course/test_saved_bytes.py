"""seglib.course.saved_bytes: bytes autograd keeps, against hand-counted cases."""

import torch
from torch import nn

from seglib.course.saved_bytes import saved_for_backward_bytes


class ExpTwice(nn.Module):
    """exp saves its output; a second exp on a view of it saves a view: same buffer."""

    def forward(self, x):
        y = x.exp()  # keeps y (x.numel() floats)
        return y[:, :2].exp()  # keeps its own output (half the size), reads a view of y


def test_counts_unique_buffers_and_skips_input_and_weights():
    x = torch.randn(3, 4, requires_grad=True)
    assert saved_for_backward_bytes(ExpTwice(), x) == 4 * (12 + 6)
    # a linear layer keeps its input (skipped) and its weight (skipped): nothing else
    assert saved_for_backward_bytes(nn.Linear(4, 5), x) == 0
    # without anything requiring grad, nothing is kept
    assert saved_for_backward_bytes(ExpTwice(), x.detach()) == 0
