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

from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.io.atomic import atomic_output

__all__ = [
    "FitsWarning",
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


def read_image_hdu(path: str | os.PathLike, ext: int | str | None = 0) -> tuple[np.ndarray, fits.Header, str]:
    """The data (float32, any dimension), header and "file[ext]" label of one image HDU.

    Raises
    ------
    LensnetIOError
        If the file is missing, truncated or not FITS, or ``ext`` does not exist or holds no image.
    """
    return _read_hdu(Path(path), ext)


def read_image_with_extensions(path: str | os.PathLike, ext: int | str | None = 0, names: Sequence[str] = ()
                               ) -> tuple[np.ndarray, fits.Header, str, dict[str, np.ndarray]]:
    """:func:`read_image_hdu` plus the image HDUs among ``names`` the file has (a ``MASK``, say), from one open.

    Returns
    -------
    data, header, where
        As :func:`read_image_hdu`.
    extensions : dict
        EXTNAME to float32 array, for those of ``names`` present in the file.
    """
    path = Path(path)

    def read(hdul):
        data, header, where = _image_hdu(hdul, ext, path)
        present = {h.name for h in hdul}
        return data, header, where, {n: _image_hdu(hdul, n, path)[0] for n in names if n in present}

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


def _read_hdu(path: Path, ext: int | str | None) -> tuple[np.ndarray, fits.Header, str]:
    """Data (float32), header and "file[ext]" label of one image HDU."""
    return _with_fits(path, lambda hdul: _image_hdu(hdul, ext, path))


def _with_fits(path: Path, read):
    """Open ``path`` once, call ``read(hdul)``, and turn astropy's errors into ours."""
    if not path.is_file():
        raise LensnetIOError(f"FITS file {path} does not exist")
    try:
        with fits.open(path, memmap=False) as hdul:
            return read(hdul)
    except LensnetIOError:
        raise
    except _ASTROPY_READ_ERRORS as exc:
        raise LensnetIOError(f"cannot read FITS file {path}: {exc}") from exc


def _image_hdu(hdul: fits.HDUList, ext: int | str | None, path: Path) -> tuple[np.ndarray, fits.Header, str]:
    if ext is None:
        found = [i for i, h in enumerate(hdul) if h.is_image and h.data is not None and h.data.ndim == 2]
        if not found:
            raise LensnetIOError(f"{path} holds no 2-D image HDU")
        ext = found[0]
    where = f"{path}[{ext}]"
    try:
        hdu = hdul[ext]
    except (IndexError, KeyError):
        raise LensnetIOError(f"{path} has {len(hdul)} HDU(s); ext={ext!r} does not exist") from None
    if not hdu.is_image:
        raise LensnetIOError(f"{where} is a table, not an image")
    if hdu.data is None:
        raise LensnetIOError(f"{where} holds no data")
    return np.asarray(hdu.data, dtype=np.float32), hdu.header.copy(), where


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
