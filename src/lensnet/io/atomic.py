"""Atomic file output: write to a temporary file beside the target, rename it into place at the end.

Every lensnet writer (FITS images and tables, HDF5 datasets, source banks, PNG figures) goes through
:func:`atomic_output`, so an interrupted or failed write never leaves a partial file under the final
name, and an existing file is replaced only when ``overwrite=True`` is given (as astropy's ``writeto``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lensnet.errors import LensnetIOError

__all__ = ["atomic_output", "check_writable", "output_folder"]


@contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; move it to ``path`` if the block succeeds.

    The temporary file has the same name as ``path`` (so writers that pick the format from the
    suffix still work) inside a fresh hidden directory in the same folder, so the final
    :func:`os.replace` is an atomic rename on the same file system. If the block raises, the
    temporary directory is removed and nothing appears at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name. Its folder must exist.
    overwrite : bool
        Replace an existing file at ``path`` [False].

    Yields
    ------
    pathlib.Path
        Where the block must write the file.

    Raises
    ------
    LensnetIOError
        If ``path`` exists and ``overwrite`` is False, its folder does not exist, or the block
        wrote nothing to the temporary path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_output(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    _check_target(path, overwrite)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    tmp = tmp_dir / path.name
    try:
        yield tmp
        if not tmp.is_file():
            raise LensnetIOError(f"nothing was written for {path}: the temporary file {tmp} is missing")
        # Checked again: another process may have created the file while we were writing.
        _check_target(path, overwrite)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def output_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` for a command's outputs (with its parents) and check it is writable,
    before any work is done: a run must not end in an error about where its results go.

    Raises
    ------
    LensnetIOError
        If ``path`` is a file, cannot be created, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LensnetIOError(f"cannot write results into {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LensnetIOError(f"cannot create the output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise LensnetIOError(f"cannot write results into {path}: the folder is not writable")
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """Check that the file ``path`` can be written (its folder exists and is writable), before any work.

    Raises
    ------
    LensnetIOError
        If the folder is missing or read-only, or ``path`` is a folder.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise LensnetIOError(f"cannot write {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise LensnetIOError(f"cannot write {path}: the folder {path.parent} is not writable")
    if path.is_dir():
        raise LensnetIOError(f"cannot write {path}: it is a folder")
    return path


def _check_target(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise LensnetIOError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise LensnetIOError(f"cannot write {path}: it is a folder")
    if path.exists() and not overwrite:
        raise LensnetIOError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
