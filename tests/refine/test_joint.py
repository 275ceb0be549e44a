"""The joint model (mass + shear + lens light + source): its chi^2 is lenstronomy's on native pixels with a
noise map and a pixel PSF, a noiseless joint lens is recovered, Laplace errors agree with the MCMC posterior."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from lenstronomy.Data.imaging_data import ImageData as LenstronomyData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from lensnet.errors import LensnetValueError
from lensnet.lensing import PixelGrid
from lensnet.observe.psf import gaussian_kernels
from lensnet.refine import ImageData, ModelSpec, refine_lenses
from lensnet.refine import fit as fit_module
from lensnet.refine.fit import LENSED_DELTA_BIC, delta_bic
from lensnet.refine.model import ADAPTIVE_MAX_FRACTION, adaptive_pixels, chi_square_at, cusp_pixels
from lensnet.refine.posterior import sample_posterior

F64 = torch.float64
GRID = PixelGrid(60, 0.08)
JOINT = ModelSpec(mass="sie", shear=True, lens_light="sersic")
# theta_E, e1, e2, cx, cy | gamma1, gamma2 | source R, n, e1, e2, cx, cy | light cx, cy | R, n, e1, e2
TRUTH = torch.tensor([[1.3, 0.08, -0.05, 0.04, -0.03, 0.03, -0.02, 0.2, 1.2, 0.1, 0.05, 0.06, 0.03,
                       0.03, -0.02, 0.8, 3.0, 0.05, -0.03]], dtype=F64)
AMPLITUDES = torch.tensor([[3.0, 1.5]], dtype=F64)  # source, lens light (flux / arcsec^2 at R_sersic)


def _psf() -> torch.Tensor:
    """An asymmetric pixel PSF, so that a flipped kernel would show."""
    kernel = gaussian_kernels(torch.full((1,), 1.3, dtype=F64), 5)
    kernel[0, 5, 7] += 0.05
    kernel[0, 3, 4] += 0.02
    return kernel / kernel.sum()


def _data(image: torch.Tensor, sigma: torch.Tensor, psf: torch.Tensor) -> ImageData:
    return ImageData(image, sigma, torch.zeros_like(image, dtype=torch.bool), psf, GRID)


def _noiseless(spec: ModelSpec, params: torch.Tensor, amplitudes: torch.Tensor, psf: torch.Tensor,
               supersample: int = 1) -> torch.Tensor:
    blank = _data(torch.zeros(1, 60, 60, dtype=F64), torch.ones(1, 60, 60, dtype=F64), psf)
    unit = spec.unit_images(params, blank, supersample)
    return (amplitudes[:, :, None, None] * unit).sum(1) + 0.05


def _noisy_joint_lens(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The joint TRUTH rendered at 5 x 5 sub-pixels with white noise of 0.01 (``seed``): PSF, image, noise map,
    and a start 5% long in theta_E."""
    psf = _psf()
    clean = _noiseless(JOINT, TRUTH, AMPLITUDES, psf, 5)
    sigma = torch.full_like(clean, 0.01)
    image = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return psf, image, sigma, TRUTH[:, :5] * torch.tensor([1.05, 1.0, 1.0, 1.0, 1.0], dtype=F64)


