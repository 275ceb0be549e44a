"""FITS input and output with astropy: images with their pixel scale, tables with units, provenance.

Arrays are kept in FITS row order (row 0 is the bottom row, the first one stored in the file), which is
lensnet's image convention (:mod:`lensnet.conventions`), so nothing is flipped on the way in or out.
Writers refuse to replace a file unless ``overwrite=True``, write through
:func:`lensnet.io.atomic.atomic_output` so that no partial file is left, and add provenance cards
(``LENSNVER``: lensnet version, ``DATE``: UTC creation time) to the header.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from lensnet.errors import LensnetError, LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.io.atomic import atomic_output

__all__ = [
    "AUXILIARY_NAMES",
    "DQ_NAMES",
    "EXPOSURE_NAMES",
    "IMAGE_NAMES",
    "MASK_NAMES",
    "PSF_NAMES",
    "SIGMA_NAMES",
    "WEIGHT_NAMES",
    "FitsWarning",
    "hdu_index",
    "hdu_label",
    "hdu_role",
    "image_hdu_index",
    "image_plane",
    "is_plane",
    "read_image",
    "read_image_hdu",
    "read_image_hdus",
    "read_image_with_extensions",
    "write_hdulist",
    "pixel_scale_from_header",
    "write_image",
    "write_table",
    "provenance_cards",
]

# Exceptions astropy raises on unreadable, truncated or malformed files.
_ASTROPY_READ_ERRORS = (OSError, ValueError, TypeError, IndexError, KeyError, EOFError)


class FitsWarning(UserWarning):
    """A FITS file that could be read but holds something suspicious (NaN pixels)."""


def read_image(path: str | os.PathLike, ext: int | str | None = 0, *,
               default_pixel_scale: float | None = None) -> tuple[np.ndarray, float]:
    """Read a 2-D image and its pixel scale from a FITS file.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file (gzip-compressed files are read too).
    ext : int, str or None
        HDU index or EXTNAME [0, the primary HDU]; None takes the first HDU holding a 2-D image.
    default_pixel_scale : float, optional
        Pixel scale in arcsec/pixel used when the header has no pixel-scale keyword.

    Returns
    -------
    image : numpy.ndarray
        float32 array of shape (H, W) in FITS row order (row 0 at the bottom). NaN pixels are kept
        and reported with a :class:`FitsWarning`.
    pixel_scale : float
        arcsec/pixel, from :func:`pixel_scale_from_header` or ``default_pixel_scale``.

    Raises
    ------
    LensnetIOError
        If the file is missing or not readable FITS, ``ext`` does not exist or holds no image, or
        the header has no pixel scale and no default is given (the message names the keywords).
    LensnetShapeError
        If the HDU's data is not 2-D.
    """
    path = Path(path)
    data, header, where = _read_hdu(path, ext)
    if data.ndim != 2:
        raise LensnetShapeError(f"image in {where}", data.shape, "(H, W), a 2-D image")
    bad = int((~np.isfinite(data)).sum())
    if bad:
        warnings.warn(f"{where} holds {bad} NaN or infinite pixel(s) out of {data.size}", FitsWarning,
                      stacklevel=2)
    try:
        scale = pixel_scale_from_header(header, where)
    except LensnetIOError:
        if default_pixel_scale is None:
            raise
        scale = float(default_pixel_scale)
    if not (math.isfinite(scale) and scale > 0):
        raise LensnetValueError(f"pixel scale of {where} must be positive and finite, got {scale}")
    return data, scale


def read_image_hdu(path: str | os.PathLike, ext: int | str | None = 0, plane: int | None = None
                   ) -> tuple[np.ndarray, fits.Header, str]:
    """The data (float32, singleton axes dropped), header and "file[ext]" label of one image HDU; ``ext`` None:
    the HDU named SCI, else the first holding an image; ``plane``: that plane of a cube.

    Raises
    ------
    LensnetIOError
        If the file is missing, truncated or not FITS, or ``ext`` does not exist or holds no image.
    """
    return _read_hdu(Path(path), ext, plane)


def read_image_with_extensions(path: str | os.PathLike, ext: int | str | None = 0, names: Sequence[str] = (),
                               plane: int | None = None) -> tuple[np.ndarray, fits.Header, str, dict[str, np.ndarray]]:
    """:func:`read_image_hdu` plus the image HDUs among ``names`` the file has (a ``MASK``, say), from one open:
    named so, or with the image's band prefix (``VIS_EXPTIME`` beside ``VIS_FLUX``), the prefixed one first.

    Returns
    -------
    data, header, where
        As :func:`read_image_hdu`.
    extensions : dict
        Each of ``names`` the file has to its float32 array.
    """
    path = Path(path)

    def read(hdul):
        data, header, where = _image_hdu(hdul, ext, path, plane)
        band = hdu_role(str(header.get("EXTNAME", "")), IMAGE_NAMES) or ""
        extensions = {}
        for name in names:
            ranked = sorted((hdu_role(h.name, (name,)) != band, i) for i, h in enumerate(hdul)
                            if hdu_role(h.name, (name,)) in {"", band})
            if ranked:
                extensions[name] = _image_hdu(hdul, ranked[0][1], path)[0]
        return data, header, where, extensions

    return _with_fits(path, read)


def read_image_hdus(path: str | os.PathLike, exts: Sequence[int | str]) -> list[np.ndarray]:
    """Read several image HDUs of one FITS file, opening it once.

    GalSim's real-galaxy image files hold one galaxy per HDU; reading them through one open file
    avoids re-scanning the file for every galaxy. Headers and pixel scales are not read.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file.
    exts : sequence of int or str
        HDU indices or EXTNAMEs.

    Returns
    -------
    list of numpy.ndarray
        One float32 array per HDU, in FITS row order, in the order of ``exts``.

    Raises
    ------
    LensnetIOError
        If the file is missing or not readable FITS, or an HDU does not exist or holds no image
        (the message names the file, the HDU and how many HDUs the file has).
    """
    path = Path(path)
    return _with_fits(path, lambda hdul: [_image_hdu(hdul, ext, path)[0] for ext in exts])


def pixel_scale_from_header(header: fits.Header, where: str = "header") -> float:
    """Pixel scale in arcsec/pixel along the image x axis, from a FITS header.

    Keywords, in order of preference: ``PIXSCALE`` (arcsec), ``CD1_1`` with ``CD2_1`` (the length of
    the first column of the CD matrix), ``CDELT1``; the last two are in ``CUNIT1`` (degrees when
    absent, as the FITS standard says for celestial axes).

    Parameters
    ----------
    header : astropy.io.fits.Header
        Header to read.
    where : str
        Name of the file and HDU, used in the error message.

    Returns
    -------
    float
        arcsec/pixel.

    Raises
    ------
    LensnetIOError
        If none of the keywords is present.
    """
    if "PIXSCALE" in header:
        return float(header["PIXSCALE"])
    try:
        unit = u.Unit(str(header.get("CUNIT1", "deg")).strip() or "deg")
    except ValueError:
        raise LensnetIOError(f"{where} has an unknown CUNIT1 = {header['CUNIT1']!r}") from None
    if "CD1_1" in header:
        value = math.hypot(float(header["CD1_1"]), float(header.get("CD2_1", 0.0)))
    elif "CDELT1" in header:
        value = abs(float(header["CDELT1"]))
    else:
        raise LensnetIOError(f"{where} has no pixel-scale keyword: expected PIXSCALE (arcsec/pixel), "
                             "CD1_1 or CDELT1 (degrees/pixel); pass the pixel scale explicitly")
    return float((value * unit).to_value(u.arcsec))


def write_image(path: str | os.PathLike, array, header_cards: dict | None = None,
                overwrite: bool = False) -> Path:
    """Write an image (or a cube of images) to a new FITS file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    array : numpy.ndarray or torch.Tensor
        Image of shape (H, W) or stack (N, H, W) in FITS row order; written with its dtype.
    header_cards : dict, optional
        Extra header cards, ``{keyword: value}`` or ``{keyword: (value, comment)}``; keywords longer
        than 8 characters are written as HIERARCH cards. Put units in the comment, e.g.
        ``{"PIXSCALE": (0.04, "arcsec/pixel")}``.
    overwrite : bool
        Replace an existing file [False].

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    LensnetIOError
        If ``path`` exists and ``overwrite`` is False, or the write fails.
    LensnetShapeError
        If ``array`` is not 2-D or 3-D.
    LensnetValueError
        If a header card cannot be written (the message names it).
    """
    data = array.detach().cpu().numpy() if torch.is_tensor(array) else np.asarray(array)
    if data.ndim not in (2, 3):
        raise LensnetShapeError("array", data.shape, "(H, W) or (N, H, W)")
    hdu = fits.PrimaryHDU(data)
    _add_cards(hdu.header, header_cards)
    return write_hdulist(Path(path), fits.HDUList([hdu]), overwrite)


def write_table(path: str | os.PathLike, table: Table, header_cards: dict | None = None,
                overwrite: bool = False) -> Path:
    """Write an astropy table (with its column units and ``meta``) to a new FITS file, atomically.

    The table is the first extension (HDU 1) after an empty primary HDU, as FITS requires.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    table : astropy.table.Table
        Table to write; column units are stored as TUNITn cards.
    header_cards : dict, optional
        Extra cards for the table header, as in :func:`write_image`.
    overwrite : bool
        Replace an existing file [False].

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    LensnetIOError
        If ``path`` exists and ``overwrite`` is False, or the write fails.
    LensnetValueError
        If ``table`` is not an astropy Table or a header card cannot be written.
    """
    if not isinstance(table, Table):
        raise LensnetValueError(f"table must be an astropy.table.Table, got {type(table).__name__}")
    hdu = fits.table_to_hdu(table)
    _add_cards(hdu.header, header_cards)
    return write_hdulist(Path(path), fits.HDUList([fits.PrimaryHDU(), hdu]), overwrite)


def provenance_cards() -> dict[str, tuple[str, str]]:
    """Provenance header cards lensnet adds to every file it writes: version and UTC date."""
    from lensnet import __version__

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {"LENSNVER": (__version__, "lensnet version"), "DATE": (now, "file creation date (UTC)")}


def _read_hdu(path: Path, ext: int | str | None, plane: int | None = None) -> tuple[np.ndarray, fits.Header, str]:
    """Data (float32), header and "file[ext]" label of one image HDU."""
    return _with_fits(path, lambda hdul: _image_hdu(hdul, ext, path, plane))


def _with_fits(path: Path, read):
    """Open ``path`` once, call ``read(hdul)``, and turn astropy's errors into ours."""
    if not path.is_file():
        raise LensnetIOError(f"FITS file {path} does not exist")
    try:
        with fits.open(path, memmap=False) as hdul:
            return read(hdul)
    except LensnetError:  # ours already name the file (and a LensnetShapeError is a ValueError too)
        raise
    except _ASTROPY_READ_ERRORS as exc:
        raise LensnetIOError(f"cannot read FITS file {path}: {exc}") from exc


