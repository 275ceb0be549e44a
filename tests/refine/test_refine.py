"""The likelihood fit: its chi^2 is lenstronomy's, it recovers a noiseless lens, bad inputs are refused."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner
from lenstronomy.Data.imaging_data import ImageData as LenstronomyData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from lensnet.cli import cli
from lensnet.conventions import PARAM_NAMES, LensParams
from lensnet.errors import LensnetShapeError, LensnetValueError
from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained
from lensnet.lensing import SIE, PixelGrid
from lensnet.observe.psf import convolve, gaussian_kernels
from lensnet.refine import ImageData, refine_lenses
from lensnet.refine.fit import _coarse, _laplace_sigma
from lensnet.refine.model import (SIE_SERSIC, chi_square_at, linear_solve, minimize_rows, model_images, to_physical,
                                  to_unconstrained, unit_images)
from lensnet.simulate import LensSimulator, get_preset, render
from lensnet.simulate.seeds import batch_seed
from lensnet.sources import Sersic

F64 = torch.float64
GRID = PixelGrid(80, 0.06)
# theta_E, e1, e2, center_x, center_y | R_sersic, n_sersic, e1, e2, center_x, center_y
TRUTH = torch.tensor([[1.2, 0.1, -0.05, 0.03, -0.02, 0.15, 1.0, 0.1, 0.05, 0.05, 0.02],
                      [0.9, -0.15, 0.1, -0.05, 0.04, 0.2, 1.5, -0.1, 0.0, -0.1, 0.05]], dtype=F64)


def _images(params, psf, amplitude=1.0, supersample=1):
    lens = SIE(LensParams(*params[:, :5].T))
    n = len(params)
    source = Sersic(torch.full((n,), amplitude, dtype=F64), *params[:, 5:].T)
    return convolve(render(lens, source, GRID, supersample)[:, None], psf)[:, 0]


def test_chi_square_is_lenstronomys():
    psf = gaussian_kernels(torch.full((1,), 1.2, dtype=F64), 5)
    sigma = 0.02
    image = _images(TRUTH[:1], psf) + sigma * torch.randn(1, 80, 80, generator=torch.Generator().manual_seed(0),
                                                          dtype=F64)
    data = ImageData(image, torch.full_like(image, sigma), torch.zeros_like(image, dtype=torch.bool), psf, GRID)
    trial = TRUTH[:1] * 1.02  # some other parameters, amplitude 0.9
    ours = chi_square_at(trial, torch.tensor([[0.9]], dtype=F64), torch.zeros(1, dtype=F64), data)
    corner = -(80 - 1) / 2 * GRID.pixel_scale
    kwargs_data = {"image_data": image[0].numpy(), "background_rms": sigma, "exposure_time": 1e12,
                   "transform_pix2angle": np.diag([GRID.pixel_scale] * 2), "ra_at_xy_0": corner,
                   "dec_at_xy_0": corner}
    lenstronomy_data = LenstronomyData(**kwargs_data)
    model = ImageModel(lenstronomy_data, PSF(psf_type="PIXEL", kernel_point_source=psf[0].numpy()),
                       lens_model_class=LensModel(["SIE"]), source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": 1})
    t = trial[0].tolist()
    kwargs_lens = [{"theta_E": t[0], "e1": t[1], "e2": t[2], "center_x": t[3], "center_y": t[4]}]
    kwargs_source = [{"amp": 0.9, "R_sersic": t[5], "n_sersic": t[6], "e1": t[7], "e2": t[8], "center_x": t[9],
                      "center_y": t[10]}]
    prediction = model.image(kwargs_lens=kwargs_lens, kwargs_source=kwargs_source)
    log_l = lenstronomy_data.log_likelihood(prediction, np.ones((80, 80)))
    assert -0.5 * float(ours[0]) == pytest.approx(log_l, rel=1e-5)


def test_linear_solve_and_parameter_transforms():
    psf = gaussian_kernels(torch.full((2,), 1.0, dtype=F64), 4)
    data = ImageData(torch.zeros(2, 80, 80, dtype=F64), torch.ones(2, 80, 80, dtype=F64),
                     torch.zeros(2, 80, 80, dtype=torch.bool), psf, GRID)
    unit = unit_images(TRUTH, data)
    data.image = 3.0 * unit[:, 0] + 0.25
    amplitude, background = linear_solve(unit, data)
    torch.testing.assert_close(amplitude, torch.full((2, 1), 3.0, dtype=F64))
    torch.testing.assert_close(background, torch.full((2,), 0.25, dtype=F64))
    torch.testing.assert_close(to_physical(to_unconstrained(TRUTH)), TRUTH)


def test_the_coarse_search_image_is_the_blurred_binned_model():
    """The first round's likelihood (blurred, 2 x 2 binned) is that of the same model rendered on the
    coarse grid: a noiseless image matches its own lens there, keeps its flux, and its mask follows."""
    psf = gaussian_kernels(torch.full((2,), 1.0, dtype=F64), 4)
    image = _images(TRUTH, psf) + 0.1
    mask = torch.zeros_like(image, dtype=torch.bool)
    mask[:, :, :20] = True  # a quarter of the columns
    data = ImageData(image, torch.full_like(image, 0.01), mask, psf, GRID)
    coarse = _coarse(data, 4.0)
    assert coarse.grid.n_pix == 40 and coarse.grid.pixel_scale == pytest.approx(0.12)
    assert coarse.mask[:, :, :10].all() and not coarse.mask[:, :, 16:].any()
    torch.testing.assert_close(coarse.psf.sum((1, 2)), torch.ones(2, dtype=F64))
    torch.testing.assert_close(coarse.sigma[:, :, 10:], torch.full_like(coarse.sigma[:, :, 10:], 0.005))
    # Noiseless: the true lens rendered on the coarse grid matches the coarse image to 3% of its peak (0.3%
    # without the mask, whose edge the blur smears), a 10% wrong Einstein radius to no better than 10%.
    unmasked = ~coarse.mask
    for params, lo, hi in ((TRUTH, 0.0, 0.03), (TRUTH * torch.tensor([1.1] + [1.0] * 10, dtype=F64), 0.1, 1.0)):
        model, _, _ = model_images(params, coarse, supersample=2)
        misfit = ((coarse.image - model).abs() * unmasked).amax((1, 2)) / (coarse.image - 0.1).amax((1, 2))
        assert ((misfit >= lo) & (misfit < hi)).all(), misfit
    flux = (coarse.image - 0.1)[:, :, 16:].sum() * 4
    assert float(flux) == pytest.approx(float((image - 0.1)[:, :, 32:].sum()), rel=0.05)


def test_a_noiseless_lens_is_recovered_from_a_start_ten_percent_off():
    psf = gaussian_kernels(torch.full((2,), 1.0, dtype=F64), 4)
    image = _images(TRUTH, psf, supersample=5)  # the sky is continuous: the fit's adaptive sampling follows it
    data = ImageData(image, torch.full_like(image, 0.01 * float(image.max())), torch.zeros_like(image, dtype=torch.bool),
                     psf, GRID)
    start = TRUTH[:, :5] * torch.tensor([1.1, 1.1, 0.9, 1.1, 0.9], dtype=F64)
    result = refine_lenses(data, start, torch.full_like(start, 0.1), prior=False, restarts=1, clip=None)
    assert (result.lens - TRUTH[:, :5]).abs().max() < 1e-3, result.lens - TRUTH[:, :5]
    assert (result.reduced_chi2 < 1e-3).all()
    assert torch.isfinite(result.lens_sigma).all() and (result.lens_sigma < 0.01).all()


def test_laplace_errors_stay_finite_when_the_sersic_index_saturates():
    """A Sersic index driven to its bound leaves the curvature singular; the lens's errors stay finite."""
    psf = gaussian_kernels(torch.full((2,), 1.0, dtype=F64), 4)
    image = _images(TRUTH, psf)
    noise = torch.full_like(image, 0.01 * float(image.max()))
    data = ImageData(image, noise, torch.zeros_like(image, dtype=torch.bool), psf, GRID)
    u = to_unconstrained(TRUTH)
    u[:, 6] = 1e4  # n_sersic pinned at 6: the model no longer depends on this coordinate
    sigma = _laplace_sigma(SIE_SERSIC, u, data, None, 1)
    assert torch.isfinite(sigma[:, :5]).all() and (sigma[:, :5] < 0.01).all()