@pytest.mark.parametrize("mass", ["sie", "epl"])
def test_joint_chi_square_is_lenstronomys_with_a_noise_map_and_pixel_psf(mass):
    spec = ModelSpec(mass=mass, shear=True, lens_light="sersic")
    truth = TRUTH if mass == "sie" else torch.cat([TRUTH[:, :5], torch.tensor([[2.15]], dtype=F64), TRUTH[:, 5:]], 1)
    psf = _psf()
    generator = torch.Generator().manual_seed(1)
    sigma = 0.02 + 0.03 * torch.rand(1, 60, 60, generator=generator, dtype=F64)  # a varying noise map
    image = _noiseless(spec, truth, AMPLITUDES, psf) + sigma * torch.randn(1, 60, 60, generator=generator, dtype=F64)
    trial = truth * 1.03
    amplitudes = torch.tensor([[2.5, 1.7]], dtype=F64)
    ours = chi_square_at(trial, amplitudes, torch.tensor([0.04], dtype=F64), _data(image, sigma, psf), spec=spec)
    corner = -(60 - 1) / 2 * GRID.pixel_scale
    data = LenstronomyData(image_data=image[0].numpy() - 0.04, noise_map=sigma[0].numpy(),
                           transform_pix2angle=np.diag([GRID.pixel_scale] * 2), ra_at_xy_0=corner, dec_at_xy_0=corner)
    model = ImageModel(data, PSF(psf_type="PIXEL", kernel_point_source=psf[0].numpy()),
                       lens_model_class=LensModel([mass.upper(), "SHEAR"]),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": 1})
    t = trial[0].tolist()
    mass_kwargs = dict(zip(["theta_E", "e1", "e2", "center_x", "center_y"], t[:5]))
    if mass == "epl":
        mass_kwargs["gamma"] = t.pop(5)
    kwargs_lens = [mass_kwargs, {"gamma1": t[5], "gamma2": t[6], "ra_0": 0.0, "dec_0": 0.0}]
    sersic = ["R_sersic", "n_sersic", "e1", "e2"]
    kwargs_source = [{"amp": 2.5, **dict(zip(sersic + ["center_x", "center_y"], t[7:13]))}]
    kwargs_light = [{"amp": 1.7, "center_x": t[13], "center_y": t[14], **dict(zip(sersic, t[15:19]))}]
    prediction = model.image(kwargs_lens=kwargs_lens, kwargs_source=kwargs_source, kwargs_lens_light=kwargs_light)
    log_l = data.log_likelihood(prediction, np.ones((60, 60)))
    assert -0.5 * float(ours[0]) == pytest.approx(log_l, rel=1e-6)


def test_a_noiseless_joint_lens_is_recovered_from_a_start_ten_percent_off():
    psf = _psf()
    # Rendered at 5 x 5 sub-pixels, as the sky is continuous: the fit's adaptive sampling follows it.
    image = _noiseless(JOINT, TRUTH, AMPLITUDES, psf, 5)
    arcs = image - _noiseless(ModelSpec(mass="none", lens_light="sersic", source=False), TRUTH[:, 13:], AMPLITUDES[:, 1:],
                              psf, 5)
    sigma = torch.full_like(image, 0.01 * float(arcs.max()))
    start = TRUTH[:, :5] * torch.tensor([1.1, 1.1, 0.9, 1.1, 0.9], dtype=F64)
    result = refine_lenses(_data(image, sigma, psf), start, torch.full_like(start, 0.1), spec=JOINT, prior=False,
                           restarts=1, clip=None, max_iter=240)
    assert result.params.shape == (1, JOINT.n_params)
    error = (result.params - TRUTH)[0]
    assert error[:7].abs().max() < 2e-3, error
    assert (result.amplitude - AMPLITUDES).abs().max() < 0.01 * AMPLITUDES.max()
    assert float(result.reduced_chi2[0]) < 1e-3
    assert torch.isfinite(result.sigma).all()


@pytest.mark.parametrize("network_e", [(0.08, -0.05), (0.0, 1.5)])
def test_a_poor_fit_is_searched_again_from_round_starts_and_a_good_one_is_not(monkeypatch, network_e):
    """The staged search's first answer replaced by a wrong minimum (theta_E 30% low): its chi^2 lies far above
    expectation, so the lens is searched again, from round SIE starts and the network's lens (also where the
    network's |e| is not a lens's), and the truth is found; a right answer is searched once."""
    psf, image, sigma, start = _noisy_joint_lens(3)
    start[:, 1:3] = torch.tensor([network_e], dtype=F64)
    staged, calls = fit_module._staged, []

    def wrong_first(spec, data, arcs, lens_starts, *args, **kwargs):
        u, searched, value = staged(spec, data, arcs, lens_starts, *args, **kwargs)
        calls.append(lens_starts)
        if len(calls) == 1 and corrupt:
            p = spec.to_physical(u)
            p[:, 0] *= 0.7
            u = spec.to_unconstrained(p)
        return u, searched, value

    monkeypatch.setattr(fit_module, "_staged", wrong_first)
    for corrupt in (False, True):
        calls.clear()
        result = refine_lenses(_data(image, sigma, psf), start, torch.full_like(start, 0.05), spec=JOINT, restarts=2,
                               max_iter=150, prior=False)
        assert torch.isfinite(result.params).all()
        if corrupt:
            assert len(calls) == 2
        if network_e == (0.0, 1.5):
            continue  # such a start ends where it may: this case asks only that the retry runs from it
        assert len(calls) == (2 if corrupt else 1)
        assert float(result.reduced_chi2[0]) < 1.1
        assert ((result.params - TRUTH)[0, :5].abs() < 4 * result.sigma[0, :5]).all(), result.params - TRUTH
    # The retry's SIE starts are the first search's, made round.
    made_round = calls[0].clone()
    made_round[:, 1:3] -= start[:, 1:3].to(calls[0].dtype)
    data = _data(image, sigma, psf)
    assert torch.allclose(calls[1], fit_module._clamped(made_round, data.grid.n_pix * data.grid.pixel_scale / 2))


def test_a_poor_fits_joint_search_also_starts_from_the_ring(monkeypatch):
    """Retried, a lens is also searched jointly from the ring start (placed on the lens light's centre at the
    radius that gathers the arcs) as placed, as fitted to the arcs, and placed again on the arcs that the lens
    light leaves when fitted alone around that ring: three nearly round lenses on the light, near the true
    theta_E, beside the staged search's two starts and the network's."""
    psf, image, sigma, start = _noisy_joint_lens(3)
    staged, joint_search, calls, searches = fit_module._staged, fit_module._joint_search, [], []

    def wrong_first(spec, *args, **kwargs):
        u, searched, value = staged(spec, *args, **kwargs)
        calls.append(kwargs.get("ring_joint", False))
        if len(calls) == 1:
            p = spec.to_physical(u)
            p[:, 0] *= 0.7
            u = spec.to_unconstrained(p)
        return u, searched, value

    def recorded(spec, starts, *args, **kwargs):
        searches.append([s.clone() for s in starts])
        return joint_search(spec, starts, *args, **kwargs)

    monkeypatch.setattr(fit_module, "_staged", wrong_first)
    monkeypatch.setattr(fit_module, "_joint_search", recorded)
    result = refine_lenses(_data(image, sigma, psf), start, torch.full_like(start, 0.05), spec=JOINT, restarts=2,
                           max_iter=150, prior=False)
    assert calls == [False, True]
    assert [len(s) for s in searches[:2]] == [2, 6]
    fitted, placed, placed_again = searches[1][2:5]
    light = JOINT.block(searches[1][0], "light")
    for ring in (placed, placed_again):
        assert torch.allclose(ring[:, 3:5], light[:, :2]) and ring[0, 1:3].abs().max() < 0.05
    assert not torch.allclose(JOINT.block(placed_again, "light"), light)  # the lens light fitted alone again
    for ring in (fitted, placed, placed_again):
        assert abs(float(ring[0, 0]) - 1.3) < 0.2, ring[0, 0]
    assert ((result.params - TRUTH)[0, :5].abs() < 4 * result.sigma[0, :5]).all(), result.params - TRUTH


def test_the_joint_search_ranks_its_starts_on_the_same_pixels_outliers_capped(monkeypatch):
    """A wrong minimum (theta_E 30% low) whose search clipped the arcs it misses reaches a lower chi^2 on its
    own pixels than the truth on all of them; compared on the data's pixels, each pixel's chi^2 capped at the
    clipping threshold's square, the truth wins."""
    psf, image, sigma, _ = _noisy_joint_lens(4)
    data = _data(image, sigma, psf)
    wrong = TRUTH.clone()
    wrong[:, 0] *= 0.7
    with torch.no_grad():
        model, _, _ = fit_module.model_images(wrong, data, 1, JOINT)
    missed = (image - model).abs() > 2 * sigma
    masks = torch.cat([data.mask, missed])

    def no_search(spec, u0, data, *args, **kwargs):
        return u0, replace(data, mask=masks)

    monkeypatch.setattr(fit_module, "_search", no_search)
    own = replace(data.take(torch.tensor([0, 0])), mask=masks)
    on_own = fit_module._objective(JOINT, torch.cat([TRUTH, wrong]), own, None, 1)
    assert on_own[1] < on_own[0]  # what each start's own pixels said
    u, _, _ = fit_module._joint_search(JOINT, [TRUTH, wrong], data, None, 10, 5.0, 1, False)
    assert torch.allclose(JOINT.to_physical(u), TRUTH, atol=1e-5)


def test_a_mass_off_its_lens_light_is_searched_again_from_the_light(monkeypatch):
    """The staged search's answer replaced by a wrong one, the mass 0.3" off its lens light with an ellipticity
    and shear that follow it: the search from a round lens on the light finds the truth, and a right answer
    (the mass on the light) is not searched again."""
    psf, image, sigma, start = _noisy_joint_lens(5)
    staged, searches, inside = fit_module._staged, [], []
    joint_search = fit_module._joint_search

    def off_the_light(spec, *args, **kwargs):
        inside.append(True)
        u, searched, value = staged(spec, *args, **kwargs)
        inside.pop()
        if corrupt:
            p = spec.to_physical(u)
            p[:, 1:5] += torch.tensor([0.25, -0.2, 0.3, -0.2], dtype=p.dtype)
            p[:, 5:7] = torch.tensor([0.1, 0.08], dtype=p.dtype)
            u = spec.to_unconstrained(p)
        return u, searched, value

    def recorded(spec, starts, *args, **kwargs):
        if not inside:  # the staged search's own
            searches.append(starts)
        return joint_search(spec, starts, *args, **kwargs)

    monkeypatch.setattr(fit_module, "_staged", off_the_light)
    for corrupt in (False, True):
        monkeypatch.setattr(fit_module, "_joint_search", recorded)
        searches.clear()
        result = refine_lenses(_data(image, sigma, psf), start, torch.full_like(start, 0.05), spec=JOINT, restarts=2,
                               max_iter=150, prior=False)
        monkeypatch.setattr(fit_module, "_joint_search", joint_search)
        assert len(searches) == (1 if corrupt else 0)
        assert ((result.params - TRUTH)[0, :7].abs() < 4 * result.sigma[0, :7]).all(), result.params - TRUTH
    tied = searches[0][0][0]
    light = JOINT.block(tied[None], "light")[0, :2]
    assert torch.allclose(tied[3:5], light) and tied[5:7].abs().max() == 0 and tied[1] == pytest.approx(0.01)


def test_laplace_errors_agree_with_the_mcmc_posterior():
    """A well-constrained lens (SIE + Sersic source, no lens light): Laplace and MCMC 1-sigma within 20%."""
    spec = ModelSpec()
    psf = gaussian_kernels(torch.full((1,), 1.0, dtype=F64), 4)
    truth = TRUTH[:, [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12]]
    image = _noiseless(spec, truth, AMPLITUDES[:, :1], psf)
    sigma = torch.full_like(image, 0.1 * float(image.max() - 0.05))
    image = image + sigma * torch.randn(image.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    data = _data(image, sigma, psf)
    result = refine_lenses(data, truth[:, :5], torch.full((1, 5), 0.1, dtype=F64), prior=False, restarts=1, clip=None)
    posterior = sample_posterior(spec, ImageData(image, sigma, result.mask, psf, GRID), result.params,
                                 result.covariance, steps=500, burn=150, seed=0)
    ratio = posterior.sigma[0, :5] / result.sigma[0, :5]
    assert ((ratio > 0.8) & (ratio < 1.2)).all(), ratio
    assert 0.15 < float(posterior.acceptance[0]) < 0.7
    inside = (posterior.lo95 <= posterior.median) & (posterior.median <= posterior.hi95)
    assert inside.all()


def test_models_that_cannot_be_fitted_are_refused():
    psf = gaussian_kernels(torch.full((1,), 1.0, dtype=F64), 4)
    image = torch.ones(1, 60, 60, dtype=F64)
    data = _data(image, image, psf)
    start, spread = TRUTH[:, :5], torch.full((1, 5), 0.1, dtype=F64)
    with pytest.raises(LensnetValueError, match="pixelated"):
        refine_lenses(data, start, spread, spec=ModelSpec(shear=True), source="pixelated")
    with pytest.raises(LensnetValueError, match="lensed source"):
        refine_lenses(data, start, spread, spec=ModelSpec(mass="none", lens_light="sersic"))
    with pytest.raises(LensnetValueError, match="lens_light"):
        ModelSpec(lens_light="triple")
    with pytest.raises(LensnetValueError, match="shear"):
        ModelSpec(mass="none", shear=True)


def test_delta_bic_tells_a_lens_from_a_lone_galaxy():
    """The same lens light with lensed arcs is called lensed; with the source unlensed beside it, it is not."""
    psf = _psf()
    generator = torch.Generator().manual_seed(4)
    lens = _noiseless(JOINT, TRUTH, AMPLITUDES, psf)
    alone = ModelSpec(mass="none", lens_light="sersic")
    unlensed_truth = torch.cat([TRUTH[:, 7:11], torch.tensor([[0.9, -0.6]], dtype=F64), TRUTH[:, 13:]], 1)
    galaxy = _noiseless(alone, unlensed_truth, AMPLITUDES, psf)
    images = torch.cat([lens, galaxy])
    sigma = torch.full_like(images, 0.02)
    data = ImageData(images + sigma * torch.randn(images.shape, generator=generator, dtype=F64), sigma,
                     torch.zeros_like(images, dtype=torch.bool), psf.expand(2, -1, -1).clone(), GRID)
    start = TRUTH[:, :5].expand(2, -1).clone()
    result = refine_lenses(data, start, torch.full_like(start, 0.2), spec=JOINT, prior=False, restarts=2, max_iter=150)
    value, _ = delta_bic(data, result, max_iter=150)
    assert value[0] > LENSED_DELTA_BIC and value[1] < LENSED_DELTA_BIC, value


@pytest.mark.parametrize("spec", [ModelSpec(), ModelSpec(mass="epl", shear=True, lens_light="double-sersic"),
                                  ModelSpec(mass="none", lens_light="sersic"),
                                  ModelSpec(mass="none", lens_light="sersic", source=False)])
def test_parameter_transforms_round_trip_and_bounds(spec):
    u = torch.randn(5, spec.n_params, generator=torch.Generator().manual_seed(0), dtype=F64)
    p = spec.to_physical(u)
    assert p.shape == (5, spec.n_params) and len(spec.names) == spec.n_params
    torch.testing.assert_close(spec.to_physical(spec.to_unconstrained(p)), p)
    assert spec.in_bounds(p).all()
    if spec.lensed:
        outside = p.clone()
        outside[:, spec.index("theta_E")] = -1.0
        assert not spec.in_bounds(outside).any()


def test_adaptive_supersampling_is_close_to_lenstronomys_fine_rendering():
    """The adaptive model (4 x 4 sub-pixels where the pixel centre misleads, 8 x 8 in the worst of them, 16 x 16
    at the lens light's cusp) against lenstronomy rendering every pixel at 16 x 16: far closer than pixel centres."""
    psf = _psf()
    sigma = torch.full((1, 60, 60), 0.01, dtype=F64)
    data = _data(_noiseless(JOINT, TRUTH, AMPLITUDES, psf), sigma, psf)
    fine = adaptive_pixels(JOINT, TRUTH, data)
    centre = 30 * 60 + 30  # the lens light's cusp is 0.03" from the image centre
    cusp = cusp_pixels(TRUTH[:, 13:15], GRID)
    assert 0 < fine.shape[1] <= ADAPTIVE_MAX_FRACTION * 60 * 60 and centre in cusp[0].tolist()
    assert not set(cusp[0].tolist()) & set(fine[0].tolist())  # rendered at the cusp's factor, not chosen again

    def rendered(rendering: ImageData, supersample: int = 1) -> torch.Tensor:
        return (AMPLITUDES[:, :, None, None] * JOINT.unit_images(TRUTH, rendering, supersample)).sum(1)

    # lenstronomy at 16 x 16 sub-pixels everywhere, convolved on the pixel grid as lensnet's models are.
    corner = -(60 - 1) / 2 * GRID.pixel_scale
    lens_data = LenstronomyData(image_data=np.zeros((60, 60)), transform_pix2angle=np.diag([GRID.pixel_scale] * 2),
                                ra_at_xy_0=corner, dec_at_xy_0=corner)
    model = ImageModel(lens_data, PSF(psf_type="PIXEL", kernel_point_source=psf[0].numpy()),
                       lens_model_class=LensModel(["SIE", "SHEAR"]), source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       lens_light_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": 16, "supersampling_convolution": False})
    t = TRUTH[0].tolist()
    sersic = ["R_sersic", "n_sersic", "e1", "e2"]
    theirs = torch.from_numpy(model.image(
        kwargs_lens=[dict(zip(["theta_E", "e1", "e2", "center_x", "center_y"], t[:5])),
                     {"gamma1": t[5], "gamma2": t[6], "ra_0": 0.0, "dec_0": 0.0}],
        kwargs_source=[{"amp": 3.0, **dict(zip(sersic + ["center_x", "center_y"], t[7:13]))}],
        kwargs_lens_light=[{"amp": 1.5, "center_x": t[13], "center_y": t[14], **dict(zip(sersic, t[15:19]))}]))
    adaptive_error = float(((rendered(replace(data, supersampled=fine))[0] - theirs).abs() / sigma).max())
    centre_error = float(((rendered(data)[0] - theirs).abs() / sigma).max())
    print(adaptive_error, centre_error)
    assert adaptive_error < 0.05 and centre_error > 0.4  # measured 0.025 and 0.49


def test_a_lens_lights_cusp_is_rendered_as_its_pixel_integral():
    """The 5 x 5 pixels nearest an n = 4.8 lens light's centre, under adaptive rendering: within 0.2% of their
    integral (64 x 64 sub-pixels), where 4 x 4 sub-pixels are 1.3% off and the pixel centre 40%."""
    spec = ModelSpec(mass="none", lens_light="sersic", source=False)
    grid = PixelGrid(20, 0.05)
    p = torch.tensor([[0.013, -0.021, 0.8, 4.8, 0.1, -0.05]], dtype=F64)
    ones = torch.ones(1, 20, 20, dtype=F64)
    data = ImageData(0 * ones, ones, torch.zeros_like(ones, dtype=torch.bool), torch.ones(1, 1, 1, dtype=F64), grid,
                     supersampled=torch.zeros(1, 0, dtype=torch.long))
    cusp = cusp_pixels(p[:, :2], grid)[0]
    assert cusp.tolist() == [r * 20 + c for r in range(7, 12) for c in range(8, 13)]  # centre at row 9, column 10

    def average(factor: int) -> torch.Tensor:
        x, y = grid.coordinates(factor, dtype=F64)
        return torch.nn.functional.avg_pool2d(spec.surface_brightness(p, x, y, grid.pixel_scale), factor).flatten()

    exact = average(64)
    error = ((spec.pixel_brightness(p, data).flatten() - exact) / exact).abs()
    assert error[cusp].max() < 2e-3 and ((average(4) - exact) / exact).abs()[cusp].max() > 1e-2
    assert ((spec.pixel_brightness(p, replace(data, supersampled=None)).flatten() - exact) / exact).abs()[cusp].max() > 0.3


def test_the_lens_light_fitted_alone_leaves_out_the_arcs_an_uncertain_theta_e_may_put_beyond_its_annulus():
    """Arcs at 1.58" lie outside 0.5-1.5 theta_E of a network's 0.97": fitted alone, the lens light takes them up
    and leaves its centre 0.3" off the lens, and every start of the search placed about it with it; the annulus
    left out reaching theta_E + its spread (3 x 0.45"), the centre lies on the lens (a lens of the lenstronomy
    benchmark's seed 19, its 163rd)."""
    grid = PixelGrid(100, 0.05)
    truth = torch.tensor([[1.58, -0.07, -0.05, -0.07, 0.0, -0.08, 0.02, 0.24, 2.4, -0.23, -0.03, -0.15, 0.42,
                           -0.07, 0.0, 0.98, 2.7, 0.12, 0.16]], dtype=F64)
    psf = gaussian_kernels(torch.full((1,), 0.1 / 2.3548 / 0.05, dtype=F64), 4)
    shape = (1, 100, 100)
    blank = ImageData(torch.zeros(shape, dtype=F64), torch.ones(shape, dtype=F64), torch.zeros(shape, dtype=torch.bool),
                      psf, grid)
    clean = (torch.tensor([[13.8, 3.3]], dtype=F64)[:, :, None, None] * JOINT.unit_images(truth, blank, 3)).sum(1)
    sigma = torch.sqrt(0.01 ** 2 + clean.clamp_min(0) / 2000)
    image = clean + sigma * torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    data = replace(blank, image=image, sigma=sigma).to(torch.float32)
    network = torch.tensor([[-0.07, -0.02]])
    off = {}
    for spread in (None, 1.36):
        light, _ = fit_module.fit_lens_light(data, network, "sersic", 50, theta_e=torch.tensor([0.97]),
                                             theta_e_spread=None if spread is None else torch.tensor([spread]))
        off[spread] = float((light[0, :2] - truth[0, 13:15].float()).norm())
    assert off[1.36] < 0.02 and off[None] > 0.2, off


@pytest.mark.parametrize("source_x", [0.0, 0.35])
def test_the_ring_start_gathers_the_arcs_in_the_source_plane(source_x):
    """The extra start of the staged search (mass on the light's centre): its Einstein radius is within 5% of the
    truth for a ring and for an arc with its counter-image, where the arcs' median radius leans to the brighter
    outer arc; it is not exactly round (there the SIE's ellipticity gradient vanishes)."""
    spec = ModelSpec(mass="sie", shear=False, lens_light="none")
    truth = TRUTH[:, [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12]].clone()
    truth[:, 1:3], truth[:, 5], truth[:, 9] = 0.0, 0.1, source_x
    image = _noiseless(spec, truth, AMPLITUDES[:, :1], _psf(), 3) - 0.05
    sigma = torch.full_like(image, 0.01 * float(image.max()))
    ring = fit_module._ring_starts(_data(image, sigma, _psf()), truth[:, 3:5])
    assert ring[0, 0] == pytest.approx(1.3, rel=0.05)
    assert ring[0, 1] != 0.0 and ring[0, 2] == 0.0 and torch.equal(ring[:, 3:5], truth[:, 3:5])