#: HDU roles, by EXTNAME: the name itself or a band prefix and "_" before it (VIS_FLUX, VIS_RMS, ...).
IMAGE_NAMES = ("SCI", "FLUX")
SIGMA_NAMES = ("ERR", "RMS", "NOISE", "SIGMA")
WEIGHT_NAMES = ("WHT", "IVAR", "WEIGHT")
PSF_NAMES = ("PSF",)
MASK_NAMES = ("MASK",)
DQ_NAMES = ("DQ",)
#: Per-pixel exposure-time maps (seconds): where they vary, several exposures were combined.
EXPOSURE_NAMES = ("EXPTIME", "EXPMAP", "EXP")
AUXILIARY_NAMES = SIGMA_NAMES + WEIGHT_NAMES + PSF_NAMES + MASK_NAMES + DQ_NAMES + EXPOSURE_NAMES + ("CTX", "CON")


def hdu_role(name: str, roles) -> str | None:
    """The band prefix of an EXTNAME that is one of ``roles`` ("" for the bare role), else None."""
    name = name.upper()
    for role in roles:
        if name == role:
            return ""
        if name.endswith("_" + role) and len(name) > len(role) + 1:
            return name[:-len(role) - 1]
    return None


def is_plane(hdu, cube: bool = False) -> bool:
    """An image HDU whose data is 2-D once axes of length 1 are dropped (with ``cube``, or 3-D)."""
    shape = [n for n in (hdu.shape if hdu.is_image else ()) if n != 1]
    return len(shape) == 2 or (cube and len(shape) == 3)


