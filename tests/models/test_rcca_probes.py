"""attention_knockout against networks computed another way, and `seglib.evaluate --knockout`."""

import copy

import pytest
import torch
from torch.utils.data import DataLoader

from seglib import evaluate as evaluate_cli
from seglib import train as train_cli
from seglib.data import pick_datasets
from seglib.engine import evaluate, load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.models import CCNet, RCCAModule, attention_knockout, build_model


def open_gate(head: RCCAModule, value: float = 0.7) -> RCCAModule:
    with torch.no_grad():
        head.cca.gamma.fill_(value)  # a trained-looking gate: the attention counts
    return head.eval()


def by_hand(head: RCCAModule, x: torch.Tensor, passes: int) -> torch.Tensor:
    """The RCCA head written out with `passes` applications of its shared attention."""
    out = head.conva(x)
    for _ in range(passes):
        out = head.cca(out)
    out = head.convb(out)
    return head.classifier(head.bottleneck(torch.cat([x, out], 1)))


def test_knockout_removes_exactly_the_named_passes():
    torch.manual_seed(0)
    head = open_gate(RCCAModule(32, num_classes=5, recurrence=2))
    x = torch.randn(2, 32, 7, 9)
    with torch.no_grad():
        intact = head(x)
        torch.testing.assert_close(intact, by_hand(head, x, 2))
        with attention_knockout(head, "all"):
            torch.testing.assert_close(head(x), by_hand(head, x, 0))
        for one in ([1], [2]):  # one shared module: either pass removed leaves R = 1
            with attention_knockout(head, one):
                torch.testing.assert_close(head(x), by_hand(head, x, 1))
        torch.testing.assert_close(head(x), intact)  # restored on leaving the block
    assert not torch.allclose(by_hand(head, x, 1), intact)  # the gate is open: passes count


def test_knockout_of_both_passes_equals_a_closed_gate():
    torch.manual_seed(0)
    net = CCNet(4, "resnet18", recurrence=2, aux=False, output_stride=16, decoder=True).eval()
    open_gate(net.head)
    closed = copy.deepcopy(net)
    open_gate(closed.head, 0.0)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad(), attention_knockout(net):
        torch.testing.assert_close(net(x), closed(x))


def test_knockout_refuses_what_it_cannot_do_and_restores_after_an_error():
    head = RCCAModule(32, num_classes=3, recurrence=2)
    with pytest.raises(ValueError, match=r"passes must lie in 1\.\.2"):
        with attention_knockout(head, [3]):
            pass
    with pytest.raises(RuntimeError, match="inside"):
        with attention_knockout(head, [1]):
            raise RuntimeError("inside")
    assert head.knocked_out == frozenset()
    with pytest.raises(ValueError, match="has no RCCA head"):
        with attention_knockout(build_model("refinenet", 3, "resnet18", features=16)):
            pass


TINY = ["--data", "synthetic", "--crop", "32x48", "--batch-size", "2", "--train-size", "4",
        "--val-size", "2", "--device", "cpu", "--workers", "0", "--epochs", "1"]


@pytest.mark.slow
def test_evaluate_cli_knockout_scores_the_closed_gate(tmp_path, capsys):
    train_cli.main([*TINY, "--out", str(tmp_path / "run")])
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    ckpt["model"]["head.cca.gamma"] = torch.tensor([2.0])  # make the attention matter
    torch.save(ckpt, tmp_path / "open.pt")
    ckpt["model"]["head.cca.gamma"] = torch.tensor([0.0])
    torch.save(ckpt, tmp_path / "closed.pt")
    capsys.readouterr()
    res = evaluate_cli.main(["--checkpoint", str(tmp_path / "open.pt"), "--knockout", "all"])
    printed = capsys.readouterr().out
    assert "iou knocked out" in printed and "attention of both passes knocked out" in printed
    closed, config = load_model(tmp_path / "closed.pt", device="cpu")
    val = pick_datasets(None, source="synthetic", crop=config.crop, val_size=config.val_size,
                        train_size=config.train_size, seed=config.seed, verbose=False).val
    reference = evaluate(closed, DataLoader(val, batch_size=2), config.num_classes, "cpu",
                         input_scale=config.eval_scale)
    torch.testing.assert_close(res["knockout"]["confusion"], reference["confusion"])
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(tmp_path / "open.pt"), "--knockout", "0"])
    train_cli.main([*TINY, "--recurrence", "0", "--out", str(tmp_path / "r0")])
    with pytest.raises(ValueError, match="trained with R = 0"):
        evaluate_cli.main(["--checkpoint", str(tmp_path / "r0" / "best.pt"), "--knockout", "all"])
