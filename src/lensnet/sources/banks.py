"""Banks of real galaxy images used as lensing sources.

Hezaveh et al. (2017) lens real galaxy images (Galaxy Zoo and GREAT3/COSMOS HST galaxies), and keep
the galaxies of the validation and test sets out of training. A :class:`SourceBank` holds G galaxies
as stamps of a common size S x S and splits them by galaxy (:meth:`SourceBank.split`).

Every loader treats its images alike: the sky background is subtracted, each image is resampled so
that its longer side spans S pixels (aspect ratio kept; bilinear, Gaussian anti-aliasing when
shrinking), centred on a zero-padded S x S square, and divided by its peak, so every stamp peaks at 1.
An image with a NaN or infinite pixel, or with no positive pixel after background subtraction, is
skipped with a :class:`SourceBankWarning` naming it; a loader that keeps no image raises
:class:`~lensnet.errors.LensnetValueError`.

Loaders:

- :func:`hubble_deep_field_bank`, the built-in default: galaxies detected in the Hubble eXtreme Deep
  Field colour JPEG that ships inside scikit-image (``skimage.data.hubble_deep_field``, no download).
- :func:`galsim_cosmos_bank`: GalSim's real-galaxy catalogue format (COSMOS, AEGIS).
- :func:`fits_folder_bank`: a folder of FITS stamps, one galaxy per file.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from scipy import ndimage as ndi
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.feature import peak_local_max
from skimage.filters import gaussian
from skimage.measure import regionprops
from skimage.segmentation import watershed
from skimage.transform import resize

from lensnet.errors import (LensnetIOError, LensnetRangeError, LensnetShapeError, LensnetValueError,
                            check_finite, check_range)
from lensnet.io.atomic import atomic_output
from lensnet.io.fits import FitsWarning, read_image, read_image_hdus

__all__ = [
    "SourceBank",
    "SourceBankWarning",
    "SPLIT_NAMES",
    "HDF_PIXEL_SCALE",
    "hubble_deep_field_bank",
    "galsim_cosmos_bank",
    "fits_folder_bank",
]

#: Keys of the dictionary returned by :meth:`SourceBank.split`, in the order of its fractions.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: arcsec/pixel of skimage's XDF JPEG: the 2.3' x 2.0' XDF field over 1000 x 872 pixels (approximate:
#: the JPEG carries no WCS).
HDF_PIXEL_SCALE = 0.138
_SMOOTH_SIGMA = 1.0  # pixels; Gaussian smoothing before detection suppresses single-pixel JPEG noise
_MIN_PEAK_SNR = 10.0  # galaxy peak over the sky rms; fainter detections give noise-dominated stamps
_MAX_NEIGHBOUR_FLUX = 0.5  # neighbours in the cutout may hold at most this fraction of the galaxy flux
_CUTOUT_PAD = 1.5  # cutout side over the galaxy's bounding-box side, so the outskirts are kept
_CUTOUT_MARGIN = 4  # pixels added on each side of the cutout
_HDF_BORDER = 4  # pixels; frame of each cutout whose median removes the sky left near the galaxy
_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


class SourceBankWarning(UserWarning):
    """A galaxy image skipped by a loader, or a catalogue row ignored."""


@dataclass(frozen=True, eq=False)
class SourceBank:
    """G real galaxies as peak-normalised, background-subtracted S x S stamps.

    Parameters
    ----------
    stamps : torch.Tensor
        Floating-point tensor of shape (G, S, S), FITS row order (row 0 at the bottom), each stamp's
        maximum 1 (flux in units of its peak).
    pixel_scale : float
        arcsec/pixel of the original images the stamps were made from.
    names : sequence of str
        G identifiers (catalogue IDENT, file name or detection position). Stamps sharing a name are
        the same galaxy and are never split apart.
    origin : str
        Where the galaxies came from and how they were selected.
    stamp_scales : torch.Tensor, optional
        Shape (G,): arcsec/pixel of each stamp after resampling, ``pixel_scale`` times the original
        pixels per stamp pixel [``pixel_scale`` for every stamp]. S times it is the stamp's side on
        the sky.

    Examples
    --------
    >>> import torch
    >>> bank = SourceBank(torch.ones(10, 8, 8), 0.03, [f"g{i}" for i in range(10)], "ones")
    >>> {k: len(v) for k, v in bank.split(seed=0).items()}
    {'train': 8, 'val': 1, 'test': 1}
    """

    stamps: torch.Tensor
    pixel_scale: float
    names: tuple[str, ...]
    origin: str = ""
    stamp_scales: torch.Tensor | None = None

    def __post_init__(self):
        stamps = self.stamps
        if not torch.is_tensor(stamps) or not stamps.is_floating_point():
            raise LensnetValueError(f"stamps must be a floating-point torch.Tensor, got {type(stamps).__name__}"
                                    + (f" of dtype {stamps.dtype}" if torch.is_tensor(stamps) else ""))
        if stamps.ndim != 3 or stamps.shape[1] != stamps.shape[2]:
            raise LensnetShapeError("stamps", stamps.shape, "(G, S, S), square stamps")
        check_finite("stamps", stamps)
        names = tuple(str(n) for n in self.names)
        if len(names) != stamps.shape[0]:
            raise LensnetShapeError("names", (len(names),), f"({stamps.shape[0]},), one name per stamp")
        if not (math.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise LensnetRangeError("pixel_scale", self.pixel_scale, 0, None, "arcsec/pixel must be positive")
        if self.stamp_scales is None:
            scales = torch.full((len(names),), float(self.pixel_scale), dtype=stamps.dtype, device=stamps.device)
        else:
            scales = torch.as_tensor(self.stamp_scales, dtype=stamps.dtype, device=stamps.device)
            if scales.shape != (len(names),):
                raise LensnetShapeError("stamp_scales", scales.shape, f"({len(names)},), one scale per stamp")
            check_range("stamp_scales", scales, 0, None, min_open=True)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "pixel_scale", float(self.pixel_scale))
        object.__setattr__(self, "stamp_scales", scales)

    def __len__(self) -> int:
        return self.stamps.shape[0]

    @property
    def stamp_size(self) -> int:
        """S, the side of every stamp in pixels."""
        return self.stamps.shape[-1]

    def select(self, indices, origin: str | None = None) -> SourceBank:
        """The bank of the stamps at ``indices`` (a sequence of ints or a (K,) tensor), same order."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        names = tuple(self.names[i] for i in idx.tolist())
        idx = idx.to(self.stamps.device)
        return replace(self, stamps=self.stamps[idx], names=names, stamp_scales=self.stamp_scales[idx],
                       origin=self.origin if origin is None else origin)

    def split(self, fractions=(0.8, 0.1, 0.1), *, seed: int) -> dict[str, SourceBank]:
        """Split by galaxy into train, validation and test banks.

        Distinct names are shuffled with a generator seeded by ``seed`` (the names are sorted first,
        so the split does not depend on the order of the stamps) and cut at the cumulative fractions;
        all stamps of one name go to the same part.

        Parameters
        ----------
        fractions : sequence of 3 floats
            Fractions of galaxies for train, val and test, each in [0, 1], summing to 1 [0.8, 0.1, 0.1].
        seed : int
            Seed of the shuffle; the same seed gives the same split.

        Returns
        -------
        dict of str to SourceBank
            Keys :data:`SPLIT_NAMES` ("train", "val", "test"); a part may be empty for a small bank.
        """
        frac = torch.as_tensor(fractions, dtype=torch.float64)
        if frac.shape != (len(SPLIT_NAMES),):
            raise LensnetShapeError("fractions", frac.shape, "(3,): fractions for train, val and test")
        check_range("fractions", frac, 0.0, 1.0)
        if abs(frac.sum().item() - 1.0) > 1e-6:
            raise LensnetValueError(f"fractions must sum to 1, got {tuple(frac.tolist())} (sum {frac.sum().item():g})")
        unique = sorted(set(self.names))
        order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(int(seed))).tolist()
        ends = [round(c * len(unique)) for c in torch.cumsum(frac, 0).tolist()[:-1]] + [len(unique)]
        part_of, start = {}, 0
        for part, end in zip(SPLIT_NAMES, ends):
            part_of.update({unique[k]: part for k in order[start:end]})
            start = end
        how = f"part of a split by galaxy (fractions {tuple(frac.tolist())}, seed {seed})"
        return {part: self.select([i for i, n in enumerate(self.names) if part_of[n] == part],
                                  f"{self.origin} | {part} {how}")
                for part in SPLIT_NAMES}

    def to(self, device=None, dtype: torch.dtype | None = None) -> SourceBank:
        """The same bank with stamps (and stamp scales) on ``device`` and/or of ``dtype``."""
        return replace(self, stamps=self.stamps.to(device=device, dtype=dtype),
                       stamp_scales=self.stamp_scales.to(device=device, dtype=dtype))

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the bank to ``.npz`` (NumPy) or ``.h5``/``.hdf5`` (HDF5), atomically.

        Raises :class:`~lensnet.errors.LensnetIOError` if the file exists and ``overwrite`` is False,
        :class:`~lensnet.errors.LensnetValueError` for another suffix.
        """
        from lensnet import __version__

        path = Path(path)
        arrays = {"stamps": self.stamps.detach().cpu().numpy(),
                  "stamp_scales": self.stamp_scales.detach().cpu().numpy(),
                  "names": np.array(self.names, dtype=str)}
        meta = {"pixel_scale": self.pixel_scale, "origin": self.origin, "lensnet_version": __version__,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")}
        kind = _bank_format(path)
        with atomic_output(path, overwrite) as tmp:
            if kind == "npz":
                np.savez(tmp, **arrays, **{k: np.array(v) for k, v in meta.items()})
            else:
                with h5py.File(tmp, "w") as f:
                    for key, value in arrays.items():
                        f.create_dataset(key, data=value.astype(object) if key == "names" else value,
                                         dtype=h5py.string_dtype() if key == "names" else None)
                    f.attrs.update(meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SourceBank:
        """Read a bank written by :meth:`save`; errors name the file and any missing entry."""
        path = Path(path)
        kind = _bank_format(path)
        if not path.is_file():
            raise LensnetIOError(f"source bank file {path} does not exist")
        try:
            if kind == "npz":
                with np.load(path, allow_pickle=False) as f:
                    content = {k: f[k] for k in f.files}
                    content = {k: (v.item() if v.ndim == 0 else v) for k, v in content.items()}
            else:
                with h5py.File(path, "r") as f:
                    content = {k: f[k][()] for k in f.keys()} | dict(f.attrs)
                    if "names" in content:
                        content["names"] = [n.decode() if isinstance(n, bytes) else n for n in content["names"]]
        except (OSError, ValueError, KeyError) as exc:
            raise LensnetIOError(f"cannot read source bank {path}: {exc}") from exc
        missing = [k for k in ("stamps", "names", "pixel_scale", "origin", "stamp_scales") if k not in content]
        if missing:
            raise LensnetIOError(f"source bank {path} lacks {', '.join(missing)}; was it written by SourceBank.save?")
        return cls(torch.from_numpy(np.asarray(content["stamps"])), float(content["pixel_scale"]),
                   tuple(str(n) for n in content["names"]), str(content["origin"]),
                   torch.from_numpy(np.asarray(content["stamp_scales"])))


def hubble_deep_field_bank(stamp_size: int = 64, *, min_area: int = 50, max_extent: int = 120,
                           detect_sigma: float = 3.0, deblend_contrast: float = 0.2) -> SourceBank:
    """Galaxies of the Hubble eXtreme Deep Field (XDF) JPEG shipped with scikit-image.

    The colour JPEG (``skimage.data.hubble_deep_field()``, 872 x 1000 pixels, public domain, NASA/ESA
    2012) is part of the scikit-image package itself, so this works offline. Steps:

    1. Convert to grey (luminance), flip to FITS row order, subtract the sky: the 3-sigma-clipped
       median of the whole image (the sky is flat across the field).
    2. Detect: smooth with a Gaussian of 1 pixel, keep pixels above ``detect_sigma`` times the
       clipped rms of the smoothed image, label connected segments.
    3. Deblend: split every segment by watershed from its local maxima, then merge back each piece
       holding less than ``deblend_contrast`` of the segment's flux into the segment's brightest
       piece, so two comparable neighbours separate while the clumps of one spiral stay together.
    4. Select galaxies of area >= ``min_area`` pixels, bounding box <= ``max_extent`` pixels, peak
       >= 10 times the sky rms, whose square cutout (1.5 times the bounding box plus 4 pixels per
       side, centred on the flux-weighted centroid) lies inside the image and where other segments
       hold at most half the galaxy's flux. Pixels of those other segments are set to 0, and the
       clipped median of a 4-pixel frame of the cutout is subtracted (sky left near the galaxy).

    Parameters
    ----------
    stamp_size : int
        S, side of the output stamps in pixels [64].
    min_area : int
        Minimum galaxy area in pixels of the JPEG [50].
    max_extent : int
        Maximum side of the galaxy's bounding box in pixels [120].
    detect_sigma : float
        Detection threshold in units of the sky rms of the smoothed image [3].
    deblend_contrast : float
        Minimum fraction of a segment's flux for a piece to count as a separate galaxy [0.2].

    Returns
    -------
    SourceBank
        With the defaults, 219 galaxies named ``xdf_r<row>_c<col>`` (centroid pixel), pixel scale
        :data:`HDF_PIXEL_SCALE` (0.138 arcsec/pixel, approximate).
    """
    check_range("stamp_size", stamp_size, 2, None)
    check_range("deblend_contrast", deblend_contrast, 0.0, 1.0)
    image = np.flipud(rgb2gray(skdata.hubble_deep_field())).astype(np.float32)  # JPEG rows run top-down
    _, sky, sky_rms = sigma_clipped_stats(image, sigma=3.0)
    image -= np.float32(sky)
    segments = _segment(image, detect_sigma, deblend_contrast)
    cutouts = list(_cutouts(image, segments, sky_rms, min_area, max_extent))
    origin = (f"skimage.data.hubble_deep_field (HST XDF 2012 colour JPEG, grey): {len(cutouts)} galaxies with "
              f"area >= {min_area} px, extent <= {max_extent} px, detect_sigma={detect_sigma}, "
              f"deblend_contrast={deblend_contrast}")
    return _build_bank(cutouts, HDF_PIXEL_SCALE, stamp_size, origin, border=_HDF_BORDER)


def galsim_cosmos_bank(catalog_path: str | os.PathLike, image_dir: str | os.PathLike | None = None, *,
                       pixel_scale: float | None = None, stamp_size: int = 64, border: int = 4) -> SourceBank:
    """Galaxies of a catalogue in GalSim's real-galaxy format (COSMOS, AEGIS).

    The catalogue is a FITS table whose rows give ``GAL_FILENAME`` (an image file, relative to
    ``image_dir``) and ``GAL_HDU`` (the HDU of that file holding the galaxy, 0 = primary), and
    optionally ``IDENT`` (used as the name) and ``PIXEL_SCALE`` (arcsec/pixel). The sky, which is not
    exactly zero, is the 3-sigma-clipped median of a frame ``border`` pixels wide around each stamp.
    Rows pointing to an HDU already read are ignored with a :class:`SourceBankWarning`.

    Parameters
    ----------
    catalog_path : str or os.PathLike
        Catalogue FITS file (table in HDU 1).
    image_dir : str or os.PathLike, optional
        Folder of the image files [the catalogue's folder].
    pixel_scale : float, optional
        arcsec/pixel, required when the catalogue has no ``PIXEL_SCALE`` column.
    stamp_size : int
        S, side of the output stamps in pixels [64].
    border : int
        Width in pixels of the frame used to estimate the sky [4].

    Raises
    ------
    LensnetIOError
        If a file is missing or unreadable, a column is missing, or a row points to an HDU that does
        not exist (the message names the catalogue row and the file).
    LensnetValueError
        If the ``PIXEL_SCALE`` values differ, or no usable galaxy remains.
    """
    catalog_path = Path(catalog_path)
    table = _read_catalog(catalog_path)
    missing = [c for c in ("GAL_FILENAME", "GAL_HDU") if c not in table.colnames]
    if missing:
        raise LensnetIOError(f"catalogue {catalog_path} lacks column(s) {', '.join(missing)} "
                             f"(has {', '.join(table.colnames)})")
    if "PIXEL_SCALE" in table.colnames:
        pixel_scale = _common_scale(np.asarray(table["PIXEL_SCALE"], dtype=float), f"PIXEL_SCALE of {catalog_path}")
    elif pixel_scale is None:
        raise LensnetIOError(f"catalogue {catalog_path} has no PIXEL_SCALE column; pass pixel_scale (arcsec/pixel)")
    image_dir = catalog_path.parent if image_dir is None else Path(image_dir)
    names = [str(v) for v in table["IDENT"]] if "IDENT" in table.colnames else [f"row{i}" for i in range(len(table))]
    by_file: dict[str, dict[int, int]] = {}  # file -> {hdu: first row}
    for row, (filename, hdu) in enumerate(zip(table["GAL_FILENAME"], table["GAL_HDU"])):
        filename = filename.decode() if isinstance(filename, bytes) else str(filename)
        hdus = by_file.setdefault(filename.strip(), {})
        if int(hdu) in hdus:
            warnings.warn(f"catalogue {catalog_path} row {row} ({names[row]}) points to {filename.strip()} HDU "
                          f"{int(hdu)} like row {hdus[int(hdu)]}; ignoring it", SourceBankWarning, stacklevel=2)
            continue
        hdus[int(hdu)] = row
    images = {}
    for filename, hdus in by_file.items():
        try:
            arrays = read_image_hdus(image_dir / filename, list(hdus))
        except LensnetIOError as exc:
            raise LensnetIOError(f"catalogue {catalog_path} rows {sorted(hdus.values())}: {exc}") from exc
        images.update({row: a for row, a in zip(hdus.values(), arrays)})
    raw = [(names[row], images[row]) for row in sorted(images)]
    return _build_bank(raw, pixel_scale, stamp_size, f"GalSim real-galaxy catalogue {catalog_path}", border)


def fits_folder_bank(folder: str | os.PathLike, pixel_scale: float | None = None, *, stamp_size: int = 64,
                     border: int = 4) -> SourceBank:
    """Galaxies of a folder of FITS stamps, one galaxy per file.

    Each file's primary HDU, or its first HDU with a 2-D image, is read. The pixel scale comes from
    the header (``PIXSCALE`` in arcsec, else ``CD1_1``/``CDELT1`` in degrees; see
    :func:`lensnet.io.fits.pixel_scale_from_header`); ``pixel_scale`` is used for files whose header
    has none. The sky is subtracted as in :func:`galsim_cosmos_bank`. Files are read in name order and
    named by their file name without suffix.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder holding ``*.fits``, ``*.fit``, ``*.fts`` or ``*.fits.gz`` files.
    pixel_scale : float, optional
        arcsec/pixel for files without a pixel-scale keyword.
    stamp_size : int
        S, side of the output stamps in pixels [64].
    border : int
        Width in pixels of the frame used to estimate the sky [4].

    Raises
    ------
    LensnetIOError
        If the folder is missing or holds no FITS file, a file is unreadable, or a file has no
        pixel-scale keyword and ``pixel_scale`` is not given (the message names the keywords).
    LensnetValueError
        If the files' pixel scales differ, or no usable galaxy remains.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LensnetIOError(f"source folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
    if not files:
        raise LensnetIOError(f"source folder {folder} holds no FITS file ({', '.join('*' + s for s in _SUFFIXES)})")
    raw, scales = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitsWarning)  # NaN stamps are reported once, when skipped
        for path in files:
            image, scale = read_image(path, ext=None, default_pixel_scale=pixel_scale)
            name = path.name[: -len(next(s for s in _SUFFIXES if path.name.lower().endswith(s)))]
            raw.append((name, image))
            scales.append(scale)
    common = _common_scale(np.array(scales), f"pixel scales of the files in {folder}")
    return _build_bank(raw, common, stamp_size, f"FITS stamps in {folder}", border)