def hdu_index(hdul: fits.HDUList, key: int | str) -> int | None:
    """Index of HDU ``key`` (index, digits or EXTNAME) in ``hdul``, or None when it has none."""
    if isinstance(key, str) and key.lstrip("-").isdigit():
        key = int(key)
    if isinstance(key, int):
        return key % len(hdul) if -len(hdul) <= key < len(hdul) else None
    try:
        return hdul.index_of(key)
    except KeyError:
        return None


def image_hdu_index(hdul: fits.HDUList, hdu: int | str | None, path, cube: bool = False) -> int:
    """Index of the image HDU: ``hdu`` (index, digits or EXTNAME), else the first image HDU named ``SCI`` or
    ``FLUX`` or ending in ``_SCI`` or ``_FLUX``, else the first that is not a noise, weight, PSF, mask, DQ,
    context or exposure map, else the first image (with ``cube``, cubes count as images)."""
    if hdu is not None:
        index = hdu_index(hdul, hdu)
        if index is None:
            raise LensnetIOError(f"{path} has {len(hdul)} HDU(s); hdu={hdu!r} does not exist")
        if not hdul[index].is_image:
            raise LensnetIOError(f"{path}[{hdu}] is a table, not an image")
        return index
    planes = [i for i, h in enumerate(hdul) if is_plane(h, cube)]
    for candidates in ([i for i in planes if hdu_role(hdul[i].name, IMAGE_NAMES) is not None],
                       [i for i in planes if hdu_role(hdul[i].name, AUXILIARY_NAMES) is None], planes):
        if candidates:
            return candidates[0]
    raise LensnetIOError(f"{path} holds no 2-D image HDU" + ("" if cube else
                                                             " (a cube's plane is chosen with --plane)"))


