"""`lensnet refine` on archive-like files: the image's own pixels, noise and PSF as HST and Euclid cutouts carry
them, the joint model's columns, and the one-line error when no PSF is given."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.refine import ImageData, ModelSpec
from lensnet.refine.catalog import SYSTEMATIC_FLOOR

F64 = torch.float64
JOINT = ModelSpec(shear=True, lens_light="sersic")
# theta_E, e1, e2, cx, cy | gamma1, gamma2 | source R, n, e1, e2, cx, cy | light cx, cy | R, n, e1, e2
TRUTH = torch.tensor([[1.2, 0.06, -0.04, 0.02, -0.03, 0.02, -0.01, 0.2, 1.2, 0.1, 0.05, 0.08, 0.03,
                       0.02, -0.03, 0.7, 3.0, 0.05, -0.03]], dtype=F64)

pytestmark = pytest.mark.skipif(DEFAULT_PRETRAINED not in list_pretrained(), reason="needs the shipped model")


def _lens(n: int, scale: float, psf_sigma_pix: float, rms: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A lens with lens light on an n x n grid, with sky noise of ``rms`` (image, psf kernel)."""
    psf = gaussian_kernels(torch.tensor([psf_sigma_pix], dtype=F64), 6)
    blank = ImageData(torch.zeros(1, n, n, dtype=F64), torch.ones(1, n, n, dtype=F64),
                      torch.zeros(1, n, n, dtype=torch.bool), psf, PixelGrid(n, scale))
    unit = JOINT.unit_images(TRUTH, blank, supersample=2)
    image = (torch.tensor([[8.0, 3.0]], dtype=F64)[:, :, None, None] * unit).sum(1)[0].numpy() + 0.1
    return image + np.random.default_rng(seed).normal(0.0, rms, (n, n)), psf[0].numpy()


def _header(scale: float) -> fits.Header:
    header = fits.Header()
    header["PIXSCALE"] = scale
    return header


def test_hst_and_euclid_cutouts_are_fitted_on_their_own_pixels_with_their_noise_and_psf(tmp_path):
    hst, psf = _lens(100, 0.05, 1.0, 0.01, 0)
    hdus = [fits.PrimaryHDU(header=fits.Header([("EXPTIME", 1000.0)])),
            fits.ImageHDU(hst.astype(np.float32), _header(0.05), name="SCI"),
            fits.ImageHDU(np.full(hst.shape, 0.01, np.float32), name="ERR"),
            fits.ImageHDU(np.full(hst.shape, 1e4, np.float32), name="WHT")]
    fits.HDUList(hdus).writeto(tmp_path / "hst.fits")
    fits.PrimaryHDU(psf.astype(np.float32), _header(0.05)).writeto(tmp_path / "psf.fits")
    out = tmp_path / "hst.ecsv"
    args = ["--restarts", "2", "--max-iter", "60", "--no-progress-bar", "--lens-light", "sersic", "--shear"]
    result = CliRunner().invoke(cli, ["refine", str(tmp_path / "hst.fits"), "--hdu", "SCI", "--psf",
                                      str(tmp_path / "psf.fits"), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    row = Table.read(out)[0]
    assert row["noise_source"] == "ERR HDU" and row["psf_source"].endswith("psf.fits[0]")
    assert abs(row["theta_E_refined"] - 1.2) < 0.02 and 0.8 < row["reduced_chi2"] < 1.2
    assert row["n_fit_pixels"] > 0.95 * 101 * 101  # the 5.04" cutout of the network's field at 0.05"
    for name in ("gamma1", "gamma2", "light1_R_sersic", "light1_n_sersic"):
        assert np.isfinite(row[f"{name}_refined"]) and row[f"{name}_refined_sigma"] > 0
    assert row["theta_E_refined_lo95"] < row["theta_E_refined"] < row["theta_E_refined_hi95"]
    # The systematic floor is in the 1-sigma, the noise's part alone beside it.
    assert row["theta_E_refined_sigma"] >= SYSTEMATIC_FLOOR["theta_E"] > row["theta_E_refined_sigma_stat"] > 0
    assert np.isfinite(row["gamma_ext"]) and row["light1_flux"] > 0 and 0 < row["light1_q"] <= 1
    assert row["lensed"] and row["delta_bic"] > 10

    euclid, psf = _lens(60, 0.1, 0.8, 0.02, 1)
    rms = np.full(euclid.shape, 0.02, np.float32)
    rms[:, :5] = 1e16  # no data
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(euclid.astype(np.float32), _header(0.1), name="VIS_FLUX"),
            fits.ImageHDU(rms, name="VIS_RMS"), fits.ImageHDU(psf.astype(np.float32), name="VIS_PSF")]
    fits.HDUList(hdus).writeto(tmp_path / "euclid.fits")
    result = CliRunner().invoke(cli, ["refine", str(tmp_path / "euclid.fits"), "--hdu", "VIS_FLUX", "-o",
                                      str(tmp_path / "euclid.ecsv"), *args])
    assert result.exit_code == 0, result.output
    row = Table.read(tmp_path / "euclid.ecsv")[0]
    assert row["noise_source"] == "VIS_RMS HDU" and row["psf_source"] == "VIS_PSF HDU"
    assert abs(row["theta_E_refined"] - 1.2) < 0.05


def test_a_missing_psf_is_one_line_naming_the_three_ways(tmp_path):
    image, _ = _lens(80, 0.05, 1.0, 0.01, 2)
    fits.PrimaryHDU(image.astype(np.float32), _header(0.05)).writeto(tmp_path / "lens.fits")
    result = CliRunner().invoke(cli, ["refine", str(tmp_path / "lens.fits"), "-o", str(tmp_path / "x.ecsv"),
                                      "--no-progress-bar"])
    assert result.exit_code == 1
    message = [line for line in result.output.splitlines() if "no PSF" in line]
    assert len(message) == 1 and all(way in message[0] for way in ("--psf FILE", "PSF HDU", "--psf-fwhm"))
