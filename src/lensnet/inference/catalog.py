"""From FITS files to a catalogue: every image read, brought to the model's grid and estimated, one row each.

:func:`predict_fits` (also ``LensPredictor.predict_fits`` and ``lensnet predict``) streams the files
through a :class:`torch.utils.data.DataLoader`, whose workers read and prepare the next images
(:func:`lensnet.preprocess.real.prepare_image`) while the network estimates the current batch. A file
that cannot be used (not FITS, truncated, no pixel scale, all NaN, a cube, a centre off the image, too
small for the field) gets a row with its reason in the ``error`` column and NaN estimates; the others
go on.

Columns, per lens: ``file``, ``hdu``; for each parameter of :data:`lensnet.PARAM_NAMES` (theta_E,
e1, e2, center_x, center_y, in lensnet's convention: arcsec, x along columns and y along rows of the
input image, relative to the requested centre) the estimate, ``<p>_sigma`` (1-sigma) and the 95%
interval ``<p>_lo95``, ``<p>_hi95`` (estimate -+ z95 sigma: 1.96 for a Gaussian, the width the model's
calibration measured where its card has one); ``q`` and ``phi`` (degrees, counter-clockwise from +x)
from (e1, e2); ``pa``, the same axis's position angle east of north (degrees, 0-180), and ``ra``, ``dec`` of
the lens centre, when the input has a celestial WCS (rotated and flipped ones too); ``ood_score``, the
probability that the image is not a lens like those the network was trained on, and ``ood``, True where it
exceeds the model's threshold (:mod:`lensnet.inference.ood`; NaN and False for a model without the head,
and for files that could not be read); how the input was
prepared (``pixel_scale_in``, ``coverage``, ``background``, ``noise_rms``, ``n_masked``, ``cosmic_rays``,
``n_neighbours``); ``model``, ``lensnet_version``; ``error``.
"""

from __future__ import annotations

import base64
import dataclasses
import glob
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from lensnet import __version__
from lensnet.conventions import PARAM_NAMES, PARAM_UNITS, e1e2_to_qphi, qphi_to_e1e2
from lensnet.errors import LensnetError, LensnetIOError, LensnetValueError
from lensnet.io.atomic import atomic_output, check_writable
from lensnet.io.fits import EXPOSURE_NAMES, read_image_with_extensions, write_hdulist, write_table
from lensnet.io.journal import RowJournal, read_journals, stop_signals, worker_init
from lensnet.preprocess.real import (ModelGrid, celestial_wcs, header_pixel_scale, holds_cosmic_rays, prepare_image,
                                     read_fits_image)

__all__ = ["FITS_SUFFIXES", "CATALOG_FORMATS", "BatchEstimator", "FitsInputs", "catalog_table", "check_batching", "estimate_items",
           "find_fits", "fits_inputs", "most_certain", "predict_fits", "run_batches", "run_identity", "write_catalog",
           "write_lenstronomy", "write_masks"]

#: File names taken from a folder.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
#: Catalogue formats by file extension (astropy's writers).
CATALOG_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits"}
#: Half-width of the Gaussian 95% interval in units of sigma.
Z95 = 1.959963984540054


