"""Neighbours in lens cutouts: a companion is found and masked, the lens system (galaxy, arcs) never."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.neighbours import ARC_RADIUS_FACTOR, KEEP_RADIUS, MIN_CUT_RADIUS, neighbour_mask
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed


@pytest.fixture(scope="module")
def lenses():
    """hst-acs test lenses with noise and PSF, no cosmic rays, hot pixels or masks."""
    config = get_preset("hst-acs").for_split("test")
    obs = config.observation
    off = dict(cosmic_rays=replace(obs.cosmic_rays, probability=0.0), hot_pixels=replace(obs.hot_pixels, probability=0.0),
               masks=replace(obs.masks, probability=0.0))
    batch = LensSimulator(replace(config, observation=replace(obs, **off))).simulate(6, batch_seed(11, 0))
    return batch.observed[:, 0].double().numpy(), batch.clean[:, 0].double().numpy(), config.pixel_scale


def _companion(shape, x, y, pixel_scale, peak=2.0, sigma_arcsec=0.15):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) * pixel_scale ** 2 / (2 * sigma_arcsec ** 2))


def test_a_companion_is_masked_and_the_arcs_are_not(lenses):
    observed, clean, scale = lenses
    n = observed.shape[-1]
    centre = ((n - 1) / 2, (n - 1) / 2)
    valid = np.ones((n, n), bool)
    for i in range(len(observed)):
        arcs = binary_dilation(clean[i] > 0.05, iterations=2)
        mask, count = neighbour_mask(observed[i], valid, centre, scale)
        assert count == 0 and not mask.any()
        angle = 0.7 * i
        x, y = centre[0] + 3.6 / scale * np.cos(angle), centre[1] + 3.6 / scale * np.sin(angle)
        companion = _companion((n, n), x, y, scale)
        mask, count = neighbour_mask(observed[i] + companion, valid, centre, scale)
        assert count == 1
        assert mask[companion > 0.1].all()  # the companion down to 5% of its peak
        assert not (mask & arcs).any()


def test_an_arc_beyond_the_keep_radius_is_kept_a_round_object_there_is_not():
    n, scale = 200, 0.04
    centre = ((n - 1) / 2, (n - 1) / 2)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(xx - centre[0], yy - centre[1]) * scale
    angle = np.arctan2(yy - centre[1], xx - centre[0])
    radius = KEEP_RADIUS + 0.6
    arc = np.exp(-((r - radius) / 0.06) ** 2 / 2 - (angle / 0.35) ** 2 / 2)  # tangential, along +x
    blob = _companion((n, n), centre[0], centre[1] + radius / scale, scale, peak=1.0)  # round, along +y
    image = arc + blob + np.random.default_rng(0).normal(0, 0.02, (n, n))
    mask, count = neighbour_mask(image, np.ones((n, n), bool), centre, scale)
    assert count == 1 and mask[blob > 0.1].all() and not mask[arc > 0.1].any()


def test_a_star_near_the_lens_is_masked_when_the_psf_is_known_and_the_arcs_are_not(lenses):
    """Within the keep radius, a source as narrow and round as the PSF is a star (or a quasar's image): masked
    given the PSF; the arcs, stretched and resolved, are kept either way."""
    observed, clean, scale = lenses
    n = observed.shape[-1]
    centre = ((n - 1) / 2, (n - 1) / 2)
    valid = np.ones((n, n), bool)
    psf = gaussian_kernels(torch.tensor([1.0], dtype=torch.float64), 6)[0].numpy()  # the preset's PSF: sigma 0.85-1.19 pixels
    k = psf.shape[0] // 2
    for i in range(len(observed)):
        arcs = binary_dilation(clean[i] > 0.05, iterations=2)
        rms = np.std(observed[i][:20, :20])
        mask, count = neighbour_mask(observed[i], valid, centre, scale, psf=psf)
        assert count == 0 and not mask.any()
        # 2.2" out, where no arc comes within 10 pixels
        far = ~binary_dilation(arcs, iterations=10)
        angle = next(a for a in np.linspace(0, 2 * np.pi, 36, endpoint=False) + 0.3 * i
                     if far[int(round(centre[1] + 2.2 / scale * np.sin(a))), int(round(centre[0] + 2.2 / scale * np.cos(a)))])
        col = int(round(centre[0] + 2.2 / scale * np.cos(angle)))
        row = int(round(centre[1] + 2.2 / scale * np.sin(angle)))
        star = np.zeros((n, n))
        star[row - k:row + k + 1, col - k:col + k + 1] = psf / psf.max() * 30 * rms
        mask, count = neighbour_mask(observed[i] + star, valid, centre, scale, psf=psf)
        assert count == 1 and mask[row, col] and not (mask & arcs).any()
        mask, count = neighbour_mask(observed[i] + star, valid, centre, scale)
        assert not (mask & arcs).any()  # without the PSF, kept unless it lies beyond the arcs (next test)


def test_a_round_source_beyond_the_arcs_is_masked_within_the_keep_radius_and_not_without_an_arc():
    """As on SL2S J0219-0829: a compact round galaxy 2.1" out, beyond 1.5 times the arcs' 1.3", is no lensed image
    (an isothermal lens would stretch it 2.6 times along the tangent); one inside that radius is kept, and without
    a bright arc to measure the radius from, so is every source within the keep radius."""
    n, scale = 160, 0.04
    centre = ((n - 1) / 2, (n - 1) / 2)
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(xx - centre[0], yy - centre[1]) * scale
    angle = np.arctan2(yy - centre[1], xx - centre[0])
    arc_radius = 1.3
    arc = np.exp(-((r - arc_radius) / 0.05) ** 2 / 2 - (angle / 0.4) ** 2 / 2)  # tangential, along +x
    noise = np.random.default_rng(1).normal(0, 0.02, (n, n))
    cut = max(MIN_CUT_RADIUS, ARC_RADIUS_FACTOR * arc_radius)
    for radius, masked in ((cut + 0.15, True), (cut - 0.3, False)):
        blob = _companion((n, n), centre[0], centre[1] + radius / scale, scale, peak=1.0, sigma_arcsec=0.08)  # +y
        mask, count = neighbour_mask(arc + blob + noise, np.ones((n, n), bool), centre, scale)
        assert count == int(masked) and mask[blob > 0.1].all() == masked and not mask[arc > 0.1].any(), radius
        mask, count = neighbour_mask(blob + noise, np.ones((n, n), bool), centre, scale)
        assert count == 0