def test_bad_inputs_get_clear_errors():
    psf = gaussian_kernels(torch.full((1,), 1.0, dtype=F64), 4)
    image = torch.zeros(1, 80, 80, dtype=F64)
    start, spread = TRUTH[:1, :5], torch.full((1, 5), 0.1, dtype=F64)
    no_mask = torch.zeros_like(image, dtype=torch.bool)
    with pytest.raises(LensnetValueError, match="noise"):
        refine_lenses(ImageData(image, torch.zeros_like(image), no_mask, psf, GRID), start, spread)
    with pytest.raises(LensnetValueError, match="entirely masked"):
        refine_lenses(ImageData(image, torch.ones_like(image), torch.ones_like(no_mask), psf, GRID), start, spread)
    with pytest.raises(LensnetShapeError, match="start"):
        refine_lenses(ImageData(image, torch.ones_like(image), no_mask, psf, GRID), start[:, :3], spread)
    with pytest.raises(LensnetValueError, match="NaN"):
        refine_lenses(ImageData(image.clone().fill_(float("nan")), torch.ones_like(image), no_mask, psf, GRID),
                      start, spread)


def test_refine_command_adds_refined_columns(tmp_path):
    """A simulated paper lens as a FITS file: `lensnet refine` writes the network's and the refined columns."""
    if DEFAULT_PRETRAINED not in list_pretrained():
        pytest.skip("needs the shipped model")
    batch = LensSimulator(get_preset("paper").for_split("test")).simulate(1, batch_seed(5, 0))
    path = tmp_path / "lens.fits"
    header = fits.Header()
    header["PIXSCALE"] = 0.04
    fits.PrimaryHDU(batch.observed[0, 0].numpy(), header=header).writeto(path)
    fwhm = 2.3548 * float(batch.record["psf_sigma_pix"][0]) * 0.04
    out = tmp_path / "refined.ecsv"
    result = CliRunner().invoke(cli, ["refine", str(path), "--psf-fwhm", f"{max(fwhm, 0.01):.4f}", "-o", str(out),
                                      "--restarts", "1", "--max-iter", "30", "--no-progress-bar"])
    assert result.exit_code == 0, result.output
    table = Table.read(out)
    for name in PARAM_NAMES:
        assert np.isfinite(table[f"{name}_refined"][0]) and table[f"{name}_refined"].unit == table[name].unit
    assert 0.2 < table["reduced_chi2"][0] < 5 and 0 < table["q_refined"][0] <= 1
    assert abs(table["theta_E_refined"][0] - float(batch.targets[0, 0])) < 0.1
    missing = CliRunner().invoke(cli, ["predict", str(path), "--refine", "-o", str(tmp_path / "x.ecsv"),
                                       "--no-progress-bar"])
    assert missing.exit_code != 0 and "--psf-fwhm" in missing.output and "--psf " in missing.output