def _build_bank(raw, pixel_scale: float, stamp_size: int, origin: str, border: int | None) -> SourceBank:
    """Subtract the sky, fit into S x S, peak-normalise; skip unusable images with a warning."""
    check_range("stamp_size", stamp_size, 2, None)
    stamps, names, scales = [], [], []
    for name, image in raw:
        if not np.isfinite(image).all():
            warnings.warn(f"{origin}: skipping {name}, which has {(~np.isfinite(image)).sum()} NaN or infinite "
                          "pixel(s)", SourceBankWarning, stacklevel=3)
            continue
        if border is not None:
            image = image - _border_median(image, border)
        stamp, rebin = _fit_square(image, stamp_size)
        peak = stamp.max()
        if not peak > 0:
            warnings.warn(f"{origin}: skipping {name}, which has no positive pixel after background subtraction",
                          SourceBankWarning, stacklevel=3)
            continue
        stamps.append(stamp / peak)
        names.append(name)
        scales.append(pixel_scale * rebin)
    if not stamps:
        raise LensnetValueError(f"{origin}: no usable galaxy image")
    return SourceBank(torch.from_numpy(np.stack(stamps)), pixel_scale, tuple(names), origin,
                      torch.tensor(scales, dtype=torch.float32))


def _fit_square(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resample so the longer side spans ``size`` pixels, centre in a zero-padded square.

    Returns the float32 (size, size) stamp and the original pixels per stamp pixel.
    """
    height, width = image.shape
    zoom = size / max(height, width)
    shape = (max(1, round(height * zoom)), max(1, round(width * zoom)))
    resampled = resize(image.astype(np.float64), shape, order=1, anti_aliasing=zoom < 1, preserve_range=True)
    stamp = np.zeros((size, size), dtype=np.float32)
    r0, c0 = (size - shape[0]) // 2, (size - shape[1]) // 2
    stamp[r0:r0 + shape[0], c0:c0 + shape[1]] = resampled
    return stamp, 1.0 / zoom


def _border_median(image: np.ndarray, width: int) -> float:
    """3-sigma-clipped median of a frame ``width`` pixels wide (narrower for tiny images)."""
    width = max(1, min(width, min(image.shape) // 4))
    frame = np.concatenate([image[:width].ravel(), image[-width:].ravel(),
                            image[width:-width, :width].ravel(), image[width:-width, -width:].ravel()])
    return float(sigma_clipped_stats(frame, sigma=3.0)[1])


def _segment(image: np.ndarray, detect_sigma: float, contrast: float) -> np.ndarray:
    """Deblended segmentation map (0 = sky, 1.. = sources) of a sky-subtracted image."""
    smooth = gaussian(image, _SMOOTH_SIGMA, preserve_range=True)
    rms = sigma_clipped_stats(smooth, sigma=3.0)[2]
    mask = smooth > detect_sigma * rms
    parents, n_parents = ndi.label(mask)
    peaks = peak_local_max(smooth, min_distance=2, labels=parents, exclude_border=False)
    markers = np.zeros(image.shape, dtype=np.int64)
    ids = np.arange(1, len(peaks) + 1)
    markers[tuple(peaks.T)] = ids
    pieces = watershed(-smooth, markers, mask=mask)
    flux = ndi.sum_labels(image, pieces, ids)
    parent = parents[tuple(peaks.T)]
    parent_flux = ndi.sum_labels(image, parents, np.arange(1, n_parents + 1))[parent - 1]
    # The brightest piece of each parent: first of each parent group after sorting by (parent, -flux).
    order = np.lexsort((-flux, parent))
    first = np.r_[True, parent[order][1:] != parent[order][:-1]]
    brightest = np.zeros(n_parents + 1, dtype=np.int64)
    brightest[parent[order][first]] = ids[order][first]
    relabel = np.r_[0, np.where(flux >= contrast * parent_flux, ids, brightest[parent])]
    return relabel[pieces]


def _cutouts(image: np.ndarray, segments: np.ndarray, sky_rms: float, min_area: int, max_extent: int):
    """Yield (name, cutout) for the isolated galaxies of a segmentation map (see hubble_deep_field_bank)."""
    height, width = image.shape
    for region in regionprops(segments, intensity_image=image):
        r0, c0, r1, c1 = region.bbox
        extent = max(r1 - r0, c1 - c0)
        if region.area < min_area or extent > max_extent or region.intensity_max < _MIN_PEAK_SNR * sky_rms:
            continue
        half = math.ceil(_CUTOUT_PAD * extent / 2) + _CUTOUT_MARGIN
        row, col = (int(round(v)) for v in region.centroid_weighted)
        if row < half or col < half or row + half > height or col + half > width:
            continue  # a galaxy cut by the image edge
        window = (slice(row - half, row + half), slice(col - half, col + half))
        cutout, labels = image[window].copy(), segments[window]
        others = (labels != region.label) & (labels > 0)
        if cutout[others].clip(min=0).sum() > _MAX_NEIGHBOUR_FLUX * cutout[labels == region.label].sum():
            continue
        cutout[others] = 0.0
        yield f"xdf_r{row}_c{col}", cutout


def _read_catalog(path: Path) -> Table:
    if not path.is_file():
        raise LensnetIOError(f"catalogue {path} does not exist")
    try:
        return Table.read(path, format="fits", hdu=1)
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise LensnetIOError(f"cannot read catalogue {path}: {exc}") from exc


def _common_scale(scales: np.ndarray, what: str) -> float:
    """The one pixel scale of a set of images, or an error if they differ by more than 0.1%."""
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise LensnetValueError(f"{what} must be positive and finite, got {scales.tolist()}")
    if scales.max() > scales.min() * 1.001:
        raise LensnetValueError(f"{what} differ ({scales.min():g} to {scales.max():g} arcsec/pixel); "
                                "a source bank needs one pixel scale")
    return float(np.median(scales))


def _bank_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".h5", ".hdf5"):
        return "hdf5"
    raise LensnetValueError(f"source bank file {path} must end in .npz, .h5 or .hdf5")
