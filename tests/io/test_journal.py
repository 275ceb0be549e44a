"""Journals of finished rows, output locks and the stop flag (lensnet.io.journal)."""

import os
import signal
import subprocess
import sys

import pytest

from lensnet.errors import LensnetInterrupted, LensnetIOError, LensnetValueError
from lensnet.io.journal import RowJournal, journal_files, journal_path, output_lock, read_journals, stop_signals

IDENTITY = {"command": "predict", "files": ["a.fits", "b.fits"], "center": [1.5, 2.0]}


def test_records_come_back_and_a_line_cut_off_by_a_kill_is_dropped(tmp_path):
    partial = journal_path(tmp_path / "cat.ecsv")
    assert partial.name == "cat.ecsv.partial"
    journal = RowJournal(partial, IDENTITY)
    journal.append([{"index": 0, "row": {"theta_E": 1.25, "sigma": float("nan")}}])
    with open(partial, "a") as f:
        f.write('{"records": [{"index": 1, "ro')  # killed while writing the second batch
    done = read_journals(partial, IDENTITY, resume=True)
    assert list(done) == [0] and done[0]["row"]["theta_E"] == 1.25 and done[0]["row"]["sigma"] != 0.0
    RowJournal(partial, IDENTITY).append([{"index": 1, "row": {}}])  # the resumed run appends after the good lines
    assert sorted(read_journals(partial, IDENTITY, resume=True)) == [0, 1]


def test_a_journal_is_continued_only_by_the_same_run_and_replaced_only_on_request(tmp_path):
    partial = journal_path(tmp_path / "cat.ecsv")
    RowJournal(partial, IDENTITY).append([{"index": 0}])
    with pytest.raises(LensnetIOError, match="unfinished catalogue .*--resume.*--overwrite"):
        read_journals(partial, IDENTITY)
    with pytest.raises(LensnetValueError, match=r"other settings \(center, files\)"):
        read_journals(partial, {**IDENTITY, "files": ["a.fits"], "center": None}, resume=True)
    assert read_journals(partial, IDENTITY, overwrite=True) == {} and not partial.exists()
    partial.write_text("not json\n")
    with pytest.raises(LensnetIOError, match="not a lensnet partial catalogue"):
        read_journals(partial, IDENTITY, resume=True)


def test_the_journals_of_a_distributed_run_are_read_with_the_others_but_not_its_own(tmp_path):
    partial = journal_path(tmp_path / "cat.ecsv")
    RowJournal(partial, IDENTITY).append([{"index": 0}])
    RowJournal(partial.with_name("cat.ecsv.partial.old.1"), IDENTITY).append([{"index": 1}])
    RowJournal(partial.with_name("cat.ecsv.partial.now.0"), IDENTITY).append([{"index": 2}])
    (tmp_path / "cat.ecsv.partially").write_text("someone else's file")
    assert [p.name for p in journal_files(partial)] == ["cat.ecsv.partial", "cat.ecsv.partial.now.0",
                                                         "cat.ecsv.partial.old.1"]
    assert sorted(read_journals(partial, IDENTITY, resume=True, skip_run="now")) == [0, 1]
    assert sorted(read_journals(partial, IDENTITY, resume=True)) == [0, 1, 2]


def test_a_live_lock_is_refused_and_a_stale_one_taken_over(tmp_path):
    output = tmp_path / "cat.ecsv"
    with output_lock(output) as lock:
        assert lock.read_text().split()[1] == str(os.getpid())
        with pytest.raises(LensnetIOError, match=f"being written by another lensnet run \\(pid {os.getpid()}"):
            with output_lock(output):
                pass
    assert not lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{__import__('socket').gethostname()} {dead.stdout.strip()}\n")  # left by a killed run
    with output_lock(output):
        assert lock.read_text().split()[1] == str(os.getpid())


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_sets_the_flag_and_a_second_one_stops_at_once(how):
    with stop_signals() as stop:
        stop.check("nothing yet")
        os.kill(os.getpid(), how)
        assert stop.signum == how
        with pytest.raises(LensnetInterrupted, match=f"{how.name} received: stopped after 3") as info:
            stop.check("stopped after 3")
        assert info.value.signum == how and isinstance(info.value, KeyboardInterrupt)
        with pytest.raises(LensnetInterrupted, match="twice"):
            os.kill(os.getpid(), how)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
