"""Catalogues that lose nothing: `predict` and `refine` stopped by SIGINT, SIGTERM or SIGKILL part way and resumed
give the uninterrupted run's catalogue row for row; no worker outlives its parent; a second run on the same output
is refused at its start."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained
from lensnet.io.journal import output_lock
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed

pytestmark = pytest.mark.skipif(DEFAULT_PRETRAINED not in list_pretrained(), reason="needs the shipped model")

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PREDICT = ["predict", "--batch-size", "2", "--no-progress-bar"]
REFINE = ["refine", "--batch-size", "1", "--psf-fwhm", "0.1", "--restarts", "1", "--max-iter", "15", "--no-progress-bar"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Eight simulated hst-acs lenses, 160 x 160 pixels of 0.05" with a celestial WCS, one file each."""
    folder = tmp_path_factory.mktemp("survey")
    observed = LensSimulator(get_preset("hst-acs").for_split("test")).simulate(8, batch_seed(5, 0)).observed
    for i in range(8):
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [35.0, -8.5], [80.5, 80.5]
        w.wcs.cd = [[-0.05 / 3600, 0], [0, 0.05 / 3600]]
        image = (observed[i, 0].double().numpy() + 0.5).astype(np.float32)
        fits.PrimaryHDU(image, header=w.to_header()).writeto(folder / f"lens{i}.fits")
    return folder


def _start(folder, command, output, *extra):
    files = sorted(glob.glob(str(folder / "lens*.fits")))
    files = files[:3] if command[0] == "refine" else files
    return subprocess.Popen([sys.executable, "-m", "lensnet.cli", *command, *files, "-o", str(output), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=folder)


def _run(folder, command, output, *extra):
    proc = _start(folder, command, output, *extra)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def _batches(partial) -> int:
    return partial.read_text().count("\n") - 1 if partial.exists() else 0


def _stop_after_first_batch(proc, partial, how):
    while _batches(partial) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    proc.send_signal(how)
    return proc.communicate(timeout=300)


def _same(a, b):
    a, b = Table.read(a), Table.read(b)
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        if name != "refine_seconds":  # a timing
            assert a[name].tolist() == b[name].tolist(), name


@pytest.fixture(scope="module")
def reference(folder):
    """The uninterrupted catalogues of `predict` and `refine`."""
    _run(folder, PREDICT, folder / "predict.ecsv", "--workers", "0")
    _run(folder, REFINE, folder / "refine.ecsv")
    return {"predict": folder / "predict.ecsv", "refine": folder / "refine.ecsv"}


@pytest.mark.parametrize("command, how, workers", [(PREDICT, signal.SIGTERM, "2"), (REFINE, signal.SIGINT, None)])
def test_a_stopped_run_says_how_to_resume_and_resumes_to_the_same_catalogue(folder, reference, tmp_path, command, how,
                                                                             workers):
    output = tmp_path / "cat.ecsv"
    partial = tmp_path / "cat.ecsv.partial"
    extra = () if workers is None else ("--workers", workers)
    proc = _start(folder, command, output, *extra)
    _, err = _stop_after_first_batch(proc, partial, how)
    assert proc.returncode == 128 + how, err[-3000:]
    assert f"{how.name} received: stopped after" in err and "continue with --resume" in err
    assert not output.exists() and not (tmp_path / "cat.ecsv.lock").exists()
    done = _batches(partial)
    assert 1 <= done < (4 if command is PREDICT else 3)
    result = subprocess.run([sys.executable, "-m", "lensnet.cli", *command, str(folder / "lens0.fits"), "-o",
                             str(output)], capture_output=True, text=True, env=ENV)
    assert result.returncode == 2 and "unfinished catalogue" in result.stderr and "--resume" in result.stderr
    _run(folder, command, output, *extra, "--resume")
    _same(reference[command[0]], output)
    assert not partial.exists()
    if command is PREDICT:
        with fits.open(output.with_name("cat_masks.fits")) as a, fits.open(folder / "predict_masks.fits") as b:
            assert len(a) == len(b) == 9 and all(np.array_equal(x.data, y.data) for x, y in zip(a[1:], b[1:]))


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_leaves_no_worker_and_loses_at_most_the_batch_in_flight(folder, reference, tmp_path):
    output = tmp_path / "cat.ecsv"
    proc = _start(folder, PREDICT, output, "--workers", "2")
    while _batches(tmp_path / "cat.ecsv.partial") < 1 or not _children(proc.pid):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    workers = _children(proc.pid)
    proc.kill()
    proc.communicate()
    deadline = time.time() + 5
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))
    out = _run(folder, PREDICT, output, "--workers", "2", "--resume")  # the lock the killed run left is taken over
    assert "wrote" in out
    _same(reference["predict"], output)


def test_a_second_run_on_the_same_output_is_refused_at_its_start(folder, tmp_path):
    output = tmp_path / "cat.ecsv"
    with output_lock(output):  # this process is writing cat.ecsv
        second = subprocess.run([sys.executable, "-m", "lensnet.cli", *PREDICT, str(folder / "lens0.fits"), "-o",
                                 str(output)], capture_output=True, text=True, env=ENV)
    assert second.returncode == 2 and "being written by another lensnet run" in second.stderr
    assert f"pid {os.getpid()}" in second.stderr and not output.exists()


def test_refine_on_two_processes_gives_the_catalogue_of_one(folder, reference, tmp_path):
    output = tmp_path / "two.ecsv"
    _run(folder, REFINE, output, "--devices", "2")
    _same(reference["refine"], output)
    assert not list(tmp_path.glob("two.ecsv.*"))  # no journal or lock left
