"""Deblending FITS files: ``lensnet deblend`` and ``lensnet predict --deblend``.

Each input is an image HDU (``hdu``; by default the one named SCI, else the first image). A file may carry
its PSF in an HDU named ``PSF`` and its 1-sigma noise map in one named ``NOISE``; they are used unless other
PSF files are given. The output FITS file holds the arcs in the primary HDU, with the first input's header (WCS
included), and the lens light (``LENS``) and the pixels to mask when estimating the lens (``MASK``: a disc on the lens
centre, where lens light is left (0.2", or for the Sérsic method out to where its residuals stop), cosmic
rays and invalid pixels) in extensions, with the first input's exposure-time map (``EXPTIME``) where it has one;
``lensnet predict`` applies a file's ``MASK`` HDU.

ICA's arcs come with an alternative, the first band's arcs left by the Sérsic fit (the baseline of the figure),
which ``lensnet predict --deblend BAND2`` writes beside them (``<catalogue>_arcs_sersic.fits``) and lets the
network read too, keeping the estimate it is surer of (:func:`lensnet.inference.catalog.most_certain`): a real
lens galaxy is not one colour, and what ICA's two components cannot hold of it is left in the arcs (SL2S
J0219-0829: 0.7-0.9 sigma per pixel inside the ring, read as a θE 19% low).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from astropy.io import fits

from lensnet.deblend.figure import deblend_figure
from lensnet.deblend.ica import ica_deblend
from lensnet.deblend.sersic_fit import SersicFit, fit_lens_light
from lensnet.errors import LensnetValueError
from lensnet.io.atomic import check_writable
from lensnet.io.fits import EXPOSURE_NAMES, provenance_cards, read_image_hdu, read_image_with_extensions, write_hdulist
from lensnet.lensing.sie import sie_hessian
from lensnet.preprocess.real import celestial_wcs, header_pixel_scale, pixel_to_sky

__all__ = ["METHODS", "DeblendedImage", "critical_map", "deblend_fits", "deblended_figure", "sersic_deblend",
           "write_deblended"]

#: Deblending methods: ICA of two bands, or a Sérsic fit to one.
METHODS = ("ica", "sersic")
#: Radius of the disc on the lens centre masked for estimation (arcsec), as the paper's 0.2" masks; the
#: Sérsic method masks out to where its residuals stop (:func:`_misfit_radius`), at least this.
CORE_RADIUS = 0.2


@dataclass
class DeblendedImage:
    """Arcs and lens light of one lens on the first input's grid, and the figure's panels."""

    arcs: np.ndarray
    lens: np.ndarray
    mask: np.ndarray
    header: fits.Header
    pixel_scale: float
    method: str
    panels: list[tuple[str, np.ndarray]]
    summary: str
    #: The first input's exposure-time map, written as ``EXPTIME`` (it tells a combination of exposures).
    exposure: np.ndarray | None = None
    #: ICA's: the first band deblended by the Sérsic fit instead (the module docstring).
    alternative: "DeblendedImage | None" = None


def deblend_fits(band1: str | Path, band2: str | Path | None = None, *, method: str = "ica",
                 hdu: int | str | None = None,
                 psf1: str | Path | None = None, psf2: str | Path | None = None,
                 pixel_scale: float | None = None) -> DeblendedImage:
    """Separate lens light and arcs of FITS images (two bands for ``ica``, one for ``sersic``).

    With ``ica`` the figure panels also show the arcs left by the Sérsic method in the first band, the
    baseline the paper's Extended Data Fig. 2 sets ICA beside, and the result carries them as its
    ``alternative``.

    Raises
    ------
    LensnetValueError
        For an unknown method, a missing second band for ICA, or images that are not co-registered.
    LensnetIOError
        If a file cannot be read or has no pixel scale.
    """
    if method not in METHODS:
        raise LensnetValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    if method == "ica" and band2 is None:
        raise LensnetValueError("ICA needs two bands: give the second band's FITS file (or use method 'sersic')")
    first = _Band.read(band1, hdu, psf1, pixel_scale)
    if method == "sersic":
        return _sersic_deblended(first)
    second = _Band.read(band2, hdu, psf2, pixel_scale)
    if second.data.shape != first.data.shape or abs(second.scale - first.scale) > 1e-6 * first.scale:
        raise LensnetValueError(f"{second.label} ({second.data.shape}, {second.scale}\"/px) is not on the grid of "
                                f"{first.label} ({first.data.shape}, {first.scale}\"/px): co-register the bands first")
    sersic = _sersic_deblended(first)
    psfs = (first.psf, second.psf) if first.psf is not None and second.psf is not None else (None, None)
    result = ica_deblend(first.data, second.data, first.scale, psf1=psfs[0], psf2=psfs[1])
    band = (first, second)[result.band]
    panels = [(f"input {first.label}", first.data), (f"input {second.label}", second.data),
              ("ICA: lens light", result.lens), ("ICA: arcs", result.arcs),
              (f"baseline: {first.label} - Sérsic", sersic.arcs)]
    summary = (f"ICA{' (PSF-matched)' if psfs[0] is not None else ''}: arcs in {band.label}, colour "
               f"{second.label}/{first.label} {result.colour[0]:.2f} (arcs) vs {result.colour[1]:.2f} (lens); "
               f"{int(result.mask.sum())} pixels masked; {second.label} shifted by ({result.offset[0]:+.2f}, "
               f"{result.offset[1]:+.2f}) pixels onto {first.label}")
    return DeblendedImage(result.arcs, result.lens, result.mask, first.header, first.scale, method, panels, summary,
                          first.exposure, sersic)


def _sersic_deblended(band: "_Band") -> DeblendedImage:
    """``band``'s lens light removed by the Sérsic fit, its core masked out to where the fit's residuals stop."""
    fit, core = sersic_deblend(band.data, band.scale, noise=band.noise, psf=band.psf)
    panels = [(f"input ({band.label})", band.data), ("Sérsic lens light", fit.model),
              ("arcs: input - Sérsic", fit.arcs)]
    summary = (f"Sérsic lens light: R = {fit.params['R_sersic']:.2f}\", n = {fit.params['n_sersic']:.2f}, "
               f"reduced chi2 {fit.reduced_chi2:.2f}")
    return DeblendedImage(fit.arcs, fit.model, core | ~np.isfinite(band.data), band.header, band.scale, "sersic",
                          panels, summary, band.exposure)


def write_deblended(deblended: DeblendedImage, output: str | Path, figure: str | Path | None = None,
                    overwrite: bool = False) -> list[Path]:
    """Write the arcs (primary HDU, the input's header and WCS), ``LENS`` and ``MASK``; and the figure."""
    output = check_writable(output)
    if figure is not None:
        check_writable(figure)
    header = deblended.header.copy()
    for key, value in {**provenance_cards(), "DEBLEND": (deblended.method, "lens-light removal (lensnet)"),
                       "PIXSCALE": (deblended.pixel_scale, "arcsec/pixel")}.items():
        header[key] = value
    hdul = fits.HDUList([fits.PrimaryHDU(deblended.arcs.astype(np.float32), header=header),
                         fits.ImageHDU(deblended.lens.astype(np.float32), name="LENS"),
                         fits.ImageHDU(deblended.mask.astype(np.uint8), name="MASK")]
                        + ([] if deblended.exposure is None
                           else [fits.ImageHDU(deblended.exposure.astype(np.float32), name="EXPTIME")]))
    paths = [write_hdulist(output, hdul, overwrite)]
    if figure is not None:
        paths.append(deblended_figure(deblended, figure))
    return paths


def deblended_figure(deblended: DeblendedImage, figure: str | Path, critical: np.ndarray | None = None,
                     note: str = "") -> Path:
    """The deblending figure (:func:`~lensnet.deblend.figure.deblend_figure`: colour bars, north/east arrows from
    the WCS), with the critical curve where ``critical`` (:func:`critical_map`) is given; ``note`` ends its title."""
    return deblend_figure(deblended.panels, deblended.pixel_scale, figure,
                          title=deblended.summary + (f"; {note}" if note else ""), mask=deblended.mask,
                          critical=critical, pixel_to_sky=pixel_to_sky(celestial_wcs(deblended.header)),
                          unit=str(deblended.header.get("BUNIT", "")).strip())


def critical_map(deblended: DeblendedImage, lens: Sequence[float], offset: tuple[float, float] = (0.0, 0.0)
                 ) -> np.ndarray:
    """det A = (1 - f_xx)(1 - f_yy) - f_xy^2 of an SIE at the deblended image's pixels: its zero line is the
    critical curve. ``lens`` is (θE, e1, e2, center_x, center_y), arcsec, the centre relative to the point
    ``offset`` (x, y) arcsec from the image's centre (a catalogue row's estimate and its cutout's centre)."""
    h, w = deblended.arcs.shape
    scale = deblended.pixel_scale
    y, x = torch.meshgrid((torch.arange(h, dtype=torch.float64) - (h - 1) / 2) * scale,
                          (torch.arange(w, dtype=torch.float64) - (w - 1) / 2) * scale, indexing="ij")
    theta_e, e1, e2, cx, cy = (torch.tensor([float(v)], dtype=torch.float64) for v in lens)
    fxx, fxy, fyy = sie_hessian(x, y, theta_e, e1, e2, cx + offset[0], cy + offset[1])
    return ((1 - fxx) * (1 - fyy) - fxy ** 2)[0].numpy()


def sersic_deblend(data: np.ndarray, pixel_scale: float, *, noise: np.ndarray | float | None = None,
                   psf: np.ndarray | None = None) -> tuple[SersicFit, np.ndarray]:
    """The Sérsic fit of ``data``'s lens light (:func:`~lensnet.deblend.fit_lens_light`) and the core to mask
    when estimating from its arcs: out to where the fit's residuals stop (:func:`_misfit_radius`)."""
    fit = fit_lens_light(data, pixel_scale, noise=noise, psf=psf)
    h, w = data.shape
    y, x = np.mgrid[:h, :w]
    cx, cy = (fit.params["center_x"] / pixel_scale + (w - 1) / 2, fit.params["center_y"] / pixel_scale + (h - 1) / 2)
    r = np.hypot(x - cx, y - cy) * pixel_scale
    sigma = np.ones_like(fit.arcs) if noise is None else np.broadcast_to(np.asarray(noise, dtype=np.float64), data.shape)
    normalised = np.divide(fit.arcs, sigma, out=np.zeros_like(fit.arcs), where=sigma > 0)
    return fit, r < _misfit_radius(normalised, r, fit.mask)


def _misfit_radius(residual: np.ndarray, r: np.ndarray, arcs: np.ndarray, step: float = 0.04) -> float:
    """Where a single Sérsic stops misfitting a real galaxy's core: the first annulus (``step`` wide, from the
    centre) whose median |residual| (in sigma, arc pixels left out) is below 2; between 0.2" and 0.8"."""
    normalised = np.abs(np.nan_to_num(residual))
    for inner in np.arange(0.0, 0.8, step):
        ring = (r >= inner) & (r < inner + step) & ~arcs
        if ring.sum() >= 4 and np.median(normalised[ring]) < 2.0:
            return float(max(CORE_RADIUS, inner))
    return 0.8


@dataclass
class _Band:
    label: str
    data: np.ndarray
    header: fits.Header
    scale: float
    psf: np.ndarray | None
    noise: np.ndarray | None
    exposure: np.ndarray | None

    @classmethod
    def read(cls, path, hdu, psf_path, pixel_scale) -> "_Band":
        data, header, where = read_image_hdu(path, hdu)
        if data.ndim != 2:
            raise LensnetValueError(f"{where} is not a 2-D image (shape {data.shape})")
        scale = pixel_scale or header_pixel_scale(header, where)
        with fits.open(path) as hdul:
            names = {h.name for h in hdul}
        psf = read_image_hdu(psf_path, None)[0] if psf_path is not None else (
            read_image_hdu(path, "PSF")[0] if "PSF" in names else None)
        noise = read_image_hdu(path, "NOISE")[0] if "NOISE" in names else None
        exposure = next(iter(read_image_with_extensions(path, hdu, EXPOSURE_NAMES)[3].values()), None)
        if exposure is not None and exposure.shape != data.shape:
            exposure = None
        band = header.get("FILTER", Path(path).stem)
        return cls(str(band), data.astype(np.float64), header, float(scale), psf, noise, exposure)
