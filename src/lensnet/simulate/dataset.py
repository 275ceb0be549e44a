"""Simulated datasets on disk: HDF5 files written batch by batch, resumable and byte-reproducible.

Batch ``k`` of a dataset with seed ``s`` and batch size ``b`` holds lenses ``k b`` to ``(k + 1) b - 1``
and is ``LensSimulator.simulate(size_k, batch_seed(s, k))``, so a lens depends only on
(config, seed, batch size, index): an interrupted run continues where it stopped and ends with the
same file, byte for byte, as an uninterrupted one (same library versions and device).

File layout (format ``lensnet-simulated-dataset``, version 1), N lenses of H x W pixels:

- ``images`` (N, H, W), or (N, C, H, W) for C bands, float32: network input
  (:func:`lensnet.preprocess.normalize_images` of the observed images), one compressed chunk per lens;
- ``targets`` (N, 5) float32: true SIE parameters, attributes ``columns`` (:data:`PARAM_NAMES`) and
  ``units``;
- ``masks`` (N, H, W) bool: True where masked;
- ``seeds`` (N,) int64: the batch seed each lens came from;
- ``record/<name>`` (N,): every value the simulator drew (effects, source type and position, ...);
- optional ``observed`` and ``clean`` (shaped as ``images``): the observed image and the noiseless
  lensed image, both in units of the arc peak;
- root attributes: ``format``, ``format_version``, ``lensnet_version``, ``torch_version``,
  ``preset``, ``config`` (JSON of :meth:`SimulationConfig.to_dict`), ``seed``, ``num``,
  ``batch_size``, ``n_pix``, ``pixel_scale`` (arcsec), ``param_names``, ``param_units``,
  ``compression``, ``extras`` (comma-separated names), ``device`` (type: cpu, cuda, ...),
  ``num_finished`` and ``complete``.

Writes go to ``<path>.partial``, renamed to ``<path>`` only once complete; the file is closed after
every batch, so a resumed run repeats exactly the operations of an uninterrupted one. HDF5 object
times are off and compression is deterministic, so a seed reproduces the file's bytes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from lensnet import __version__
from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.errors import LensnetError, LensnetIOError, LensnetRangeError, LensnetValueError
from lensnet.io.atomic import check_writable
from lensnet.io.journal import stop_signals
from lensnet.simulate.config import SimulationConfig, get_preset
from lensnet.simulate.seeds import batch_seed
from lensnet.simulate.simulator import SOURCE_TYPES, LensSimulator, SimulatedBatch

__all__ = ["SimulatedDataset", "write_dataset", "read_dataset", "partial_path", "FORMAT", "EXTRA_ARRAYS"]

FORMAT = "lensnet-simulated-dataset"
FORMAT_VERSION = 1
#: Optional image arrays besides ``images``.
EXTRA_ARRAYS = ("observed", "clean")
_COMPRESSIONS = ("gzip", "lzf", "none")
# Attributes that fix a dataset's content: a resumed run must match them all.
_IDENTITY = ("format_version", "config", "seed", "num", "batch_size", "compression", "extras", "device",
             "cpu_threads")
_DESCRIPTIONS = {
    "images": "network input: lensnet.preprocess.normalize_images(observed, masks)",
    "observed": "observed image in units of the arc peak, masked pixels 0",
    "clean": "noiseless lensed image without PSF, in units of the arc peak",
    "masks": "True where the pixel is masked",
    "seeds": "seed of the batch the lens came from: lensnet.simulate.seeds.batch_seed(seed, index // batch_size)",
}


@dataclass
class SimulatedDataset:
    """A simulated dataset read into memory (see the module docstring for each array's meaning).

    Attributes
    ----------
    path : Path
        The file read.
    config : SimulationConfig
        The configuration it was simulated with.
    seed, batch_size : int
        Dataset seed and batch size (together with ``config`` they fix every lens).
    images : ndarray, (N, H, W) or (N, C, H, W), float32
    targets : ndarray, (N, 5), float32, columns :data:`PARAM_NAMES`
    masks : ndarray of bool, (N, H, W)
    seeds : ndarray of int64, (N,)
    record : dict of (N,) ndarrays
    observed, clean : ndarray or None
        Present when the dataset was written with these extras.
    attrs : dict
        Every root attribute of the file.
    """

    path: Path
    config: SimulationConfig
    seed: int
    batch_size: int
    images: np.ndarray
    targets: np.ndarray
    masks: np.ndarray
    seeds: np.ndarray
    record: dict[str, np.ndarray]
    observed: np.ndarray | None = None
    clean: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def pixel_scale(self) -> float:
        """Arcsec per pixel."""
        return self.config.pixel_scale


def partial_path(path: str | os.PathLike) -> Path:
    """Where an unfinished dataset for ``path`` is kept: ``<path>.partial``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def write_dataset(path: str | os.PathLike, config: SimulationConfig | str, num: int, seed: int,
                  batch_size: int = 64, device=None, overwrite: bool = False, resume: bool = False,
                  progress: bool = True, extras: Sequence[str] = (), compression: str = "gzip") -> Path:
    """Simulate ``num`` lenses and write them to an HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        HDF5 file to write; its folder must exist.
    config : SimulationConfig or str
        Simulation configuration, or a preset name (``paper``, ``hst-acs``, ``tiny``).
    num : int
        Number of lenses, at least 1.
    seed : int
        Dataset seed, at least 0.
    batch_size : int
        Lenses per simulated batch [64]; part of the dataset's identity (batch k has its own seed).
    device : str or torch.device, optional
        Where to simulate [cpu].
    overwrite : bool
        Replace an existing file at ``path`` (only once the new one is complete) and discard an
        unfinished ``<path>.partial`` unless ``resume`` [False].
    resume : bool
        Continue ``<path>.partial`` from its last finished batch; it must have the same config,
        seed, num, batch size, extras, compression and device type. Without a partial file, start
        afresh [False].
    progress : bool
        Show a tqdm progress bar [True].
    extras : sequence of str
        Also store ``observed`` and/or ``clean`` images [none].
    compression : str
        ``gzip`` (level 4, portable), ``lzf`` (faster, h5py only) or ``none`` [gzip]; always with
        the shuffle filter when compressing.

    Returns
    -------
    Path
        ``path``, complete.

    Raises
    ------
    LensnetIOError
        If ``path`` exists without ``overwrite``, an unfinished file exists without ``resume`` or
        ``overwrite``, or a write fails (disk full, ...): the partial file is then kept for ``resume``.
    LensnetValueError
        If a partial file to resume was written with other settings, or an argument is invalid.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = write_dataset(pathlib.Path(tempfile.mkdtemp()) / "set.h5", "tiny", num=4, seed=1, progress=False)
    >>> read_dataset(out).images.shape
    (4, 32, 32)
    """
    path = Path(path)
    partial = partial_path(path)
    config = get_preset(config) if isinstance(config, str) else config
    if not isinstance(config, SimulationConfig):
        raise LensnetValueError(f"config must be a SimulationConfig or a preset name, got {type(config).__name__}")
    identity = _identity(config, num, seed, batch_size, extras, compression)
    # Random streams differ between device types, so a dataset is continued only where it began.
    identity["device"] = torch.device(device or "cpu").type
    # Float reductions on the CPU differ in the last bits between thread counts, and Poisson draws amplify
    # that: a resumed file must be continued with the thread count it was started with.
    identity["cpu_threads"] = torch.get_num_threads() if identity["device"] == "cpu" else 0
    check_writable(path)
    if path.exists() and not overwrite:
        raise LensnetIOError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    if partial.exists():
        if resume:
            _check_resumable(partial, identity)
        elif overwrite:
            partial.unlink()
        else:
            raise LensnetIOError(f"an unfinished dataset {partial} exists; continue it (--resume, resume=True) "
                                 "or start again (--overwrite, overwrite=True)")
    simulator = LensSimulator(config, device=device)
    try:
        if not partial.exists():
            _create(partial, identity, config)
        with h5py.File(partial, "r") as f:
            finished = int(f.attrs["num_finished"])
        n_batches = math.ceil(num / batch_size)
        with (tqdm(total=num, initial=finished, unit="lens", disable=not progress, desc=path.name) as bar,
              stop_signals() as stop):
            for k in range(finished // batch_size, n_batches):
                size = min(batch_size, num - k * batch_size)
                batch = simulator.simulate(size, batch_seed(seed, k))
                _write_batch(partial, batch, k * batch_size, identity)
                bar.update(size)
                stop.check(f"stopped after {k * batch_size + size} of {num} lenses; {partial} is kept: continue "
                           "it with --resume (resume=True)")
        with h5py.File(partial, "r+") as f:
            f.attrs.modify("complete", True)
    except LensnetError:
        raise
    except OSError as exc:
        if not partial.exists():
            raise LensnetIOError(f"cannot write {partial}: {exc}") from None
        raise LensnetIOError(f"writing {partial} failed: {exc}. The unfinished file is kept: fix the cause "
                             "(free disk space, ...) and continue it (--resume on the command line, "
                             "resume=True in Python)") from exc
    os.replace(partial, path)
    return path


def read_dataset(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> SimulatedDataset:
    """Read a complete dataset (or the lenses ``start:stop`` of it) into memory.

    Parameters
    ----------
    path : str or os.PathLike
        File written by :func:`write_dataset`.
    start, stop : int
        Range of lenses to read [all].

    Returns
    -------
    SimulatedDataset

    Raises
    ------
    LensnetIOError
        If the file is missing, not a lensnet dataset, or unfinished (interrupted write).
    """
    path = Path(path)
    if not path.is_file():
        partial = partial_path(path)
        hint = f"; an unfinished {partial} exists: finish it with --resume" if partial.exists() else ""
        raise LensnetIOError(f"dataset not found: {path}{hint}")
    try:
        with h5py.File(path, "r") as f:
            attrs = _attrs(f, path)
            if not attrs["complete"]:
                raise LensnetIOError(f"{path} is an unfinished dataset ({attrs['num_finished']} of {attrs['num']} "
                                     "lenses written); finish it with resume=True (--resume)")
            sel = slice(start, stop)
            arrays = {name: f[name][sel] for name in ("images", "targets", "masks", "seeds", *_split(attrs["extras"]))}
            record = {name: ds[sel] for name, ds in f["record"].items()}
    except LensnetError:
        raise
    except (OSError, KeyError) as exc:
        raise LensnetIOError(f"cannot read dataset {path}: {exc}") from exc
    return SimulatedDataset(path=path, config=SimulationConfig.from_dict(json.loads(attrs["config"])),
                            seed=attrs["seed"], batch_size=attrs["batch_size"], record=record, attrs=attrs, **arrays)


# -- internals ---------------------------------------------------------------------------------------


def _identity(config: SimulationConfig, num, seed, batch_size, extras, compression) -> dict:
    """The root attributes that fix the content, validated."""
    for name, value, lo in (("num", num, 1), ("seed", seed, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise LensnetValueError(f"{name} must be an integer, got {value!r}")
        if value < lo:
            raise LensnetRangeError(name, value, lo, None)
    extras = (extras,) if isinstance(extras, str) else tuple(extras)
    unknown = [e for e in extras if e not in EXTRA_ARRAYS]
    if unknown:
        raise LensnetValueError(f"extras = {list(extras)}: unknown array {unknown[0]!r}; "
                                f"choose from {list(EXTRA_ARRAYS)}")
    if compression not in _COMPRESSIONS:
        raise LensnetValueError(f"compression = {compression!r}: expected one of {list(_COMPRESSIONS)}")
    return {"format_version": FORMAT_VERSION, "config": config.to_json(), "seed": int(seed), "num": int(num),
            "batch_size": int(batch_size), "compression": compression,
            "extras": ",".join(e for e in EXTRA_ARRAYS if e in extras)}


def _create(partial: Path, identity: dict, config: SimulationConfig) -> None:
    with h5py.File(partial, "w") as f:
        a = f.attrs
        a["format"] = FORMAT
        a["lensnet_version"] = __version__
        a["torch_version"] = str(torch.__version__)
        a["preset"] = config.name
        for key, value in identity.items():
            a[key] = value
        a["n_pix"] = config.n_pix
        a["pixel_scale"] = config.pixel_scale
        a["param_names"] = list(PARAM_NAMES)
        a["param_units"] = list(PARAM_UNITS)
        a["num_finished"] = np.int64(0)
        a["complete"] = False


def _check_resumable(partial: Path, identity: dict) -> None:
    try:
        with h5py.File(partial, "r") as f:
            attrs = _attrs(f, partial)
    except LensnetError:
        raise
    except OSError as exc:
        raise LensnetIOError(f"cannot resume {partial}: it is unreadable ({exc}); start again with "
                             "overwrite=True (--overwrite)") from exc
    differ = [key for key in _IDENTITY if attrs.get(key) != identity[key]]
    if not differ:
        return
    details = []
    for key in differ:
        if key == "config":
            fields = _diff(json.loads(attrs["config"]), json.loads(identity["config"]))
            details.append(f"config ({', '.join(fields[:5])}{', ...' if len(fields) > 5 else ''})")
        else:
            details.append(f"{key} ({attrs.get(key)!r} in the file, {identity[key]!r} now)")
    raise LensnetValueError(f"cannot resume {partial}: it was written with a different {'; '.join(details)}; "
                            "rerun with the original settings or start again with overwrite=True (--overwrite)")


def _attrs(f: h5py.File, path: Path) -> dict:
    attrs = {key: _plain(value) for key, value in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        raise LensnetIOError(f"{path} is not a lensnet simulated dataset (no format = {FORMAT!r} attribute)")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise LensnetIOError(f"{path} has dataset format version {attrs.get('format_version')}; this lensnet "
                             f"reads version {FORMAT_VERSION}")
    return attrs


def _write_batch(partial: Path, batch: SimulatedBatch, start: int, identity: dict) -> None:
    """Write one batch at lenses ``start:start + len(batch)`` and record it as finished."""
    arrays = {"images": batch.images, "observed": batch.observed, "clean": batch.clean}
    arrays = {name: arrays[name] for name in ("images", *_split(identity["extras"]))}
    arrays = {name: _numpy(a[:, 0] if a.shape[1] == 1 else a) for name, a in arrays.items()}
    arrays |= {"targets": _numpy(batch.targets), "masks": _numpy(batch.masks[:, 0]), "seeds": _numpy(batch.seeds)}
    record = {name: _numpy(value) for name, value in batch.record.items()}
    stop = start + len(batch)
    with h5py.File(partial, "r+") as f:
        if "images" not in f:
            _create_arrays(f, arrays, record, identity)
        if set(record) != set(f["record"]):
            raise LensnetValueError(f"the simulator's record keys changed between batches: {sorted(record)} now, "
                                    f"{sorted(f['record'])} in {partial}")
        for name, value in arrays.items():
            f[name][start:stop] = value
        for name, value in record.items():
            f["record"][name][start:stop] = value
        f.attrs.modify("num_finished", np.int64(stop))


def _create_arrays(f: h5py.File, arrays: dict, record: dict, identity: dict) -> None:
    """Create every dataset at its full size, shaped and typed after the first batch."""
    num = identity["num"]
    compression = {"none": {}, "lzf": {"compression": "lzf", "shuffle": True},
                   "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True}}[identity["compression"]]
    for name, value in arrays.items():
        per_lens = name not in ("targets", "seeds")
        ds = f.create_dataset(name, (num, *value.shape[1:]), value.dtype, fillvalue=0, track_times=False,
                              chunks=(1, *value.shape[1:]) if per_lens else None, **(compression if per_lens else {}))
        if name in _DESCRIPTIONS:
            ds.attrs["description"] = _DESCRIPTIONS[name]
    f["targets"].attrs["columns"] = list(PARAM_NAMES)
    f["targets"].attrs["units"] = list(PARAM_UNITS)
    group = f.create_group("record")
    for name in sorted(record):
        group.create_dataset(name, (num,), record[name].dtype, fillvalue=0, track_times=False)
    if "source_type" in group:
        group["source_type"].attrs["codes"] = list(SOURCE_TYPES)


def _split(extras: str) -> list[str]:
    return extras.split(",") if extras else []


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _plain(value):
    """HDF5 attribute values as plain Python (lists, str, int, float, bool)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _diff(a, b, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [name for key in sorted(set(a) | set(b))
                for name in _diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [prefix[:-1]] if a != b else []

