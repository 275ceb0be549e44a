"""HDF5 datasets: layout, byte reproducibility, interrupted and resumed writes, errors, and the CLI."""

import errno
import hashlib
import os
import signal

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lensnet.cli import cli, main
from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetIOError, LensnetRangeError, LensnetValueError
from lensnet.simulate import LensSimulator, SimulationConfig, get_preset
from lensnet.simulate.dataset import partial_path, read_dataset, write_dataset
from lensnet.simulate.seeds import batch_seed

# The tiny preset with analytic sources only: no real-galaxy bank to load, so each write takes ~0.2 s.
FAST = SimulationConfig.from_dict({"name": "tiny-analytic", "source": {"fractions": [0.0, 0.5, 0.5]}},
                                  base=get_preset("tiny"))
NUM, BATCH, SEED = 5, 2, 11


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path, **kwargs):
    args = {"config": FAST, "num": NUM, "seed": SEED, "batch_size": BATCH, "progress": False} | kwargs
    return write_dataset(path, **args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted dataset, written once for the module."""
    return _write(tmp_path_factory.mktemp("ref") / "set.h5", extras=("observed",))


def test_layout_shapes_and_attributes(reference):
    data = read_dataset(reference)
    n = FAST.n_pix
    assert len(data) == NUM and data.images.shape == (NUM, n, n) and data.images.dtype == np.float32
    assert data.observed.shape == (NUM, n, n) and data.clean is None
    assert data.masks.shape == (NUM, n, n) and data.masks.dtype == bool
    assert data.targets.shape == (NUM, 5) and data.targets.dtype == np.float32
    assert data.config == FAST and data.seed == SEED and data.batch_size == BATCH
    assert data.pixel_scale == FAST.pixel_scale
    a = data.attrs
    assert a["complete"] and a["num_finished"] == NUM and a["num"] == NUM and a["preset"] == "tiny-analytic"
    assert a["param_names"] == list(PARAM_NAMES) and a["format_version"] == 1 and a["extras"] == "observed"
    with h5py.File(reference) as f:
        assert list(f["targets"].attrs["columns"]) == list(PARAM_NAMES)
        assert list(f["targets"].attrs["units"]) == list(PARAM_UNITS)
        assert f["images"].chunks == (1, n, n) and f["images"].compression == "gzip" and f["images"].shuffle
    assert not partial_path(reference).exists()


def test_each_lens_is_reproduced_from_its_batch_seed(reference):
    data = read_dataset(reference, start=2, stop=4)  # batch 1
    seed = batch_seed(SEED, 1)
    assert (data.seeds == seed).all()
    batch = LensSimulator(FAST).simulate(BATCH, seed)
    np.testing.assert_array_equal(data.images, batch.images[:, 0].numpy())
    np.testing.assert_array_equal(data.observed, batch.observed[:, 0].numpy())
    np.testing.assert_array_equal(data.targets, batch.targets.numpy())
    assert set(data.record) == set(batch.record)
    np.testing.assert_array_equal(data.record["noise_rms"], batch.record["noise_rms"].numpy())
    np.testing.assert_array_equal(data.record["n_cosmic_rays"], batch.record["n_cosmic_rays"].numpy())


def test_same_seed_same_bytes_other_seed_other_data(reference, tmp_path):
    again = _write(tmp_path / "again.h5", extras=("observed",))
    assert _sha(again) == _sha(reference)
    other = read_dataset(_write(tmp_path / "other.h5", seed=SEED + 1))
    assert not np.array_equal(other.targets, read_dataset(reference).targets)


def test_interrupted_write_leaves_a_partial_file_that_resumes_to_the_same_bytes(reference, tmp_path, monkeypatch):
    path = tmp_path / "set.h5"
    calls, simulate = [], LensSimulator.simulate

    def interrupt_second_batch(self, batch_size, seed):
        calls.append(seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return simulate(self, batch_size, seed)

    monkeypatch.setattr(LensSimulator, "simulate", interrupt_second_batch)
    with pytest.raises(KeyboardInterrupt):
        _write(path, extras=("observed",))
    monkeypatch.setattr(LensSimulator, "simulate", simulate)
    assert [p.name for p in tmp_path.iterdir()] == ["set.h5.partial"]
    with pytest.raises(LensnetIOError, match="unfinished .*--resume"):
        read_dataset(path)
    with pytest.raises(LensnetIOError, match=r"unfinished dataset \(2 of 5 lenses"):
        read_dataset(partial_path(path))
    with pytest.raises(LensnetIOError, match="--resume.*--overwrite"):
        _write(path, extras=("observed",))
    with pytest.raises(LensnetValueError, match=r"different seed \(11 in the file, 12 now\)"):
        _write(path, extras=("observed",), seed=SEED + 1, resume=True)
    other = SimulationConfig.from_dict({"observation": {"bias": {"std": 0.1}}}, base=FAST)
    with pytest.raises(LensnetValueError, match=r"different config \(observation.bias.std\)"):
        _write(path, config=other, extras=("observed",), resume=True)
    _write(path, extras=("observed",), resume=True)
    assert not partial_path(path).exists()
    assert _sha(path) == _sha(reference)


def test_disk_full_is_reported_and_the_partial_file_kept(reference, tmp_path, monkeypatch):
    path = tmp_path / "set.h5"
    setitem = h5py.Dataset.__setitem__

    def full_after_first_batch(self, key, value):
        if isinstance(key, slice) and key.start and key.start >= BATCH:
            raise OSError(errno.ENOSPC, "No space left on device")
        setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full_after_first_batch)
    with pytest.raises(LensnetIOError, match=r"set\.h5\.partial failed: .*No space left.*resume") as info:
        _write(path, extras=("observed",))
    assert info.value.__cause__.errno == errno.ENOSPC
    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    assert partial_path(path).exists() and not path.exists()
    assert _sha(_write(path, extras=("observed",), resume=True)) == _sha(reference)


def test_existing_files_are_replaced_only_with_overwrite(reference, tmp_path):
    path = tmp_path / "set.h5"
    path.write_bytes(b"old")
    with pytest.raises(LensnetIOError, match="already exists"):
        _write(path)
    _write(path, num=2, overwrite=True)
    assert len(read_dataset(path)) == 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num": 0}, LensnetRangeError, "num"),
    ({"seed": -1}, LensnetRangeError, "seed"),
    ({"batch_size": 1.5}, LensnetValueError, "batch_size must be an integer"),
    ({"extras": ("noisy",)}, LensnetValueError, "unknown array 'noisy'"),
    ({"compression": "bz2"}, LensnetValueError, "compression"),
    ({"config": "huge"}, LensnetValueError, "unknown preset 'huge'"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        _write(tmp_path / "set.h5", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_reading_other_files_fails_clearly(tmp_path):
    with pytest.raises(LensnetIOError, match="not found"):
        read_dataset(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(LensnetIOError, match="not a lensnet simulated dataset"):
        read_dataset(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(LensnetIOError, match="cannot read dataset"):
        read_dataset(tmp_path / "text.h5")


def test_cli_writes_a_dataset_and_its_gallery_with_the_tiny_preset(tmp_path):
    out = tmp_path / "set.h5"
    args = ["simulate", "--preset", "tiny", "--num", "3", "--seed", "7", "--batch-size", "2", "--device", "cpu",
            "--output", str(out), "--no-progress-bar", "--gallery", str(tmp_path / "g.png")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 lenses" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g_effects.png", "set.h5"]
    data = read_dataset(out)
    assert data.images.shape == (3, 32, 32) and data.config == get_preset("tiny") and data.seed == 7
    assert np.isfinite(data.images).all() and torch.equal(torch.from_numpy(data.seeds[:2]),
                                                          torch.full((2,), batch_seed(7, 0)))


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lens:\n  theta_E_rnge: [0.5, 1.0]\n")
    for args, message in ((["--preset", "huge"], "'huge' is not one of 'paper', 'hst-acs', 'tiny'"),
                          (["--config", str(bad)], f"{bad}: unknown field lens.theta_E_rnge (did you mean "
                                                   "lens.theta_E_range?)"),
                          (["--seed", "-3"], "seed = -3")):
        with pytest.raises(SystemExit) as info:
            main(["simulate", "--num", "2", "--output", str(tmp_path / "x.h5"), *args])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and "Traceback" not in err
    result = CliRunner().invoke(cli, ["simulate", "--preset", "tiny"])
    assert result.exit_code == 2 and "--output" in result.output


def test_cli_prints_the_resolved_config(tmp_path):
    cfg = tmp_path / "sim.toml"
    cfg.write_text('preset = "tiny"\nn_pix = 40\n[observation.bias]\nstd = 0.2\n')
    result = CliRunner().invoke(cli, ["simulate", "--config", str(cfg), "--print-config"])
    assert result.exit_code == 0, result.output
    assert "n_pix: 40" in result.output and "std: 0.2" in result.output and "name: tiny" in result.output


def test_resume_refuses_another_thread_count(tmp_path):
    path = tmp_path / "set.h5"
    threads = torch.get_num_threads()
    with pytest.raises(KeyboardInterrupt):
        _interrupt_after_first_batch(path)
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(LensnetValueError, match="cpu_threads"):
            write_dataset(path, "tiny", num=8, seed=1, batch_size=4, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert write_dataset(path, "tiny", num=8, seed=1, batch_size=4, resume=True, progress=False) == path


def _interrupt_after_first_batch(path):
    """Ctrl-C while the first of two batches is simulated: the run stops after writing it."""
    import lensnet.simulate.dataset as dataset

    real = dataset.LensSimulator.simulate

    def simulate_then_ctrl_c(self, *args, **kwargs):
        batch = real(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return batch

    dataset.LensSimulator.simulate = simulate_then_ctrl_c
    try:
        write_dataset(path, "tiny", num=8, seed=1, batch_size=4, progress=False)
    finally:
        dataset.LensSimulator.simulate = real


def test_ctrl_c_stops_after_the_batch_and_keeps_the_partial_file(tmp_path):
    path = tmp_path / "set.h5"
    for _ in range(5):  # every time, not half of the time
        with pytest.raises(KeyboardInterrupt):
            _interrupt_after_first_batch(path)
        with h5py.File(partial_path(path)) as f:
            assert int(f.attrs["num_finished"]) == 4
        partial_path(path).unlink()
