"""seglib.course.exercises.check: the self-check of the notebooks' coding exercises."""

import pytest
import torch
from torch import nn

from seglib.course.exercises import check, check_augmentation, check_module, random_size
from seglib.models import CrissCrossAttention, RCCAModule, attention


def correct_mask(H, W):
    idx = torch.arange(H * W)
    return (idx[:, None] // W == idx[None, :] // W) | (idx[:, None] % W == idx[None, :] % W)


def test_a_correct_function_passes_on_several_random_cases(capsys):
    assert check(correct_mask, attention.criss_cross_mask, random_size(1, 6), random_size(1, 6))
    assert capsys.readouterr().out.strip() == "✓ correct_mask matches seglib on 5 random inputs"


def test_fixed_inputs_run_once_and_floats_compare_in_float64(capsys):
    x = torch.randn(3, 4)
    seen = []

    def double(t):
        seen.append(t.dtype)
        return 2 * t

    assert check(double, lambda t: t + t, x)
    assert seen == [torch.float64]
    assert "matches seglib on the given input" in capsys.readouterr().out


def test_a_wrong_function_reports_the_difference_and_the_inputs(capsys):
    def off(q, k, v):
        return attention.criss_cross_attention(q, k, v) + 0.5

    qk = lambda: torch.randn(2, 4, 5, 7)  # noqa: E731
    assert not check(off, attention.criss_cross_attention, qk, qk, lambda: torch.randn(2, 6, 5, 7))
    out = capsys.readouterr().out
    assert out.startswith("✗ off differs from seglib on case 1 of 5: max |difference| 0.5")
    assert "query (2, 4, 5, 7)" in out and "value (2, 6, 5, 7)" in out


def test_wrong_shapes_and_wrong_booleans_are_reported(capsys):
    assert not check(lambda H, W: correct_mask(H, W)[:1], correct_mask, 3, 4)
    assert "returns shape (1, 12), seglib (12, 12)" in capsys.readouterr().out
    assert not check(lambda H, W: ~correct_mask(H, W), correct_mask, 3, 4)
    assert "144 of 144 entries differ" in capsys.readouterr().out


def test_a_stub_that_raises_is_not_implemented_yet_and_not_an_error(capsys):
    def my_mask(H, W):
        raise NotImplementedError  # your code here

    assert check(my_mask, correct_mask, 3, 4) is False
    assert "my_mask is not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("result", [None, NotImplemented])
def test_a_stub_returning_nothing_raises_a_clear_type_error(result):
    def my_mask(H, W):
        return result

    with pytest.raises(TypeError, match="my_mask returned .* still a stub"):
        check(my_mask, correct_mask, 3, 4)


def test_inputs_are_private_copies_and_the_random_state_is_kept():
    x = torch.ones(3)

    def in_place(t, noise):
        return t.mul_(2) + 0 * noise

    torch.manual_seed(1)
    expected = torch.rand(1)
    torch.manual_seed(1)
    assert check(in_place, lambda t, noise: 2 * t, x, lambda: torch.randn(1))
    assert torch.equal(x, torch.ones(3))
    assert torch.equal(torch.rand(1), expected)


def test_tuples_of_tensors_and_numbers_are_compared_item_by_item(capsys):
    def ref(x):
        return x.sum(), x.shape[0]

    assert check(lambda x: (x.sum(), x.shape[0]), ref, lambda: torch.randn(4))
    assert not check(lambda x: (x.sum(), 5), ref, lambda: torch.randn(4))
    assert "returns 5 (output 1), seglib 4" in capsys.readouterr().out


def test_make_args_draws_inputs_whose_shapes_agree(capsys):
    def qkv():
        H, W = (int(n) for n in torch.randint(1, 7, (2,)))
        return torch.randn(1, 3, H, W), torch.randn(1, 3, H, W), torch.randn(1, 5, H, W)

    assert check(lambda q, k, v: attention.criss_cross_attention(q, k, v, lean=False),
                 attention.criss_cross_attention, make_args=qkv, cases=4)
    assert "matches seglib on 4 random inputs" in capsys.readouterr().out
    with pytest.raises(TypeError, match="not both"):
        check(correct_mask, correct_mask, 3, make_args=lambda: (3, 4))


def test_nan_where_seglib_has_a_number_is_reported(capsys):
    assert not check(lambda x: x / 0 * 0, lambda x: x, torch.ones(2, 3))
    assert "NaN in one result but not the other at 6 of 6 entries" in capsys.readouterr().out


# check_augmentation: a random transform is checked for what every correct one must do

def _rotation(fill_mask=255, move_mask=True, mask_interpolation=None):
    """An augment(image, mask) rotating by 8 to 10 degrees (either way) with Albumentations."""
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    from seglib.data import apply_transform

    kw = {} if mask_interpolation is None else {"mask_interpolation": mask_interpolation}
    rotate = A.Compose([
        A.Rotate(limit=(8, 10), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=fill_mask,
                 p=1.0, **kw),
        A.Normalize(),
        ToTensorV2(),
    ], seed=0)

    def augment(image, mask):
        x, y = apply_transform(rotate, image, mask)
        return (x, y) if move_mask else (x, torch.as_tensor(mask).long())

    return augment


def test_a_correct_rotation_passes_and_reports_the_uncovered_pixels(capsys):
    assert check_augmentation(_rotation(), draws=3)
    out = capsys.readouterr().out
    assert out.startswith("✓ augment keeps image and mask together on 3 random draws")
    assert "uncovered pixels are 255" in out


def test_an_image_moved_without_its_mask_fails(capsys):
    assert not check_augmentation(_rotation(move_mask=False), draws=3)
    assert "image and mask disagree" in capsys.readouterr().out


def test_uncovered_pixels_filled_with_a_class_fail(capsys):
    assert not check_augmentation(_rotation(fill_mask=0), draws=3)
    assert "uncovered pixels became class 0: fill the mask with 255" in capsys.readouterr().out


def test_an_interpolated_mask_fails(capsys):
    import cv2

    assert not check_augmentation(_rotation(mask_interpolation=cv2.INTER_LINEAR), draws=3)
    out = capsys.readouterr().out
    assert "the mask was interpolated" in out and ", ..." in out  # a long list is cut


def test_a_transform_that_moves_nothing_fails(capsys):
    def same(image, mask):
        return torch.as_tensor(image).permute(2, 0, 1).float(), torch.as_tensor(mask).long()

    assert not check_augmentation(same, draws=2)
    assert "no draw uncovered a pixel" in capsys.readouterr().out


def test_an_augmentation_stub_is_not_implemented_yet(capsys):
    def my_rotate(image, mask):
        raise NotImplementedError

    assert check_augmentation(my_rotate) is False
    assert "my_rotate is not implemented yet" in capsys.readouterr().out


# --- check_module: the capstone, a whole RCCA head written by the learner ---------------


class LearnerHead(nn.Module):
    """An RCCA head written from the paper's equations with names of its own, in the
    order of the forward pass (what notebook 08's capstone asks for)."""

    def __init__(self, c: int, k: int, recurrence: int = 2, skip: bool = True):
        super().__init__()
        self.recurrence, self.skip = recurrence, skip
        inner = c // 4
        self.reduce = nn.Sequential(nn.Conv2d(c, inner, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(inner), nn.ReLU())
        self.attention = CrissCrossAttention(inner)
        self.after = nn.Sequential(nn.Conv2d(inner, inner, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(inner), nn.ReLU())
        self.fuse = nn.Sequential(nn.Conv2d(c + inner, inner, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(inner), nn.ReLU(), nn.Dropout2d(0.1))
        self.classify = nn.Conv2d(inner, k, 1)

    def forward(self, x):
        h = self.reduce(x)
        for _ in range(self.recurrence):
            h = self.attention(h)  # the same module every pass
        h = self.after(h)
        h = torch.cat([x, h], 1) if self.skip else torch.cat([torch.zeros_like(x), h], 1)
        return self.classify(self.fuse(h))


def _trained_like(module: nn.Module) -> nn.Module:
    """Random batch-norm statistics and a gate gamma away from 0, so that every part
    of the head changes the output (a fresh gamma = 0 would hide a wrong attention)."""
    torch.manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        module.cca.gamma.fill_(0.7)
    return module


def test_a_correct_head_with_its_own_names_matches_and_the_modules_stay_untouched(capsys):
    ref = _trained_like(RCCAModule(32, 5))
    mine = LearnerHead(32, 5)
    before = {k: v.clone() for k, v in mine.state_dict().items()}
    assert check_module(mine, ref, lambda: torch.randn(2, 32, 6, 7))
    assert "✓ LearnerHead matches seglib on 3 random inputs" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in mine.state_dict().items())
    assert mine.training and ref.training  # the copies went to eval mode, not these


def test_a_head_that_drops_the_skip_or_a_pass_is_caught(capsys):
    ref = _trained_like(RCCAModule(32, 5))
    assert not check_module(LearnerHead(32, 5, skip=False), ref, lambda: torch.randn(1, 32, 5, 6))
    assert "✗ LearnerHead differs from seglib" in capsys.readouterr().out
    assert not check_module(LearnerHead(32, 5, recurrence=1), ref, lambda: torch.randn(1, 32, 5, 6))
    assert "max |difference|" in capsys.readouterr().out


def test_a_head_with_other_shapes_says_which_tensor(capsys):
    ref = RCCAModule(32, 5)
    assert not check_module(LearnerHead(32, 4), ref, lambda: torch.randn(1, 32, 5, 6))
    out = capsys.readouterr().out
    assert "cannot take seglib's weights" in out and "classify.weight" in out
    assert not check_module(nn.Conv2d(32, 5, 1), ref, lambda: torch.randn(1, 32, 5, 6))
    assert "holds 2 parameter and buffer tensors" in capsys.readouterr().out


def test_a_head_stub_is_not_implemented_yet(capsys):
    class Stub(LearnerHead):
        def forward(self, x):
            raise NotImplementedError

    assert not check_module(Stub(32, 5), RCCAModule(32, 5), lambda: torch.randn(1, 32, 5, 6))
    assert "not implemented yet" in capsys.readouterr().out

    class Empty(nn.Module):  # the notebook's stub: no layers yet, a forward that raises
        def forward(self, x):
            raise NotImplementedError

    assert not check_module(Empty(), RCCAModule(32, 5), lambda: torch.randn(1, 32, 5, 6))
    assert "Empty is not implemented yet" in capsys.readouterr().out
