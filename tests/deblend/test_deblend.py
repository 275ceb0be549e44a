"""Deblending: ICA separates two components of known mixing; the Sérsic fit recovers a Sérsic lens light."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner
from matplotlib.image import imread

from lensnet.cli import cli
from lensnet.deblend import fit_lens_light, ica_deblend
from lensnet.deblend.figure import deblend_figure
from lensnet.deblend.files import critical_map, deblend_fits
from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.sources.sersic import sersic_profile

N, SCALE = 96, 0.04


def _grid():
    t = (np.arange(N) - (N - 1) / 2) * SCALE
    return np.meshgrid(t, t)


def _lens_and_arc():
    x, y = _grid()
    lens = np.exp(-np.hypot(x, y / 0.8) / 0.25)  # red, concentrated
    r, angle = np.hypot(x, y), np.arctan2(y, x)
    arc = np.exp(-((r - 1.1) ** 2) / (2 * 0.05**2)) * np.exp(-((angle - 0.5) ** 2) / (2 * 0.6**2))  # blue ring arc
    return lens, arc


def test_ica_separates_two_components_of_known_mixing():
    lens, arc = _lens_and_arc()
    rng = np.random.default_rng(0)
    mixing = np.array([[0.4, 1.0], [1.0, 0.3]])  # band 1: blue (arc-bright); band 2: red (lens-bright)
    bands = [mixing[k, 0] * lens + mixing[k, 1] * arc + rng.normal(0, 0.002, lens.shape) for k in range(2)]
    result = ica_deblend(*bands, SCALE, mask_cosmic_rays=False)
    assert result.band == 0 and result.colour[1] > result.colour[0]  # the lens is the redder component
    outside = ~result.mask
    # The arcs, in band 1's units, are A_11 * arc to 6% of the arc's peak; the lens light left in them is small.
    err = np.abs(result.arcs - mixing[0, 1] * arc)[outside].max()
    assert err < 0.06 * mixing[0, 1] * arc.max(), err
    residual_lens = np.corrcoef(result.arcs[outside], lens[outside])[0, 1]
    assert abs(residual_lens) < 0.05


def test_ica_registers_bands_offset_on_the_lens_core_and_leaves_registered_ones():
    """Band 2 drizzled 1.2 pixels off band 1 (as SL2S J0219-0829's F600LP is): ICA shifts it back, measured on the lens's
    core, and the core's dipole leaves the arcs; registered bands are left as they are."""
    from scipy.ndimage import shift

    lens, arc = _lens_and_arc()
    mixing = np.array([[0.4, 1.0], [1.0, 0.3]])
    clean = [mixing[k, 0] * lens + mixing[k, 1] * arc for k in range(2)]
    rng = np.random.default_rng(1)
    noise = [rng.normal(0, 0.002, lens.shape) for _ in range(2)]
    x, y = _grid()
    near_core = (np.hypot(x, y) > 0.2) & (np.hypot(x, y) < 0.5)
    offset = shift(clean[1], (-1.2, 0.5), order=3, mode="nearest") + noise[1]
    registered = ica_deblend(clean[0] + noise[0], offset, SCALE, mask_cosmic_rays=False)
    assert registered.offset == pytest.approx((-0.5, 1.2), abs=0.05)
    unregistered = ica_deblend(clean[0] + noise[0], offset, SCALE, mask_cosmic_rays=False, register=False)
    aligned = ica_deblend(clean[0] + noise[0], clean[1] + noise[1], SCALE, mask_cosmic_rays=False)
    assert aligned.offset == (0.0, 0.0)
    truth = mixing[0, 1] * arc
    # rms of the dipole the core leaves in the arcs (the residual's part odd under a half turn about the centre),
    # 0.2-0.5" out: registered as low as never offset
    dipole = []
    for r in (registered, unregistered, aligned):
        residual = np.where(r.mask, 0.0, r.arcs - truth)
        odd, used = (residual - residual[::-1, ::-1]) / 2, near_core & ~r.mask & ~r.mask[::-1, ::-1]
        dipole.append(np.sqrt(np.mean(odd[used] ** 2)) / 0.002)
    assert dipole[0] < 1.2 * dipole[2] and dipole[1] > 3 * dipole[0], dipole


def test_ica_input_errors_are_named():
    lens, arc = _lens_and_arc()
    with pytest.raises(LensnetShapeError, match="band2"):
        ica_deblend(lens, arc[:10], SCALE)
    with pytest.raises(LensnetValueError, match="both bands"):
        ica_deblend(lens, arc, SCALE, psf1=np.ones((3, 3)))


def test_sersic_fit_recovers_a_sersic_lens_light_under_a_psf():
    x, y = _grid()
    params = dict(amplitude=2.0, R_sersic=0.6, n_sersic=3.0, e1=0.1, e2=-0.15, center_x=0.05, center_y=-0.03)
    light = sersic_profile(torch.tensor(x), torch.tensor(y), *(torch.tensor([v]) for v in params.values()))[0].numpy()
    psf = np.outer(*(2 * [np.exp(-0.5 * (np.arange(7) - 3) ** 2 / 1.2**2)]))
    from scipy.signal import fftconvolve

    image = fftconvolve(light, psf / psf.sum(), mode="same") + 0.1
    fit = fit_lens_light(image, SCALE, noise=0.001, psf=psf, rounds=1)
    for name, value in params.items():
        assert fit.params[name] == pytest.approx(value, rel=0.02, abs=0.005), name
    assert fit.params["sky"] == pytest.approx(0.1, abs=1e-3) and np.abs(fit.arcs).max() < 0.01 * light.max()


def test_a_sersic_fit_whose_line_search_diverges_keeps_finite_parameters(monkeypatch):
    # On a lens of bench_joint's 0.1" set L-BFGS's line search overflowed the amplitude and every parameter came back
    # NaN (the arcs too); here the second of its calls diverges.
    x, y = _grid()
    image = sersic_profile(torch.tensor(x), torch.tensor(y), *(torch.tensor([v]) for v in (2.0, 0.6, 3.0, 0.1, -0.15,
                                                                                            0.05, -0.03)))[0].numpy()
    step, calls = torch.optim.LBFGS.step, []

    def diverging(self, closure):
        calls.append(1)
        value = step(self, closure)
        if len(calls) == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(torch.nan)
        return value

    monkeypatch.setattr(torch.optim.LBFGS, "step", diverging)
    fit = fit_lens_light(image + 0.1, SCALE, noise=0.001)
    assert len(calls) == 3 and all(np.isfinite(v) for v in fit.params.values()) and np.isfinite(fit.arcs).all()
    assert fit.params["R_sersic"] == pytest.approx(0.6, rel=0.05)


def test_cli_deblend_keeps_the_header_and_writes_the_figure(tmp_path):
    lens, arc = _lens_and_arc()
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [35.0, -8.5], [48.5, 48.5]
    w.wcs.cd = [[-SCALE / 3600, 0], [0, SCALE / 3600]]
    rng = np.random.default_rng(1)
    for k, (a, b) in enumerate(((0.4, 1.0), (1.0, 0.3))):
        fits.PrimaryHDU((a * lens + b * arc + rng.normal(0, 0.002, lens.shape)).astype(np.float32),
                        header=w.to_header()).writeto(tmp_path / f"b{k}.fits")
    out, fig = tmp_path / "arcs.fits", tmp_path / "arcs.png"
    result = CliRunner().invoke(cli, ["deblend", str(tmp_path / "b0.fits"), str(tmp_path / "b1.fits"), "-o", str(out),
                                      "--figure", str(fig)])
    assert result.exit_code == 0, result.output
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LENS", "MASK"] and hdul[0].header["CRVAL1"] == 35.0
        assert hdul[0].header["DEBLEND"] == "ica" and hdul["MASK"].data.any()
    assert fig.read_bytes()[:4] == b"\x89PNG"
    single = CliRunner().invoke(cli, ["deblend", str(tmp_path / "b1.fits"), "-o", str(tmp_path / "s.fits")])
    assert single.exit_code == 0 and "Sérsic lens light" in single.output
    # A first band's exposure-time map goes with the arcs: it tells predict the image combines exposures.
    with fits.open(tmp_path / "b1.fits") as hdul:
        exposure = fits.ImageHDU(np.where(np.arange(N) < 40, 600.0, 300.0)[None].repeat(N, 0).astype(np.float32),
                                 name="EXPTIME")
        fits.HDUList([hdul[0].copy(), exposure]).writeto(tmp_path / "b1_exp.fits")
    assert CliRunner().invoke(cli, ["deblend", str(tmp_path / "b1_exp.fits"), "-o", str(tmp_path / "e.fits")]).exit_code == 0
    with fits.open(tmp_path / "e.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "LENS", "MASK", "EXPTIME"]
        np.testing.assert_array_equal(hdul["EXPTIME"].data, exposure.data)


def test_ica_carries_the_first_bands_sersic_arcs_as_its_alternative(tmp_path):
    lens, arc = _lens_and_arc()
    rng = np.random.default_rng(2)
    header = fits.Header({"PIXSCALE": SCALE})
    for k, (a, b) in enumerate(((0.4, 1.0), (1.0, 0.3))):
        fits.PrimaryHDU((a * lens + b * arc + rng.normal(0, 0.002, lens.shape)).astype(np.float32),
                        header=header).writeto(tmp_path / f"b{k}.fits")
    ica = deblend_fits(tmp_path / "b0.fits", tmp_path / "b1.fits", method="ica")
    alone = deblend_fits(tmp_path / "b0.fits", method="sersic")
    assert ica.method == "ica" and alone.alternative is None
    assert ica.alternative.method == "sersic" and ica.alternative.alternative is None
    np.testing.assert_allclose(ica.alternative.arcs, alone.arcs)
    np.testing.assert_array_equal(ica.alternative.mask, alone.mask)
    np.testing.assert_allclose(ica.panels[-1][1], alone.arcs)  # the figure's baseline is the alternative


def test_the_critical_map_changes_sign_on_the_einstein_ring_about_the_offset_centre(tmp_path):
    """A round SIE's det A = 1 - θE/r: its zero line, the critical curve the figures draw, is the ring r = θE about
    the lens centre, which is the estimate's centre plus the cutout's offset from the image's centre."""
    header = fits.Header({"PIXSCALE": SCALE})
    lens, arc = _lens_and_arc()
    fits.PrimaryHDU((lens + arc).astype(np.float32), header=header).writeto(tmp_path / "b.fits")
    deblended = deblend_fits(tmp_path / "b.fits", method="sersic")
    det = critical_map(deblended, [1.0, 0.0, 0.0, 0.2, 0.0], offset=(0.1, -0.1))
    x, y = _grid()
    r = np.hypot(x - 0.3, y + 0.1)
    np.testing.assert_allclose(det[r > 0.05], (1 - 1.0 / r)[r > 0.05], atol=1e-6)
    assert (det[r < 0.95] < 0).all() and (det[r > 1.05] > 0).all()


def test_a_figure_panel_on_its_own_axes_skips_the_image_mask(tmp_path):
    image, mask = np.random.default_rng(0).normal(size=(20, 20)), np.zeros((20, 20), dtype=bool)
    mask[5:8, 5:8] = True
    panels = [("data", image), ("residual / sigma", image), ("source plane", image[:6, :6], (-0.3, 0.3, 0.1, 0.7))]
    path = deblend_figure(panels, 0.1, tmp_path / "fit.png", title="t", mask=mask, residuals=("residual / sigma",))
    assert imread(path).shape[1] > imread(path).shape[0] * 2  # three panels side by side
