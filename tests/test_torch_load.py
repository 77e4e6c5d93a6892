"""seglib.torch_load: an unreadable file is one line naming the file and the problem."""

from __future__ import annotations

import pytest

from seglib.torch_load import UnreadableFileError, load_torch_file
from tests.helpers import (
    bad_files,
)


@pytest.mark.parametrize("kind", ["empty", "garbage", "pickled"])
def test_load_torch_file_names_the_file_and_the_problem(tmp_path, kind):
    path = bad_files(tmp_path)[kind]
    with pytest.raises(UnreadableFileError, match=path.name) as info:
        load_torch_file(path, "backbone weights file")
    assert "weights_only=False" not in str(info.value)
    assert "\n" not in str(info.value)
    if kind == "empty":
        assert "empty" in str(info.value)