def test_restarts_drawn_outside_the_lens_range_are_brought_back():
    psf = gaussian_kernels(torch.full((1,), 1.0, dtype=F64), 4)
    image = _images(TRUTH[:1], psf)
    data = ImageData(image, torch.full_like(image, 0.05 * float(image.max())), torch.zeros_like(image, dtype=torch.bool),
                     psf, GRID)
    start = torch.tensor([[0.2, 0.5, 0.5, 0.0, 0.0]], dtype=F64)
    result = refine_lenses(data, start, torch.full_like(start, 2.0), prior=False, restarts=4, max_iter=9, clip=None)
    assert torch.isfinite(result.lens).all() and result.lens[0, 0] > 0


def test_a_profile_collinear_with_the_background_gets_amplitudes_not_an_error():
    # A source larger than the field is flat, as the background is: the normal equations are singular in float32.
    image = torch.full((2, 8, 8), 3.0)
    data = ImageData(image, torch.ones_like(image), torch.zeros(2, 8, 8, dtype=torch.bool),
                     torch.ones(2, 1, 1), PixelGrid(8, 0.1))
    unit = torch.ones(2, 1, 8, 8)
    unit[1, 0, 0, 0] = 2.0  # the second lens's system is regular
    amplitude, background = linear_solve(unit, data)
    model = amplitude[:, :, None, None] * unit + background[:, None, None, None]
    assert torch.isfinite(amplitude).all() and torch.allclose(model[:, 0], image, atol=1e-4)


