"""seglib.engine.run_state: resume gives what an uninterrupted run gives, refuses another
model, says when there is nothing to train; seeds per rank; a NaN val loss never becomes
best.pt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seglib import train as train_cli
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.training_loop import METRIC_COLUMNS, fit
from tests.helpers import FIT_CFG as CFG
from tests.helpers import (
    RUN_ARGS,
    TINY_CFG,
    Exploding,
    Tiny,
    TinyNet,
    copy_run,
    loaders,
    snapshot,
    tiny_loaders,
)


def test_resume_gives_identical_metrics_and_weights(tmp_path):
    def run(out, **kw):
        torch.manual_seed(0)
        net = TinyNet()
        train, val = loaders()
        return net, fit(net, train, val, CFG, out=out, animate=False, **kw)

    net_a, full = run(tmp_path / "a")
    _, first = run(tmp_path / "b", callback=lambda row: True)  # "crash" after epoch 1
    assert len(first) == 1
    net_b, resumed = run(tmp_path / "b", resume=True)
    cols = [c for c in METRIC_COLUMNS if c not in ("seconds", "images_per_s")]
    pd.testing.assert_frame_equal(resumed[cols], full[cols])
    for (k, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), k
    assert len(pd.read_csv(tmp_path / "b" / "metrics.csv")) == 2


def test_resume_into_a_longer_run_follows_the_new_poly_schedule(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    steps = len(train)
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=2)
    seen = []
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=4, resume=True,
        callback=lambda row: seen.append(row["lr"]))
    # epoch 3 starts at step 2 * steps of a 4-epoch schedule, not at the old final lr 0
    expected = [0.05 * (1 - e * steps / (4 * steps)) ** 0.9 for e in (2, 3)]
    assert seen == pytest.approx(expected)


def test_resume_refuses_other_model_or_classes(tmp_path):
    torch.manual_seed(0)
    train, val = loaders()
    fit(TinyNet(), train, val, CFG, out=tmp_path, animate=False, epochs=1)
    with pytest.raises(ValueError, match="num_classes: checkpoint 3 vs this run 4"):
        fit(TinyNet(k=4), train, val, CFG, out=tmp_path, resume=True, animate=False,
            num_classes=4)
    with pytest.raises(ValueError, match="model_class"):
        fit(Exploding(), train, val, CFG, out=tmp_path, resume=True, animate=False)


def test_seed_everything_offsets_the_seed_by_the_rank(monkeypatch):
    import random

    from seglib.engine import distributed as ddp
    from seglib.engine.run_state import seed_everything

    draws = {}
    for r in (0, 1):
        monkeypatch.setattr(ddp, "rank", lambda r=r: r)
        assert seed_everything(7) == 7 + r
        draws[r] = (torch.rand(4), np.random.rand(4), random.random())  # noqa: NPY002
    for r in (0, 1):  # independent reference: the libraries seeded by hand with 7 + r
        torch.manual_seed(7 + r)
        np.random.seed(7 + r)  # noqa: NPY002
        random.seed(7 + r)
        assert torch.equal(draws[r][0], torch.rand(4))
        assert np.array_equal(draws[r][1], np.random.rand(4))  # noqa: NPY002
        assert draws[r][2] == random.random()
    assert not torch.equal(draws[0][0], draws[1][0])


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(finished_run, tmp_path, capsys):
    out = copy_run(finished_run, tmp_path / "run")
    before = snapshot(out)
    hist = train_cli.main([*RUN_ARGS, "--epochs", "1", "--out", str(out), "--resume"])
    text = capsys.readouterr().out
    assert "nothing to train" in text and "--epochs" in text
    assert len(hist) == 1
    assert (out / "last.pt").read_bytes() == before["last.pt"]


class NaNInEval(Tiny):
    """Finite logits in training, NaN in eval mode (as after broken BatchNorm statistics)."""

    def forward(self, x):
        y = super().forward(x)
        return y if self.training else y * float("nan")


def test_a_nan_val_loss_never_becomes_best_pt(tmp_path, capsys):
    train, val = tiny_loaders()
    hist = fit(NaNInEval(), train, val, TINY_CFG.replace(epochs=2), out=tmp_path, animate=False)
    assert hist["val_loss"].isna().all() and (hist["val_miou"] > 0).all()  # argmax scores
    assert not (tmp_path / "best.pt").exists()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert "best.pt is not updated" in capsys.readouterr().out
