"""Long runs that lose nothing: results appended as they finish, one writer per output, clean stops.

- :class:`RowJournal`: the finished records of a catalogue (``lensnet predict``, ``lensnet refine``)
  appended to ``<catalogue>.partial`` one batch per line (JSON, flushed and fsynced), so an interrupted
  run keeps all but the batch in flight, and :func:`read_journals` gives a resumed run what is done. The
  first line records what the run computes (files, options, model); a run with other settings is refused
  instead of mixed in.
- :func:`output_lock`: ``<output>.lock`` holding the owner's host and pid, taken before any work, so a
  second run writing the same output is refused at its start, not at its end; a lock whose process is
  gone is taken over.
- :func:`stop_signals`: SIGINT (Ctrl-C) and SIGTERM set a flag that a loop checks between batches
  (raising :class:`~lensnet.errors.LensnetInterrupted` there, exit status 130 or 143 on the command
  line); a second signal stops at once.
- :func:`worker_init`: DataLoader workers ignore Ctrl-C (the parent decides when to stop) and die with
  their parent, even when it is killed with SIGKILL (Linux's parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from lensnet.errors import LensnetInterrupted, LensnetIOError, LensnetValueError

__all__ = ["RowJournal", "StopFlag", "journal_files", "journal_path", "output_lock", "read_journals", "stop_signals",
           "worker_init"]

FORMAT = "lensnet-partial-catalogue"
FORMAT_VERSION = 1


def journal_path(catalog: str | os.PathLike) -> Path:
    """Where the finished rows of an unfinished ``catalog`` are kept: ``<catalog>.partial`` (and, written by the
    processes of a distributed run, ``<catalog>.partial.<run>.<rank>``)."""
    catalog = Path(catalog)
    return catalog.with_name(catalog.name + ".partial")


def journal_files(partial: str | os.PathLike) -> list[Path]:
    """The journal ``partial`` and those of a distributed run beside it (``<partial>.<run>.<rank>``)."""
    partial = Path(partial)
    return sorted(p for p in partial.parent.glob(glob.escape(partial.name) + "*")
                  if p.name == partial.name or p.name.startswith(partial.name + "."))


def read_journals(partial: str | os.PathLike, identity: dict, *, resume: bool = False, overwrite: bool = False,
                  skip_run: str | None = None) -> dict[int, dict]:
    """The records that earlier runs left in ``partial`` and its distributed siblings (:func:`journal_files`),
    by index; those of the run ``skip_run`` (this one's other processes) are left out.

    Raises
    ------
    LensnetIOError
        If journals exist without ``resume`` (unless ``overwrite``: they are removed) or cannot be read.
    LensnetValueError
        If a journal was written by a run with other settings (the message names them).
    """
    own = f"{Path(partial).name}.{skip_run}." if skip_run else None
    files = [f for f in journal_files(partial) if own is None or not f.name.startswith(own)]
    if files and not resume:
        if not overwrite:
            raise LensnetIOError(f"an unfinished catalogue {files[0]} exists: continue it (--resume, resume=True) or "
                                 "start again (--overwrite, overwrite=True)")
        for f in files:
            f.unlink(missing_ok=True)
        return {}
    done: dict[int, dict] = {}
    for f in files:
        done.update(_read(f, json.loads(json.dumps(identity))))
    return done


class RowJournal:
    """Records (JSON-serialisable dicts with an integer ``index``) appended batch by batch to a file.

    The first line records ``identity``, what the run computes (:func:`read_journals` checks it); each
    further line holds the records of one finished batch. An existing file (a run being resumed, already
    read) is appended to after its last complete line.

    Raises
    ------
    LensnetIOError
        If the file cannot be written.
    """

    def __init__(self, path: str | os.PathLike, identity: dict):
        self.path = Path(path)
        if not self.path.exists():
            self._append({"format": FORMAT, "format_version": FORMAT_VERSION, "identity": identity})

    def append(self, records: list[dict]) -> None:
        """Add the records of one finished batch, on disk before this returns."""
        self._append({"records": records})

    def _append(self, entry: dict) -> None:
        line = json.dumps(entry, allow_nan=True) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise LensnetIOError(f"cannot write the partial catalogue {self.path}: {exc.strerror or exc}. The rows "
                                 "already in it are kept: fix the cause (free disk space, ...) and continue (--resume, "
                                 "resume=True)") from exc


def _read(path: Path, identity: dict) -> dict[int, dict]:
    """The records of one journal by index; a last line cut off by a kill is dropped from the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LensnetIOError(f"cannot read the partial catalogue {path}: {exc}") from exc
    entries, good = [], 0
    for line in text.split("\n")[:-1]:  # the text after the last newline is a line whose write was cut off
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break
        good += len(line.encode("utf-8")) + 1
    header = entries[0] if entries else {}
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise LensnetIOError(f"{path} is not a lensnet partial catalogue ({FORMAT} {FORMAT_VERSION}): remove it, "
                             "or start again with --overwrite")
    if header["identity"] != identity:
        differ = sorted(k for k in set(header["identity"]) | set(identity)
                        if header["identity"].get(k) != identity.get(k))
        raise LensnetValueError(f"the partial catalogue {path} was written with other settings ({', '.join(differ)}): "
                                "resume it with the same command, or start again (--overwrite)")
    if good < len(text.encode("utf-8")):
        with open(path, "r+b") as f:
            f.truncate(good)
    return {int(r["index"]): r for entry in entries[1:] for r in entry["records"]}


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<path>.lock`` while ``path`` is being computed: another run on the same output is refused.

    The lock file holds ``host pid``; a lock left by a process that no longer runs on this host (killed
    with SIGKILL, a crashed machine's same host name aside) is taken over.

    Raises
    ------
    LensnetIOError
        If another live process holds the lock, or the lock cannot be created.
    """
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None:
                raise LensnetIOError(f"{path} is being written by another lensnet run ({owner}; lock file {lock}): "
                                     "wait for it, or remove the lock file if that run is gone") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        except OSError as exc:
            raise LensnetIOError(f"cannot create the lock file {lock}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        break
    else:
        raise LensnetIOError(f"cannot take the lock file {lock}: another run keeps creating it")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text().strip() == me:
                lock.unlink()


def _lock_owner(lock: Path) -> str | None:
    """'host H, pid P' of a lock's live owner; None if the lock is stale (its process gone) or unreadable."""
    try:
        host, pid = lock.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return f"host {host}, pid {pid}"  # cannot be checked from here: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return f"pid {pid}"


class StopFlag:
    """Set by SIGINT or SIGTERM inside :func:`stop_signals`; ``signum`` is the signal, or None."""

    def __init__(self):
        self.signum: int | None = None

    def check(self, message: str) -> None:
        """Raise :class:`LensnetInterrupted` with ``message`` if a signal arrived."""
        if self.signum is not None:
            name = signal.Signals(self.signum).name
            raise LensnetInterrupted(self.signum, f"{name} received: {message}")


@contextlib.contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """Turn SIGINT and SIGTERM into a :class:`StopFlag` the caller checks between batches.

    A signal raised wherever Python happens to be can be swallowed by a finaliser or a library callback,
    or cut a write in half; the flag lets the loop finish or drop its batch cleanly. A second signal
    raises :class:`LensnetInterrupted` at once. Outside the main thread nothing is installed.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum is not None:
            raise LensnetInterrupted(signum, f"{signal.Signals(signum).name} received twice: stopped at once")
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of lensnet's DataLoaders: ignore Ctrl-C, die with the parent process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