def find_fits(specs: Sequence[str | Path]) -> list[Path]:
    """The FITS files that ``specs`` name: files, folders (their FITS files, sorted) and glob patterns.

    Raises
    ------
    LensnetIOError
        If a spec names nothing, or no file is found at all.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES))
        elif path.exists():
            found.append(path)
        elif any(ch in str(spec) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
            if not matches:
                raise LensnetIOError(f"no file matches {spec!r}")
            found += matches
        else:
            raise LensnetIOError(f"{spec} does not exist")
    if not found:
        raise LensnetIOError(f"no FITS file found in {', '.join(map(str, specs))}")
    return list(dict.fromkeys(found))


@dataclass
class FitsInputs(Dataset):
    """The files of one catalogue, read and prepared on demand (in DataLoader workers).

    Item i is ``(i, image (1, n, n) float32 or None, mask (1, n, n) bool or None, info dict)``; ``info``
    holds the preparation's numbers, or ``error`` with the reason the file cannot be used.
    """

    paths: Sequence[Path]
    grid: ModelGrid
    hdu: int | str | None = None
    plane: int | None = None
    pixel_scale: float | None = None
    center: tuple[float, float] | None = None
    sky_center: tuple[float, float] | None = None
    mask: np.ndarray | None = None
    cosmic_rays: bool | None = None
    keep_neighbours: bool = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        info = {"file": str(path), "hdu": "" if self.hdu is None else str(self.hdu)}
        try:
            # The exposure map is read only where it decides whether to look for cosmic rays.
            names = ("MASK",) + (EXPOSURE_NAMES if self.cosmic_rays is None else ())
            data, header, where, extensions = read_image_with_extensions(path, self.hdu, names, self.plane)
            info["hdu"] = where[len(str(path)) + 1:-1]  # the HDU read, by name where it has one
            wcs = celestial_wcs(header)
            scale = self.pixel_scale or header_pixel_scale(header, where, wcs)
            own = extensions["MASK"] != 0 if "MASK" in extensions else None  # a deblended file's MASK
            mask = own if self.mask is None else (self.mask if own is None or own.shape != self.mask.shape
                                                  else self.mask | own)
            sky = None if self.sky_center is None else SkyCoord(*self.sky_center, unit="deg")
            exposure = next((extensions[n] for n in EXPOSURE_NAMES if n in extensions), None)
            cosmic_rays = holds_cosmic_rays(header, exposure) if self.cosmic_rays is None else self.cosmic_rays
            info["cosmic_rays"] = cosmic_rays
            # One seed for every file: a file gets the same padding and matched noise wherever it stands in the list.
            prepared = prepare_image(data, self.grid, scale, center=self.center, sky_center=sky, wcs=wcs, mask=mask,
                                     cosmic_rays=cosmic_rays, neighbours=not self.keep_neighbours, seed=0,
                                     where=where)
        except LensnetError as exc:
            return i, None, None, {**info, "error": str(exc)}
        info.update(pixel_scale_in=prepared.pixel_scale_in, coverage=prepared.coverage, background=prepared.background,
                    noise_rms=prepared.noise_rms, grid_noise_rms=prepared.grid_noise_rms,
                    n_masked=int(prepared.mask.sum()), n_neighbours=prepared.n_neighbours,
                    noise_correlation=prepared.noise_correlation, noise_match=prepared.noise_match, error="",
                    prepared=dataclasses.replace(prepared, image=None, mask=None))  # the arrays travel as tensors
        return (i, torch.from_numpy(prepared.image)[None], torch.from_numpy(prepared.mask)[None], info)


def predict_fits(predictor, paths: Sequence[str | Path], *, hdu: int | str | None = None,
                 plane: int | None = None, pixel_scale: float | None = None, center: tuple[float, float] | None = None,
                 sky_center: tuple[float, float] | None = None, mask: str | Path | None = None,
                 cosmic_rays: bool | None = None, keep_neighbours: bool = False, batch_size: int = 64,
                 num_workers: int = 0, symmetrize: bool = False,
                 progress: bool = True, masks: str | Path | None = None, partial: str | Path | None = None,
                 resume: bool = False, overwrite: bool = False) -> Table:
    """Estimate the lens parameters of FITS images; one catalogue row per file (see the module docstring).

    Parameters
    ----------
    predictor : LensPredictor
        The model; its card gives the grid the images are brought to.
    paths : sequence of str or Path
        Files, folders or glob patterns (:func:`find_fits`).
    hdu : int, str or None
        HDU of each file, index or EXTNAME [None: the HDU named SCI (or FLUX, *_FLUX), else the first holding an
        image that is not a noise, weight, PSF, mask or DQ map]; the catalogue's ``hdu`` column says which.
    plane : int, optional
        The plane of each file's image cube (N, H, W) [none: 2-D images; axes of length 1 are dropped].
    pixel_scale : float, optional
        arcsec/pixel of every input, overriding their headers [from the WCS, else a PIXSCALE keyword].
    center : (float, float), optional
        Cutout centre (x, y) in 0-based pixels of every file [each image's centre].
    sky_center : (float, float), optional
        Cutout centre (RA, Dec) in degrees instead; needs a celestial WCS.
    mask : str or Path, optional
        FITS image, non-zero where pixels must be ignored, of the inputs' shape; a file's own ``MASK`` HDU
        (as ``lensnet deblend`` writes) is applied too.
    cosmic_rays : bool or None
        Mask cosmic rays found by L.A.Cosmic (astroscrappy) [None: where neither the header nor an exposure map
        says the image combines several exposures, :func:`~lensnet.preprocess.real.holds_cosmic_rays`]; the
        ``cosmic_rays`` column says whether it ran.
    keep_neighbours : bool
        Leave the objects that are not part of the lens system unmasked [False: companions, stars and foreground
        galaxies are found and masked, :mod:`lensnet.preprocess.neighbours`; ``n_neighbours`` counts them].
    batch_size : int
        Images per forward pass [64].
    num_workers : int
        DataLoader workers reading and preparing files while the network runs [0: in this process].
    symmetrize : bool
        Average over the 8 rotations and reflections of each image [False].
    progress : bool
        Show a progress bar [True].
    masks : str or Path, optional
        Also write the pixels each estimate left out to this FITS file (:func:`write_masks`) [not written].
    partial : str or Path, optional
        Append each finished batch to this partial catalogue (:class:`~lensnet.io.journal.RowJournal`,
        usually ``<catalogue>.partial``), so an interrupted run loses at most the batch in flight [none].
    resume : bool
        Continue ``partial``: its files are not estimated again, and the table equals an uninterrupted
        run's, row for row [False].
    overwrite : bool
        Discard an existing ``partial`` and start again [False: an existing one is an error without ``resume``].

    Returns
    -------
    astropy.table.Table
        One row per file, in the order of the files; ``meta`` records the model and the conventions.

    Raises
    ------
    LensnetInterrupted
        On SIGINT or SIGTERM, after the batch in flight (kept in ``partial``).
    """
    dataset = fits_inputs(predictor, paths, hdu=hdu, plane=plane, pixel_scale=pixel_scale, center=center,
                          sky_center=sky_center, mask=mask, cosmic_rays=cosmic_rays, keep_neighbours=keep_neighbours)
    check_batching(batch_size, num_workers)
    identity = run_identity("predict", predictor, dataset, mask=mask, symmetrize=symmetrize, batch_size=batch_size)

    done = run_batches(dataset, BatchEstimator(predictor, symmetrize), partial, identity, resume=resume, overwrite=overwrite, batch_size=batch_size,
                       num_workers=num_workers, progress=progress, desc="estimating")
    if masks is not None:
        n = dataset.grid.n_pix
        write_masks([(r["index"], r["row"], _unpacked(r["mask"], n)) for r in done if r["mask"] is not None], masks,
                    dataset.grid.pixel_scale)
    return catalog_table([r["row"] for r in done], predictor.card)


def most_certain(predictor, paths: Sequence[str | Path], **options) -> tuple[int, Table]:
    """Of several images of one lens (its arcs deblended two ways), the one whose θE the network is surest of.

    Every file is estimated (:func:`predict_fits`, same ``options``); the index of the smallest ``theta_E_sigma``
    among the files that could be read, and the table of all, are returned. On 200 two-band test lenses
    (``python benchmarks/bench_deblend.py --num 200``) the estimate kept of ICA's arcs and the Sérsic fit's has θE
    68% errors of 0.049" where ICA's alone give 0.086" and the Sérsic fit's 0.096".

    Raises
    ------
    LensnetValueError
        If no file could be estimated (the reasons named).
    """
    table = predict_fits(predictor, paths, progress=False, **options)
    sigma = np.array([math.inf if row["error"] else float(row["theta_E_sigma"]) for row in table])
    if not np.isfinite(sigma).any():
        raise LensnetValueError("no image could be estimated: " + "; ".join(f"{row['file']}: {row['error']}"
                                                                             for row in table))
    return int(np.argmin(sigma)), table


class BatchEstimator:
    """A batch of :class:`FitsInputs` items to the network's records ``{"index", "row", "mask"}`` (its catalogue row
    and the pixels it left out, packed bits; None for a file that could not be read)."""

    def __init__(self, predictor, symmetrize: bool = False):
        self.predictor, self.symmetrize = predictor, symmetrize

    def __call__(self, items: list) -> list[dict]:
        rows = estimate_items(self.predictor, items, self.symmetrize)
        masks = {i: _packed(m[0].numpy()) for i, image, m, _ in items if image is not None}
        return [{"index": row["index"], "row": row, "mask": masks.get(row["index"])} for row in rows]


def check_batching(batch_size, num_workers) -> None:
    """Raise :class:`LensnetValueError` unless ``batch_size`` >= 1 and ``num_workers`` >= 0 are integers."""
    for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise LensnetValueError(f"{name} = {value!r} (--{name.replace('_', '-').replace('num-', '')}): "
                                    f"expected an integer >= {low}")


def run_identity(command: str, predictor, dataset: "FitsInputs", **options) -> dict:
    """What a catalogue run computes (its files, model and options): a resumed run must match it."""
    fields = ("hdu", "plane", "pixel_scale", "center", "sky_center", "cosmic_rays", "keep_neighbours")
    card = predictor.card
    return {"command": command, "files": [str(p) for p in dataset.paths],
            "model": [card.get("name", "?"), (card.get("weights") or {}).get("sha256", "")],
            **{f: getattr(dataset, f) for f in fields}, **{k: None if v is None else _jsonable(v)
                                                          for k, v in options.items()}}


def run_batches(dataset: "FitsInputs", records, partial: str | Path | None, identity: dict, *, resume: bool,
                overwrite: bool, batch_size: int, num_workers: int, progress: bool, desc: str) -> list[dict]:
    """Every file of ``dataset`` through ``records`` (a batch of items to JSON-able records with an ``index``),
    batch by batch, each finished batch appended to the journal ``partial`` (if given); with ``resume`` the files
    it holds are not run again (:func:`~lensnet.io.journal.read_journals`). SIGINT or SIGTERM stop the loop after
    the batch in flight (:class:`~lensnet.errors.LensnetInterrupted`). Returns every record, in the files' order."""
    journal, done = None, {}
    if partial is not None:
        done = read_journals(partial, identity, resume=resume, overwrite=overwrite)
        journal = RowJournal(partial, identity)
    todo = [i for i in range(len(dataset)) if i not in done]
    loader = DataLoader(Subset(dataset, todo), batch_size=int(batch_size), num_workers=num_workers, collate_fn=list,
                        worker_init_fn=worker_init)
    kept = (f"the finished rows are in {journal.path}: continue with --resume (resume=True)" if journal is not None
            else "nothing was kept (no partial catalogue)")
    with (tqdm(total=len(dataset), initial=len(done), unit="file", desc=desc, disable=not progress) as bar,
          stop_signals() as stop):
        for items in loader:
            batch = json.loads(json.dumps(records(items)))  # as a resumed run reads them back
            if journal is not None:
                journal.append(batch)
            done.update((r["index"], r) for r in batch)
            bar.update(len(items))
            if len(done) < len(dataset):  # a signal during the last batch lets the run end as it would have
                stop.check(f"stopped after {len(done)} of {len(dataset)} files; {kept}")
    return [done[i] for i in sorted(done)]


