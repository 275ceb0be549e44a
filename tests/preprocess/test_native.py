"""A real image on its own pixels: noise maps, masks and PSFs as archive files lay them out (HST, Euclid)."""

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.preprocess import NativeCutout, read_native

FWHM_TO_SIGMA = 1 / (2 * math.sqrt(2 * math.log(2)))


def _wcs_header(n: int, scale: float) -> fits.Header:
    """North up, east left, ``scale`` arcsec/pixel, the sky centre on the image's centre."""
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cd = [[-scale / 3600, 0], [0, scale / 3600]]
    return w.to_header()


def _gaussian(n: int, fwhm_pix: float, center: float | None = None) -> np.ndarray:
    c = (n - 1) / 2 if center is None else center
    y, x = np.mgrid[:n, :n]
    g = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * (fwhm_pix * FWHM_TO_SIGMA) ** 2))
    return g / g.sum()


def _sky_image(n=60, sky=0.1, rms=0.01, flux=50.0, seed=0) -> np.ndarray:
    """A blob (FWHM 6 px) on a sky with Gaussian noise, in counts/s."""
    return sky + flux * _gaussian(n, 6.0) + np.random.default_rng(seed).normal(0.0, rms, (n, n))


def _hst(tmp_path: Path, err=True, wht=True, dq=True, name="hst.fits") -> Path:
    """An HST archive cutout: PRIMARY with EXPTIME; SCI with a WCS; ERR, WHT and DQ of the same shape."""
    n = 60
    hdus = [fits.PrimaryHDU(header=fits.Header([("EXPTIME", 2400.0)])),
            fits.ImageHDU(_sky_image(n).astype(np.float32), _wcs_header(n, 0.05), name="SCI")]
    if err:
        e = np.full((n, n), 0.02, np.float32)
        e[30, 31] = 0.0  # no data
        hdus.append(fits.ImageHDU(e, name="ERR"))
    if wht:
        w = np.full((n, n), 1 / 0.03**2, np.float32)
        w[29, 28] = 0.0
        hdus.append(fits.ImageHDU(w, name="WHT"))
    if dq:
        d = np.zeros((n, n), np.int16)
        d[32, 27] = 4096
        hdus.append(fits.ImageHDU(d, name="DQ"))
    path = tmp_path / name
    fits.HDUList(hdus).writeto(path)
    return path


def _euclid(tmp_path: Path) -> Path:
    """A Euclid cutout: VIS_FLUX with a WCS, VIS_RMS (1e16 without data), VIS_PSF on the image's pixels; another
    band's RMS and PSF come first in the file and must not be taken."""
    n = 40
    rms = np.full((n, n), 0.004, np.float32)
    rms[:, :10] = 1e16  # no data along the left edge
    rms[20, 25] = 100.0  # absurd next to the others
    hdus = [fits.PrimaryHDU(),
            fits.ImageHDU(np.full((n, n), 0.5, np.float32), name="NIR_Y_RMS"),
            fits.ImageHDU(_gaussian(15, 1.0).astype(np.float32), name="NIR_Y_PSF"),
            fits.ImageHDU(_sky_image(n, sky=0.0, rms=0.004).astype(np.float32), _wcs_header(n, 0.1), name="VIS_FLUX"),
            fits.ImageHDU(rms, name="VIS_RMS"),
            fits.ImageHDU(_gaussian(21, 1.7).astype(np.float32), name="VIS_PSF")]
    path = tmp_path / "euclid.fits"
    fits.HDUList(hdus).writeto(path)
    return path


def _plain(tmp_path: Path, exptime: float | None = 2400.0, data=None) -> Path:
    """Nothing but the image (with EXPTIME) in the primary HDU."""
    data = _sky_image() if data is None else data
    header = _wcs_header(data.shape[-1], 0.05)
    if exptime is not None:
        header["EXPTIME"] = exptime
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU(data.astype(np.float32), header).writeto(path)
    return path


def _psf_file(tmp_path: Path, scale: float, fwhm_arcsec: float = 0.15) -> Path:
    """A Gaussian PSF at ``scale`` arcsec/pixel, even-sized so that its centre lies between four pixels."""
    n = 2 * math.ceil(0.8 / scale)
    header = fits.Header([("PIXSCALE", scale)]) if scale < 0.05 else fits.Header([("CDELT1", scale / 3600)])
    path = tmp_path / f"psf_{scale}.fits"
    fits.PrimaryHDU(_gaussian(n, fwhm_arcsec / scale).astype(np.float32), header).writeto(path)
    return path


