"""Atomic writes: the file appears only when the block succeeds, never replaces one by accident."""

import pytest

from lensnet.errors import LensnetIOError
from lensnet.io.atomic import atomic_output


def test_success_moves_the_file_into_place_and_cleans_up(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as tmp:
        assert tmp.name == "out.txt" and tmp.parent != tmp_path
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_exception_inside_leaves_no_file(tmp_path):
    target = tmp_path / "out.fits"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_the_old_file_when_overwriting(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_refuses_to_overwrite_without_flag(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(LensnetIOError, match="overwrite=True"):
        with atomic_output(target):
            pass
    assert target.read_text() == "old"


def test_nothing_written_and_missing_folder_are_errors(tmp_path):
    with pytest.raises(LensnetIOError, match="nothing was written"):
        with atomic_output(tmp_path / "out.txt"):
            pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LensnetIOError, match="does not exist"):
        with atomic_output(tmp_path / "missing" / "out.txt"):
            pass
