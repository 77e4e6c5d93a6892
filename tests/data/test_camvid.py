"""CamVid dataset: both layouts, every error case, and the real splits via CAMVID_DIR."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from seglib.data import CLASSES, MEAN, STD, CamVid, eval_transform
from tests.helpers import (
    CLASS_DICT,
    write_png,
)

MEAN_T = torch.tensor(MEAN).view(3, 1, 1)


STD_T = torch.tensor(STD).view(3, 1, 1)


def expected_segnet_mask(path) -> np.ndarray:
    """Reference: read the label PNG, map 11 (void) to 255."""
    raw = np.array(Image.open(path), dtype=np.int64)
    return np.where(raw == 11, 255, raw)


def expected_image(path) -> torch.Tensor:
    """Reference: ImageNet normalisation of the RGB file, (3, H, W)."""
    rgb = torch.from_numpy(np.array(Image.open(path).convert("RGB"), dtype=np.float32))
    return (rgb.permute(2, 0, 1) / 255 - MEAN_T) / STD_T


def test_segnet_layout_eval_items_equal_files(make_camvid):
    root = make_camvid("segnet", split="val", n=3, size=(12, 16))
    ds = CamVid(root, "val")
    assert ds.layout == "segnet" and len(ds) == 3
    assert ds.classes == list(CLASSES) and ds.num_classes == 11
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (3, 12, 16)
        assert y.dtype == torch.int64 and y.shape == (12, 16)
        label_file = root / "valannot" / f"frame{i}.png"
        assert np.array_equal(y.numpy(), expected_segnet_mask(label_file))
        torch.testing.assert_close(x, expected_image(root / "val" / f"frame{i}.png"))
        x2, y2 = ds[i]  # eval: same input, same output
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert (expected_segnet_mask(root / "valannot" / "frame0.png") == 255).any()


def test_train_split_defaults_to_random_pipeline(make_camvid):
    root = make_camvid("segnet", split="train", n=1, size=(24, 32))
    ds = CamVid(root, "train")
    torch.manual_seed(0)
    outs = [ds[0][1] for _ in range(8)]
    assert all(o.shape == (360, 480) for o in outs)  # default crop is CamVid's size
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # random scale/crop/flip
    torch.manual_seed(0)  # reproducible from torch's generator
    again = [ds[0][1] for _ in range(8)]
    assert all(torch.equal(a, b) for a, b in zip(outs, again))


def test_colour_layout_maps_colours_and_void(make_camvid):
    root = make_camvid("colour", split="train", n=2, size=(10, 14))
    ds = CamVid(root, "train", transform=eval_transform())
    assert ds.layout == "colour"
    non_void = [c for c in CLASS_DICT if c[0] != "Void"]
    assert ds.classes == [c[0] for c in non_void] and ds.num_classes == 3
    assert ds.palette.tolist() == [list(c[1:]) for c in non_void]
    for i in range(2):
        rgb = np.array(Image.open(root / "train_labels" / f"frame{i}_L.png"))
        ref = np.full(rgb.shape[:2], -1)
        for k, (_, r, g, b) in enumerate(non_void):
            ref[(rgb == (r, g, b)).all(-1)] = k
        ref[(rgb == (0, 0, 0)).all(-1)] = 255
        assert (ref >= 0).all()
        assert np.array_equal(ds[i][1].numpy(), ref)


def test_colour_layout_unknown_colour_names_file_and_colour(make_camvid):
    root = make_camvid("colour", n=2)
    bad = np.array(Image.open(root / "train_labels" / "frame1_L.png"))
    bad[3, 5] = (1, 2, 3)
    write_png(root / "train_labels" / "frame1_L.png", bad)
    ds = CamVid(root, "train")
    with pytest.raises(ValueError, match=r"frame1_L\.png.*\(1, 2, 3\)"):
        ds[1]


def test_colour_layout_needs_class_dict(make_camvid):
    root = make_camvid("colour", n=1)
    (root / "class_dict.csv").unlink()
    with pytest.raises(FileNotFoundError, match="class_dict.csv"):
        CamVid(root, "train")


def test_missing_root_has_download_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere.*seglib\.data\.download_camvid"):
        CamVid(tmp_path / "nowhere", "train")


def test_missing_split_has_layout_and_download_hint(make_camvid):
    root = make_camvid("segnet", split="train", n=1)
    with pytest.raises(FileNotFoundError, match=r"(?s)'val'.*valannot.*download"):
        CamVid(root, "val")


def test_missing_image_folder(make_camvid):
    root = make_camvid("segnet", split="train", n=1)
    for p in (root / "train").iterdir():
        p.unlink()
    (root / "train").rmdir()
    with pytest.raises(FileNotFoundError, match="image folder"):
        CamVid(root, "train")


def test_images_without_labels_are_named(make_camvid):
    root = make_camvid("segnet", n=3)
    (root / "trainannot" / "frame1.png").unlink()
    with pytest.raises(ValueError, match=r"1 image.*frame1\.png"):
        CamVid(root, "train")


def test_labels_without_images_are_named(make_camvid):
    root = make_camvid("colour", n=3)
    (root / "train" / "frame2.png").unlink()
    with pytest.raises(ValueError, match=r"1 label.*frame2_L\.png"):
        CamVid(root, "train")


def test_size_mismatch_names_both_files(make_camvid):
    root = make_camvid("segnet", n=2, size=(12, 16))
    write_png(root / "trainannot" / "frame1.png", np.zeros((12, 15), np.uint8))
    with pytest.raises(ValueError, match=r"(?s)train/frame1\.png.*trainannot/frame1\.png"):
        CamVid(root, "train")


def test_unreadable_png_is_named(make_camvid):
    root = make_camvid("segnet", n=2)
    (root / "train" / "frame0.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"cannot read.*frame0\.png"):
        CamVid(root, "train")


def test_truncated_png_fails_on_load_naming_file(make_camvid):
    root = make_camvid("segnet", n=2, size=(40, 50))
    path = root / "trainannot" / "frame1.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut
    ds = CamVid(root, "train")
    with pytest.raises(ValueError, match=r"frame1\.png"):
        ds.load_mask(1)


def test_segnet_rgb_label_is_rejected(make_camvid):
    root = make_camvid("segnet", n=1)
    write_png(root / "trainannot" / "frame0.png", np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="single-channel"):
        CamVid(root, "train")[0]


def test_segnet_out_of_range_label_is_rejected(make_camvid):
    root = make_camvid("segnet", n=1)
    label = np.zeros((12, 16), np.uint8)
    label[0, 0] = 42
    write_png(root / "trainannot" / "frame0.png", label)
    with pytest.raises(ValueError, match=r"frame0\.png.*\[42\]"):
        CamVid(root, "train").load_mask(0)


@pytest.mark.camvid
def test_real_split_counts_and_size(camvid_dir):
    train, val = CamVid(camvid_dir, "train"), CamVid(camvid_dir, "val")
    assert (len(train), len(val)) == (367, 101)
    assert train.layout == val.layout == "segnet"
    assert Image.open(val.images[0]).size == (480, 360)


@pytest.mark.camvid
def test_real_label_values(camvid_dir):
    val = CamVid(camvid_dir, "val")
    seen = set()
    for i in range(0, len(val), 4):
        seen |= set(np.unique(val.load_mask(i)).tolist())
    assert seen <= set(range(11)) | {255}
    assert len(seen - {255}) >= 9  # most classes show up in a quarter of val


@pytest.mark.camvid
def test_real_eval_items_deterministic_and_equal_files(camvid_dir):
    val = CamVid(camvid_dir, "val")
    for i in (0, 50, 100):
        x, y = val[i]
        assert x.shape == (3, 360, 480) and y.shape == (360, 480)
        assert np.array_equal(y.numpy(), expected_segnet_mask(val.labels[i]))
        torch.testing.assert_close(x, expected_image(val.images[i]))
        x2, y2 = val[i]
        assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.camvid
def test_real_train_flip_keeps_pair_aligned(camvid_dir):
    from seglib.data import train_transform

    t = train_transform(crop=(360, 480), scale=(1.0, 1.0), jitter=False, seed=3)
    ds = CamVid(camvid_dir, "train", transform=t)
    ref_x = expected_image(ds.images[7])
    ref_y = torch.from_numpy(expected_segnet_mask(ds.labels[7]))
    flips = 0
    for _ in range(6):
        x, y = ds[7]
        flipped = torch.equal(y, ref_y.flip(-1))
        assert flipped or torch.equal(y, ref_y)
        torch.testing.assert_close(x, ref_x.flip(-1) if flipped else ref_x)
        flips += flipped
    assert 0 < flips < 6


@pytest.mark.parametrize("layout", ["segnet", "colour"])
def test_sequences_come_from_the_file_names(make_camvid, tmp_path, layout):
    root = make_camvid(layout, split="test", n=1, root=tmp_path / layout)  # frame0: no "_"
    rng = np.random.default_rng(0)
    for name in ("0001TP_006690", "Seq05VD_f00000", "Seq05VD_f00030"):
        write_png(root / "test" / f"{name}.png", rng.integers(0, 256, (12, 16, 3)))
        if layout == "segnet":
            write_png(root / "testannot" / f"{name}.png", rng.integers(0, 12, (12, 16)))
        else:
            colour = np.array(CLASS_DICT[0][1:], dtype=np.uint8)
            write_png(root / "test_labels" / f"{name}_L.png", np.tile(colour, (12, 16, 1)))
    ds = CamVid(root, "test")
    assert sorted(ds.sequences) == ["0001TP", "Seq05VD", "Seq05VD", "frame0"]
    assert [s for s, p in zip(ds.sequences, ds.images) if not p.stem.startswith(s)] == []


@pytest.mark.camvid
def test_real_sequences_match_the_split_lists(camvid_dir):
    """Per drive, the frame counts of each split equal those of its list file
    (`test.txt`: lines such as `/SegNet/CamVid/test/0001TP_008550.png ...`)."""
    for split in ("train", "val", "test"):
        lines = (camvid_dir / f"{split}.txt").read_text().split("\n")
        listed = [line.split()[0].rsplit("/", 1)[-1] for line in lines if line.strip()]
        expected = Counter(name[: name.index("_")] for name in listed)
        assert Counter(CamVid(camvid_dir, split).sequences) == expected
    assert set(CamVid(camvid_dir, "test").sequences) == {"0001TP", "Seq05VD"}


def test_a_root_that_is_a_file_is_named_as_a_file(tmp_path):
    root = tmp_path / "CamVid.zip"
    root.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=r"CamVid\.zip is a file, not a folder"):
        CamVid(root, "train")


@pytest.mark.parametrize("folder", ["valannot", "val"])
def test_two_files_for_one_image_are_an_error_naming_both(make_camvid, folder):
    root = make_camvid(split="val", n=2)
    (root / folder / "frame1.jpg").write_bytes((root / folder / "frame1.png").read_bytes())
    with pytest.raises(ValueError, match=r"two files for one image, frame1\.jpg and frame1\.png"):
        CamVid(root, "val")


def test_class_dict_saved_with_a_byte_order_mark_is_read(make_camvid):
    root = make_camvid("colour", n=2, size=(10, 14))
    plain = CamVid(root, "train")
    csv = root / "class_dict.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())  # what Excel's "CSV UTF-8" writes
    bom = CamVid(root, "train")
    assert bom.classes == plain.classes and np.array_equal(bom.palette, plain.palette)
    assert np.array_equal(bom.load_mask(0), plain.load_mask(0))


def test_a_16_bit_greyscale_image_is_scaled_to_8_bits(make_camvid):
    root = make_camvid(split="train", n=1, size=(12, 16))
    grey = np.random.default_rng(0).integers(0, 65536, (12, 16)).astype(np.uint16)
    grey[0, :3] = [0, 257, 65535]
    Image.fromarray(grey).save(root / "train" / "frame0.png")  # a 16-bit PNG
    assert Image.open(root / "train" / "frame0.png").mode.startswith("I")
    image = CamVid(root, "train").load_image(0)  # (H, W, 3) uint8
    want = np.round(grey / 257).astype(np.uint8)  # 0..65535 -> 0..255
    assert image.dtype == np.uint8 and image.shape == (12, 16, 3)
    assert np.array_equal(image, np.repeat(want[..., None], 3, axis=2))
    assert list(image[0, :3, 0]) == [0, 1, 255]