def _jsonable(value):
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


def _packed(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(mask.astype(bool))).decode("ascii")


def _unpacked(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8), count=n * n).reshape(n, n).astype(bool)


def write_masks(masks: list[tuple[int, dict, np.ndarray]], path: str | Path, pixel_scale: float) -> Path:
    """The pixels each estimate left out (1: NaN, user mask, cosmic ray, neighbour), on the network's grid: one
    image HDU per file (``MASK<index>``, its ``FILE`` and ``HDU`` in the header), written atomically.

    ``masks`` holds (index, a dict with the ``file`` and ``hdu`` read, mask) per file."""
    hdus = [fits.PrimaryHDU()]
    for index, info, mask in sorted(masks, key=lambda m: m[0]):
        header = fits.Header([("FILE", Path(info["file"]).name, "the input"), ("HDU", info["hdu"], "its HDU read"),
                              ("PIXSCALE", pixel_scale, "arcsec/pixel of the network's grid")])
        hdus.append(fits.ImageHDU(mask.astype(np.uint8), header=header, name=f"MASK{index}"))
    return write_hdulist(path, fits.HDUList(hdus), overwrite=True)


def fits_inputs(predictor, paths: Sequence[str | Path], **options) -> FitsInputs:
    """The :class:`FitsInputs` of ``paths`` on ``predictor``'s grid (options as in :func:`predict_fits`)."""
    if options.get("center") is not None and options.get("sky_center") is not None:
        raise LensnetValueError("a cutout centre in pixels (--center) and on the sky (--sky-center) were both given: "
                                "choose one")
    scale = options.get("pixel_scale")
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise LensnetValueError(f"pixel scale {scale!r} (--pixel-scale): must be a positive number of arcsec/pixel")
    plane = options.get("plane")
    if plane is not None and (int(plane) != plane or plane < 0):
        raise LensnetValueError(f"plane {plane!r} (--plane): must be a plane index >= 0 of an image cube")
    mask = options.pop("mask", None)  # read once for all the files
    return FitsInputs(find_fits(paths), ModelGrid.from_card(predictor.card),
                      mask=None if mask is None else read_fits_image(mask, 0)[0] != 0, **options)