def hdu_label(hdul: fits.HDUList, index: int) -> str:
    """How a catalogue names an HDU: its EXTNAME, else its index."""
    name = hdul[index].name
    return name if name and name != "PRIMARY" else str(index)


def image_plane(hdu, where: str, plane: int | None = None) -> np.ndarray:
    """The 2-D data of an image HDU, axes of length 1 dropped, or plane ``plane`` of a cube (N, H, W); still in
    the file's memory map when it has one."""
    if hdu.data is None:
        raise LensnetIOError(f"{where} holds no data")
    data = hdu.data
    if data.ndim > 2:
        data = data.reshape([n for n in data.shape if n != 1] or [1])
    if plane is not None and data.ndim == 3:
        if not 0 <= plane < data.shape[0]:
            raise LensnetValueError(f"{where}: plane {plane} does not exist, the cube has planes 0-{data.shape[0] - 1}")
        return data[plane]
    if plane not in (None, 0):
        raise LensnetValueError(f"{where}: plane {plane} asked of an image of shape {tuple(data.shape)}, not a cube")
    if data.ndim != 2:
        raise LensnetShapeError(where, data.shape, "(H, W) or (1, H, W), one 2-D image (a cube's plane: --plane)")
    return data


def _image_hdu(hdul: fits.HDUList, ext: int | str | None, path: Path, plane: int | None = None
               ) -> tuple[np.ndarray, fits.Header, str]:
    """The data, header and "file[hdu]" label of one image HDU (:func:`image_hdu_index`, :func:`image_plane`)."""
    index = image_hdu_index(hdul, ext, path, cube=plane is not None)
    hdu = hdul[index]
    where = f"{path}[{hdu_label(hdul, index)}]" if plane is None else f"{path}[{hdu_label(hdul, index)}, plane {plane}]"
    if hdu.data is None:
        others = ", ".join(f"{i} ({h.name})" for i, h in enumerate(hdul) if is_plane(h, True))
        raise LensnetIOError(f"{where} holds no data" + (f"; its image HDUs: {others} (choose one with --hdu)"
                                                          if others else ""))
    return np.asarray(image_plane(hdu, where, plane), dtype=np.float32), hdu.header.copy(), where


def _add_cards(header: fits.Header, cards: dict | None) -> None:
    """Set user cards then provenance cards (provenance last, so it cannot be overridden)."""
    for key, value in {**(cards or {}), **provenance_cards()}.items():
        name = f"HIERARCH {key}" if len(key) > 8 and not key.upper().startswith("HIERARCH ") else key
        try:
            header[name] = value
        except (ValueError, TypeError) as exc:
            raise LensnetValueError(f"header card {key!r} = {value!r} cannot be written to FITS: {exc}") from exc


def write_hdulist(path: str | os.PathLike, hdul: fits.HDUList, overwrite: bool = False) -> Path:
    """Write an HDU list to a new FITS file, atomically (``overwrite`` to replace one)."""
    path = Path(path)
    with atomic_output(path, overwrite) as tmp:
        try:
            hdul.writeto(tmp, output_verify="exception")
        except (OSError, ValueError, fits.VerifyError) as exc:
            raise LensnetIOError(f"cannot write FITS file {path}: {exc}") from exc
    return path