def _moments(kernel: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) relative to the central pixel, and the rms width along x, in pixels."""
    c = kernel.shape[0] // 2
    y, x = np.indices(kernel.shape) - c
    mx, my = (kernel * x).sum(), (kernel * y).sum()
    return mx, my, math.sqrt((kernel * (x - mx) ** 2).sum())


def test_hst_err_hdu_is_the_noise_and_dq_pixels_are_masked(tmp_path):
    path = _hst(tmp_path)
    cut = read_native(path, side_arcsec=1.5, psf_fwhm=0.1)
    assert isinstance(cut, NativeCutout)
    assert cut.noise_source == "ERR HDU" and cut.where == f"{path}[SCI]" and cut.pixel_scale == pytest.approx(0.05)
    assert cut.image.shape == cut.sigma.shape == cut.mask.shape == (31, 31)  # ceil(30) made odd
    # The image centre (29.5, 29.5) rounds up to pixel (30, 30); the cutout spans file pixels 15..45.
    sci = fits.getdata(path, "SCI").astype(np.float64)
    bad = {(15, 16), (17, 12)}  # ERR 0 at file (30, 31), DQ at file (32, 27)
    assert {tuple(p) for p in np.argwhere(cut.mask)} == bad
    np.testing.assert_array_equal(cut.image[~cut.mask], sci[15:46, 15:46][~cut.mask])  # background kept
    assert np.all(cut.sigma[~cut.mask] == np.float32(0.02)) and np.all(cut.sigma[cut.mask] == 1.0)
    assert np.all(cut.image[cut.mask] == 0.0)
    assert cut.offset == pytest.approx((0.025, 0.025))
    assert not read_native(path, side_arcsec=1.5, psf_fwhm=0.1, dq=False).mask[17, 12]


def test_wht_hdu_is_inverse_variance_and_zero_weights_are_masked(tmp_path):
    cut = read_native(_hst(tmp_path, err=False), side_arcsec=1.5, psf_fwhm=0.1, dq=False)
    assert cut.noise_source == "WHT HDU (inverse variance)"
    assert cut.mask.sum() == 1 and cut.mask[14, 13]  # file pixel (29, 28)
    np.testing.assert_allclose(cut.sigma[~cut.mask], 0.03, rtol=1e-6)


def test_explicit_noise_and_weight_come_first(tmp_path):
    path = _hst(tmp_path)
    noise = tmp_path / "noise.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((60, 60), 0.05))]).writeto(noise)
    cut = read_native(path, side_arcsec=1.0, psf_fwhm=0.1, noise=f"{noise}:1")
    assert cut.noise_source == f"{noise}[1]" and np.all(cut.sigma[~cut.mask] == 0.05)
    cut = read_native(path, side_arcsec=1.0, psf_fwhm=0.1, weight="WHT")
    assert cut.noise_source == "WHT HDU (inverse variance)"
    wht = tmp_path / "wht.fits"
    fits.PrimaryHDU(np.full((60, 60), 100.0)).writeto(wht)
    cut = read_native(path, side_arcsec=1.0, psf_fwhm=0.1, weight=wht)
    assert cut.noise_source == f"{wht}[0] (inverse variance)" and np.all(cut.sigma[~cut.mask] == 0.1)
    with pytest.raises(LensnetIOError, match="neither a file nor an HDU"):
        read_native(path, side_arcsec=1.0, psf_fwhm=0.1, noise="missing.fits")


def test_sky_rms_plus_poisson_from_exptime_or_gain(tmp_path):
    path = _plain(tmp_path)
    cut = read_native(path, side_arcsec=2.5, psf_fwhm=0.1)
    assert cut.noise_source == "sky rms + Poisson (EXPTIME 2400 s)" and not cut.mask.any()
    rms = cut.sigma.min()
    assert rms == pytest.approx(0.01, rel=0.15)
    above = cut.sigma > rms
    sky = cut.image[above] - (cut.sigma[above] ** 2 - rms**2) * 2400  # var = rms^2 + (image - sky) / g
    assert np.ptp(sky) < 1e-9 and sky[0] == pytest.approx(0.1, abs=0.002)
    assert np.all(cut.image[~above] <= sky[0] + 1e-12)
    with_gain = read_native(path, side_arcsec=2.5, psf_fwhm=0.1, gain=2.0)
    assert with_gain.noise_source == "sky rms + Poisson (gain 2)"
    peak = np.unravel_index(np.argmax(with_gain.image), with_gain.image.shape)
    assert with_gain.sigma[peak] ** 2 == pytest.approx(rms**2 + (with_gain.image[peak] - sky[0]) / 2.0)
    (tmp_path / "bare").mkdir()
    flat = read_native(_plain(tmp_path / "bare", exptime=None), side_arcsec=2.5, psf_fwhm=0.1)
    assert flat.noise_source == "sky rms" and np.ptp(flat.sigma) == 0 and flat.sigma[0, 0] == pytest.approx(rms)


def test_euclid_layout_rms_psf_and_no_data_region(tmp_path):
    cut = read_native(_euclid(tmp_path), side_arcsec=3.0)
    assert cut.noise_source == "VIS_RMS HDU" and cut.psf_source == "VIS_PSF HDU"
    assert cut.where.endswith("[VIS_FLUX]") and cut.image.shape == (31, 31)
    # File rows and columns 5..35 around the centre pixel (20, 20): columns 5..9 of the file have no data.
    assert cut.mask[:, :5].all() and cut.mask[15, 20]  # 1e16, and the absurd rms at file (20, 25)
    assert cut.mask.sum() == 31 * 5 + 1 and np.all(cut.sigma[~cut.mask] == np.float32(0.004))
    assert cut.psf.shape[0] % 2 == 1 and cut.psf.sum() == pytest.approx(1.0, abs=1e-12)
    mx, my, width = _moments(cut.psf)
    assert abs(mx) < 1e-9 and abs(my) < 1e-9  # on its own pixels and centred: the kernel is the HDU's, cropped
    assert width == pytest.approx(1.7 * FWHM_TO_SIGMA, rel=0.02)


@pytest.mark.parametrize("psf_scale", [0.03, 0.08])
def test_psf_file_at_another_scale_is_resampled(tmp_path, psf_scale):
    path = _psf_file(tmp_path, psf_scale)
    cut = read_native(_hst(tmp_path), side_arcsec=1.0, psf=path)
    assert cut.psf_source == f"{path}[0]"
    k = cut.psf
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.shape[0] <= 41
    assert k.sum() == pytest.approx(1.0, abs=1e-12) and k.min() >= 0
    mx, my, width = _moments(k)
    assert abs(mx) < 0.02 and abs(my) < 0.02  # the file's centre lies between pixels; the kernel's on one
    _, _, width_in = _moments(np.pad(fits.getdata(path).astype(float), ((1, 0), (1, 0))))  # odd, same moments
    assert width * 0.05 == pytest.approx(width_in * psf_scale, rel=0.05)  # the FWHM in arcsec is kept


def test_missing_psf_is_one_line_naming_the_three_ways(tmp_path):
    path = _plain(tmp_path)
    with pytest.raises(LensnetValueError) as info:
        read_native(path, side_arcsec=1.0)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "--psf FILE[:HDU]" in message and "PSF HDU" in message and "--psf-fwhm ARCSEC" in message


def test_psf_with_nan_names_its_file(tmp_path):
    psf = tmp_path / "nan_psf.fits"
    fits.PrimaryHDU(np.full((5, 5), np.nan)).writeto(psf)
    with pytest.raises(LensnetValueError, match="nan_psf.fits"):
        read_native(_plain(tmp_path), side_arcsec=1.0, psf=psf)


def test_cube_with_one_plane(tmp_path):
    data = _sky_image(40)
    cut = read_native(_plain(tmp_path, data=data[None]), side_arcsec=1.0, psf_fwhm=0.1)
    assert cut.image.shape == (21, 21)
    np.testing.assert_allclose(cut.image, data[10:31, 10:31].astype(np.float32))


def test_centre_between_pixels_offsets_and_edges(tmp_path):
    path = _hst(tmp_path)
    sci = fits.getdata(path, "SCI")
    cut = read_native(path, side_arcsec=1.0, center=(20.5, 30.25), psf_fwhm=0.1)
    assert cut.center_pixel == (21, 30) and cut.image[10, 10] == sci[30, 21]
    assert cut.offset == pytest.approx((0.5 * 0.05, -0.25 * 0.05))
    sky = cut.wcs.pixel_to_world(20.5, 30.25)
    on_sky = read_native(path, side_arcsec=1.0, sky_center=sky, psf_fwhm=0.1)
    assert on_sky.offset == pytest.approx(cut.offset, abs=1e-9)
    edge = read_native(path, side_arcsec=1.0, center=(2.0, 3.0), psf_fwhm=0.1, dq=False)
    assert edge.mask[:, :8].all() and edge.mask[:7].all() and not edge.mask[7:, 8:].any()
    assert np.all(edge.image[edge.mask] == 0) and np.all(edge.sigma[edge.mask] == 1)
    with pytest.raises(LensnetValueError, match="off the 60x60"):
        read_native(path, side_arcsec=1.0, center=(70.0, 3.0), psf_fwhm=0.1)


def test_noise_map_of_another_shape_names_both_shapes(tmp_path):
    noise = tmp_path / "small_noise.fits"
    fits.PrimaryHDU(np.ones((10, 12))).writeto(noise)
    with pytest.raises(LensnetShapeError, match=r"small_noise.fits.*\(10, 12\).*\(60, 60\)"):
        read_native(_hst(tmp_path), side_arcsec=1.0, psf_fwhm=0.1, noise=noise)


def test_user_masks_cosmic_rays_and_unreadable_files(tmp_path):
    data = _sky_image(40)
    data[27, 13] += 5.0  # a one-pixel hit on the sky (one on the blob is left to the fit's clipping)
    path = _plain(tmp_path, data=data)
    assert read_native(path, side_arcsec=1.0, psf_fwhm=0.1, cosmic_rays=True).mask[17, 3]
    user = np.zeros((40, 40), bool)
    user[20, 20] = True
    assert read_native(path, side_arcsec=1.0, psf_fwhm=0.1, mask=user).mask[10, 10]
    mask_file = tmp_path / "mask.fits"
    fits.PrimaryHDU(user.astype(np.uint8)).writeto(mask_file)
    # The hit is masked by default too (the header does not say the image combines exposures), and the user's pixel.
    assert read_native(path, side_arcsec=1.0, psf_fwhm=0.1, mask=mask_file).mask.sum() == 2
    assert read_native(path, side_arcsec=1.0, psf_fwhm=0.1, mask=mask_file, cosmic_rays=False).mask.sum() == 1
    with pytest.raises(LensnetShapeError, match=r"mask.*\(3, 3\).*\(40, 40\)"):
        read_native(path, side_arcsec=1.0, psf_fwhm=0.1, mask=np.zeros((3, 3), bool))
    # An EXPTIME map of overlapping exposures says the hits were rejected: no cosmic-ray mask by default.
    with fits.open(path) as hdul:
        exposure = np.full((40, 40), 800.0, np.float32)
        exposure[:, 30:] = 400.0
        fits.HDUList([hdul[0].copy(), fits.ImageHDU(exposure, name="EXPTIME")]).writeto(tmp_path / "combined.fits")
    assert read_native(tmp_path / "combined.fits", side_arcsec=1.0, psf_fwhm=0.1).mask.sum() == 0
    junk = tmp_path / "junk.fits"
    junk.write_text("not a FITS file")
    with pytest.raises(LensnetIOError, match="junk.fits"):
        read_native(junk, side_arcsec=1.0, psf_fwhm=0.1)


def test_real_euclid_file_uses_its_rms_and_psf_hdus(realdata):
    folder = realdata / "lenses" / "euclid-q1-102018665-neg576731"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    cut = read_native(folder / "vis.fits", side_arcsec=6.0)
    assert cut.noise_source == "VIS_RMS HDU" and cut.psf_source == "VIS_PSF HDU"
    assert cut.pixel_scale == pytest.approx(0.1) and cut.image.shape == (61, 61)
    assert np.isfinite(cut.sigma).all() and (cut.sigma > 0).all()
    assert cut.psf.shape[0] % 2 == 1 and cut.psf.sum() == pytest.approx(1.0)