def estimate_items(predictor, items: list, symmetrize: bool = False) -> list[dict]:
    """Catalogue rows of a batch of :class:`FitsInputs` items: the usable images in one forward pass."""
    good = [item for item in items if item[1] is not None]
    estimates = iter(())
    if good:
        mean, std, score = predictor.predict(torch.stack([item[1] for item in good]),
                                             torch.stack([item[2] for item in good]), batch_size=len(good),
                                             symmetrize=symmetrize, ood=True)
        estimates = zip(mean.double().tolist(), std.double().tolist(), score.tolist())
    z95 = getattr(predictor, "z95", torch.full((len(PARAM_NAMES),), Z95)).tolist()
    threshold = predictor.ood.threshold if getattr(predictor, "ood", None) is not None else math.nan
    return [_row(index, info, *(next(estimates) if image is not None else (None, None, math.nan)), z95, threshold)
            for index, image, _, info in items]


def _row(index: int, info: dict, mean: list | None, std: list | None, score: float, z95: list,
         threshold: float) -> dict:
    row = {"index": index, "file": info["file"], "hdu": info["hdu"]}
    estimated = mean is not None
    if not estimated:
        mean = std = [math.nan] * len(PARAM_NAMES)
    for name, m, s, z in zip(PARAM_NAMES, mean, std, z95):
        row.update({name: m, f"{name}_sigma": s, f"{name}_lo95": m - z * s, f"{name}_hi95": m + z * s})
    q, phi = e1e2_to_qphi(torch.tensor(row["e1"], dtype=torch.float64), torch.tensor(row["e2"], dtype=torch.float64))
    row.update(q=float(q), phi=math.degrees(float(phi)))
    sky = info["prepared"].sky_position(row["center_x"], row["center_y"]) if estimated else None
    row.update(ra=sky[0] if sky else math.nan, dec=sky[1] if sky else math.nan,
               pa=info["prepared"].position_angle(row["phi"]) if estimated else math.nan)
    for key in ("pixel_scale_in", "coverage", "background", "noise_rms"):
        row[key] = info.get(key, math.nan)
    row["n_masked"] = info.get("n_masked", -1)
    row["cosmic_rays"] = bool(info.get("cosmic_rays", False))
    row["n_neighbours"] = info.get("n_neighbours", -1)
    row["noise_correlation"] = info.get("noise_correlation", math.nan)
    row["noise_match"] = info.get("noise_match", "")
    row.update(ood_score=score, ood=bool(score > threshold))
    row["error"] = info["error"]
    return row