def test_rows_are_minimised_independently():
    """One row's scale (1e6 times another's) or a far start does not change another row's path: each row's
    end point is the one it reaches alone, and every row reaches its minimum."""
    scales = torch.tensor([1.0, 1e6, 1e-3], dtype=F64)

    def rosenbrock(v, rows):
        return scales[rows] * ((1 - v[:, 0]) ** 2 + 100 * (v[:, 1] - v[:, 0] ** 2) ** 2)

    start = torch.tensor([[-1.2, 1.0], [30.0, -40.0], [-1.2, 1.0]], dtype=F64)
    together = minimize_rows(start, rosenbrock, 400)
    for i in range(3):
        alone = minimize_rows(start[i:i + 1], lambda v, rows: rosenbrock(v, rows + i), 400)
        torch.testing.assert_close(together[i:i + 1], alone)
    torch.testing.assert_close(together, torch.ones(3, 2, dtype=F64), atol=1e-4, rtol=0)


def test_a_start_off_the_cutout_neither_breaks_its_lens_nor_its_batch():
    """A network estimate of theta_E 5" and a centre 30" off a 4.8" cutout: that lens is searched unpenalised
    from the cutout's centre and found, and the other lens of the batch ends where it ends alone."""
    psf = gaussian_kernels(torch.full((2,), 1.0, dtype=F64), 4)
    image = _images(TRUTH, psf, supersample=3)
    noise = torch.full_like(image, 0.02 * float(image.max()))
    image = image + noise * torch.randn(image.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    data = ImageData(image, noise, torch.zeros_like(image, dtype=torch.bool), psf, GRID)
    start = TRUTH[:, :5] * torch.tensor([1.05, 1.0, 1.0, 1.0, 1.0], dtype=F64)
    start[1] = torch.tensor([5.0, 0.3, -0.2, 30.0, -13.0], dtype=F64)
    spread = torch.full_like(start, 0.1)
    both = refine_lenses(data, start, spread, max_iter=120)
    alone = refine_lenses(data.take(torch.tensor([0])), start[:1], spread[:1], max_iter=120)
    torch.testing.assert_close(both.lens[:1], alone.lens)
    assert (both.prior[1][1] == torch.inf).all() and torch.allclose(both.prior[1][0], spread[0])
    assert ((both.lens - TRUTH[:, :5]).abs() < 5 * both.lens_sigma).all(), (both.lens - TRUTH[:, :5]) / both.lens_sigma


def test_a_collapsed_network_spread_is_no_prior():
    """A start 0.3" long in theta_E and 0.3" off centre whose spread has collapsed (0.001: no network gives a lens
    that): searched without a prior, from restarts drawn broadly, the lens is found; a credible spread stays one."""
    psf = gaussian_kernels(torch.full((1,), 1.0, dtype=F64), 4)
    image = _images(TRUTH[:1], psf, supersample=3)
    noise = torch.full_like(image, 0.02 * float(image.max()))
    image = image + noise * torch.randn(image.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    data = ImageData(image, noise, torch.zeros_like(image, dtype=torch.bool), psf, GRID)
    start = TRUTH[:1, :5] + torch.tensor([[0.3, 0.0, 0.0, 0.3, 0.0]], dtype=F64)
    collapsed = refine_lenses(data, start, torch.full_like(start, 0.001), max_iter=120)
    assert (collapsed.prior[1] == torch.inf).all()
    assert ((collapsed.lens - TRUTH[:1, :5]).abs() < 5 * collapsed.lens_sigma).all()
    credible = refine_lenses(data, start, torch.full_like(start, 0.05), restarts=1, max_iter=9)
    assert torch.allclose(credible.prior[1], torch.full_like(start, 0.05))
