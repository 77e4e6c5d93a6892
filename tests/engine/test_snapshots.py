"""seglib.engine.snapshots: one frame's prediction after every epoch, kept beside the run."""

import numpy as np
import pytest
import torch

from seglib.engine.snapshots import PredictionSnapshots, load_snapshots
from seglib.engine.training_loop import fit
from tests.helpers import FIT_CFG as CFG
from tests.helpers import K, TinyNet, loaders, make_data


def frame():
    image, label = make_data(1, seed=5)[0]  # (3, 8, 10), (8, 10) with a few void pixels
    return image, label


def test_snapshots_leave_the_run_unchanged_and_hold_each_epochs_prediction(tmp_path):
    """TinyNet has dropout and batch norm: a snapshot that drew a random number or left
    the model in eval mode would change the run."""
    image, label = frame()
    torch.manual_seed(0)
    plain_net = TinyNet()
    plain = fit(plain_net, *loaders(), CFG, animate=False, epochs=3)
    torch.manual_seed(0)
    net = TinyNet()
    shots = PredictionSnapshots(net, image, label, K, tmp_path / "snapshots.npz")
    watched = fit(net, *loaders(), CFG, animate=False, epochs=3, callback=shots)
    cols = ["train_loss", "val_loss", "val_miou"]
    assert watched[cols].equals(plain[cols])
    for a, b in zip(net.state_dict().values(), plain_net.state_dict().values()):
        assert torch.equal(a, b)
    saved = load_snapshots(tmp_path / "snapshots.npz")
    assert list(saved.predictions) == [1, 2, 3]
    net.eval()
    with torch.no_grad():  # the last snapshot is the trained model's argmax, computed apart
        expected = net(image[None])[0].argmax(0).numpy()
    np.testing.assert_array_equal(saved.predictions[3], expected)
    np.testing.assert_array_equal(saved.label, label.numpy().astype(np.uint8))
    np.testing.assert_allclose(saved.image, image.numpy(), atol=1e-2)  # float16
    assert not list(tmp_path.glob("*.tmp"))


def test_a_resumed_run_extends_the_snapshots(tmp_path):
    image, label = frame()
    out, file = tmp_path / "run", tmp_path / "run" / "snapshots.npz"
    torch.manual_seed(0)
    net = TinyNet()
    fit(net, *loaders(), CFG, animate=False, epochs=1, out=out,
        callback=PredictionSnapshots(net, image, label, K, file))
    net = TinyNet()  # a new process: fresh weights, restored from last.pt
    fit(net, *loaders(), CFG, animate=False, epochs=3, out=out, resume=True,
        callback=PredictionSnapshots(net, image, label, K, file))
    assert list(load_snapshots(file).predictions) == [1, 2, 3]
    torch.manual_seed(1)  # a fresh run into the same folder: the old epochs 2 and 3 go
    net = TinyNet()
    fit(net, *loaders(), CFG, animate=False, epochs=1, out=out, overwrite=True,
        callback=PredictionSnapshots(net, image, label, K, file))
    assert list(load_snapshots(file).predictions) == [1]


def test_input_scale_predicts_at_that_size_and_returns_the_frames_size(tmp_path):
    image, label = frame()
    net = TinyNet()
    shots = PredictionSnapshots(net, image, label, K, tmp_path / "s.npz", input_scale=0.5)
    seen = []
    net.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
    assert shots.predict().shape == (8, 10)
    assert seen == [(4, 5)]
    assert net.training  # the mode is restored


def test_bad_frames_are_refused(tmp_path):
    image, label = frame()
    net = TinyNet()
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        PredictionSnapshots(net, image[None], label, K, tmp_path / "s.npz")
    with pytest.raises(ValueError, match="does not match"):
        PredictionSnapshots(net, image, label[:4], K, tmp_path / "s.npz")
    PredictionSnapshots(net, image, label, K, tmp_path / "s.npz")({"epoch": 1})
    small_image, small_label = make_data(1, h=4, w=4)[0]
    with pytest.raises(ValueError, match="another frame size"):
        PredictionSnapshots(net, small_image, small_label, K, tmp_path / "s.npz")