def catalog_table(rows: list[dict], card: dict) -> Table:
    """The catalogue of rows (from :func:`estimate_items`, in any order), sorted by the files' order."""
    columns = ["file", "hdu", *(f"{n}{s}" for n in PARAM_NAMES for s in ("", "_sigma", "_lo95", "_hi95")), "q", "phi",
               "pa", "ra", "dec", "ood_score", "ood", "pixel_scale_in", "coverage", "background", "noise_rms",
               "n_masked", "cosmic_rays", "n_neighbours", "noise_correlation", "noise_match"]
    rows = sorted(rows, key=lambda r: r["index"])
    table = Table({c: [r[c] for r in rows] for c in columns} if rows else {c: [] for c in columns})
    units = dict(zip(PARAM_NAMES, PARAM_UNITS))
    for c in columns:
        base = c.split("_sigma")[0].split("_lo95")[0].split("_hi95")[0]
        table[c].unit = units.get(base) or {"phi": "deg", "pa": "deg", "ra": "deg", "dec": "deg",
                                            "pixel_scale_in": "arcsec"}.get(c)
    table["model"] = [card.get("name", "?")] * len(rows)
    table["lensnet_version"] = [__version__] * len(rows)
    table["error"] = [r["error"] for r in rows]
    table.meta.update({"model": card.get("name", "?"), "lensnet_version": __version__,
                       "conventions": "theta_E, e1, e2, center_x, center_y in lenstronomy's convention "
                                      "(e1 + i e2 = (1-q)/(1+q) exp(2i phi)); x along columns, y along rows of the "
                                      "input image, arcsec from the requested centre; phi counter-clockwise from +x, "
                                      "pa the same axis east of north (0-180 degrees, from the WCS; NaN without one); "
                                      "95% = estimate -+ z95 sigma, z95 = 1.96 or the model card's calibrated width"})
    return table


def write_catalog(table: Table, path: str | Path, overwrite: bool = False) -> Path:
    """Write the catalogue as ECSV, CSV or FITS, chosen by the extension, atomically.

    Raises
    ------
    LensnetValueError
        If the extension is not one of :data:`CATALOG_FORMATS`.
    """
    path = Path(path)
    fmt = CATALOG_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LensnetValueError(f"{path}: unknown catalogue format {path.suffix!r}; use "
                                f"{', '.join(CATALOG_FORMATS)}")
    check_writable(path)
    if fmt == "fits":
        return write_table(path, table, overwrite=overwrite)
    with atomic_output(path, overwrite=overwrite) as tmp:
        table.write(tmp, format=fmt)
    return path


def write_lenstronomy(table: Table, path: str | Path, overwrite: bool = False) -> Path:
    """Each lens as lenstronomy's ``kwargs_lens`` of an SIE (JSON: file -> model list and kwargs).

    ``kwargs_lens`` is in the image's axes; where the image has a celestial WCS, ``kwargs_lens_sky`` is the same
    lens in the sky frame lenstronomy's data classes use (x the RA offset, increasing east; y the Dec offset,
    north; arcsec from the lens centre at ``ra``, ``dec``): its angle phi_sky = 90 deg - pa.
    """
    out = {}
    for row in table:
        if row["error"]:
            continue
        out[row["file"]] = {"lens_model_list": ["SIE"],
                            "kwargs_lens": [{n: float(row[n]) for n in PARAM_NAMES}],
                            "kwargs_lens_sigma": [{n: float(row[f"{n}_sigma"]) for n in PARAM_NAMES}],
                            "axes": "lensnet image axes: x along columns, y along rows, arcsec from the cutout centre"}
        if math.isfinite(float(row["pa"])):
            e1, e2 = qphi_to_e1e2(torch.tensor(float(row["q"]), dtype=torch.float64),
                                  torch.tensor(math.radians(90.0 - float(row["pa"])), dtype=torch.float64))
            out[row["file"]].update(
                kwargs_lens_sky=[{"theta_E": float(row["theta_E"]), "e1": float(e1), "e2": float(e2),
                                  "center_x": 0.0, "center_y": 0.0}],
                ra=float(row["ra"]), dec=float(row["dec"]),
                sky_frame="x = RA offset (increasing east), y = Dec offset (north), arcsec from the lens centre "
                          "at (ra, dec) degrees; phi counter-clockwise from east towards north = 90 deg - pa")
    path = Path(path)
    check_writable(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(out, indent=2) + "\n")
    return path
