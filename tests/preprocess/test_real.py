"""Real images on a model's grid: flux-conserving resampling, cutouts, background, noise padding, masks."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import binary_dilation

from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.observe import CosmicRayConfig, cosmic_rays
from lensnet.preprocess.real import ModelGrid, cosmic_ray_mask, header_pixel_scale, holds_cosmic_rays, prepare_image
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed

GRID = ModelGrid(48, 0.04)


def _blob(n=60, scale=0.05, sigma_arcsec=0.12, background=2.0, noise=0.0, seed=0):
    y, x = np.mgrid[:n, :n]
    c = (n - 1) / 2
    blob = np.exp(-((x - c) ** 2 + (y - c) ** 2) * scale**2 / (2 * sigma_arcsec**2))
    return blob / blob.sum() * 100.0 + background + np.random.default_rng(seed).normal(0, noise, (n, n))


def test_resampling_conserves_flux_and_subtracts_the_background():
    prepared = prepare_image(_blob(), GRID, 0.05)
    assert prepared.background == pytest.approx(2.0, abs=1e-9)
    assert prepared.image.sum() == pytest.approx(100.0, rel=1e-3)  # 3.0" image, 1.92" field: the blob is inside
    noisy = prepare_image(_blob(noise=0.01), GRID, 0.05)
    assert noisy.background == pytest.approx(2.0, abs=0.002) and noisy.noise_rms == pytest.approx(0.01, rel=0.1)
    assert prepared.image.shape == (48, 48) and not prepared.mask.any()
    peak = np.unravel_index(np.argmax(prepared.image), prepared.image.shape)
    assert peak in {(23, 23), (23, 24), (24, 23), (24, 24)}


def test_same_scale_is_a_plain_cutout():
    data = _blob(scale=0.04)
    prepared = prepare_image(data, GRID, 0.04)
    np.testing.assert_allclose(prepared.image, (data - 2.0)[6:54, 6:54], atol=1e-6)


def test_small_images_are_padded_with_noise_and_too_small_ones_refused():
    data = _blob(n=36, scale=0.04, noise=0.01)  # 1.44" of a 1.92" field
    prepared = prepare_image(data, GRID, 0.04, seed=3)
    assert prepared.coverage == pytest.approx(36 / 48)
    border = prepared.image[:4]
    assert border.std() == pytest.approx(0.01, rel=0.2) and abs(border.mean()) < 0.005
    with pytest.raises(LensnetValueError, match="covers only"):
        prepare_image(_blob(n=20, scale=0.04), GRID, 0.04)


def test_nan_and_user_masks_are_masked_and_zero():
    data = _blob(scale=0.04)
    data[30, 30] = np.nan
    user = np.zeros(data.shape, bool)
    user[10, 12] = True
    prepared = prepare_image(data, GRID, 0.04, mask=user)
    assert prepared.mask[24, 24] and prepared.mask[4, 6] and prepared.mask.sum() == 2
    assert prepared.image[24, 24] == 0 and prepared.image[4, 6] == 0


def test_centre_and_wcs():
    data = _blob(scale=0.04)
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [35.0, -8.5], [30.5, 30.5]
    w.wcs.cd = [[-0.04 / 3600, 0], [0, 0.04 / 3600]]
    assert header_pixel_scale(w.to_header(), "test") == pytest.approx(0.04)
    prepared = prepare_image(data, GRID, 0.04, center=(29.5, 29.5), wcs=w)
    ra, dec = prepared.sky_position(0.0, 0.0)
    assert (ra, dec) == pytest.approx((35.0, -8.5))
    ra_east, _ = prepared.sky_position(-0.4, 0.0)  # x decreases to the east (east left)
    assert ra_east > ra
    with pytest.raises(LensnetValueError, match="off the"):
        prepare_image(data, GRID, 0.04, center=(200.0, 10.0))


def test_bad_inputs_are_named():
    with pytest.raises(LensnetValueError, match="no valid pixel"):
        prepare_image(np.full((50, 50), np.nan), GRID, 0.04)
    with pytest.raises(LensnetShapeError, match="2-D"):
        prepare_image(np.zeros((2, 50, 50)), GRID, 0.04)
    with pytest.raises(LensnetValueError, match="pixel scale"):
        prepare_image(np.zeros((50, 50)), GRID, 0.0)
    with pytest.raises(LensnetIOError, match="no pixel-scale keyword"):
        header_pixel_scale(fits.Header(), "test.fits[0]")


def test_cosmic_rays_are_found_and_masked():
    data = _blob(scale=0.04, noise=0.01, seed=1)
    data[15, 40] += 5.0  # a one-pixel hit, far sharper than the PSF-free blob
    prepared = prepare_image(data, GRID, 0.04, cosmic_rays=True)
    assert prepared.mask[15 - 6, 40 - 6]
    assert not prepared.mask[24, 24]


def _lenses_without_cosmic_rays(n: int):
    """hst-acs test lenses (arcs, PSF, noise) with no cosmic rays, hot pixels or masks; observed and PSF-free."""
    config = get_preset("hst-acs").for_split("test")
    obs = config.observation
    off = dict(cosmic_rays=replace(obs.cosmic_rays, probability=0.0), hot_pixels=replace(obs.hot_pixels, probability=0.0),
               masks=replace(obs.masks, probability=0.0))
    batch = LensSimulator(replace(config, observation=replace(obs, **off))).simulate(n, batch_seed(7, 0))
    return batch.observed[:, 0].double().numpy(), batch.clean[:, 0].double().numpy()


@pytest.mark.parametrize("kind, least", [("sharp", 0.4), ("simulator", 0.35)])
def test_cosmic_ray_masking_takes_the_hits_and_never_the_arcs(kind, least):
    observed, clean = _lenses_without_cosmic_rays(8)
    arcs = np.stack([binary_dilation(c > 0.05, iterations=2) for c in clean])  # arcs, PSF wings included
    # Cosmic rays sharper than the PSF (1-1.5 pixels), or the simulator's (broad tracks among them, which
    # L.A.Cosmic with objlim 5 took for objects).
    config = (CosmicRayConfig(probability=1.0, amplitude_range=(0.2, 0.5), hit_width_range=(1.0, 1.5),
                              track_width_range=(1.0, 1.2)) if kind == "sharp" else CosmicRayConfig(probability=1.0))
    hit = cosmic_rays(torch.from_numpy(observed)[:, None], config, torch.Generator().manual_seed(0))[0][:, 0].numpy()
    valid = np.ones(observed.shape[1:], bool)
    eaten, found, bright = 0, 0, 0
    for i in range(len(observed)):
        if kind == "sharp":
            assert not (cosmic_ray_mask(observed[i], valid) & arcs[i]).any()  # a lens without cosmic rays
        mask = cosmic_ray_mask(hit[i], valid)
        eaten += (mask & arcs[i] & ~(hit[i] - observed[i] > 0)).sum()
        added = (hit[i] - observed[i] > 8 * observed[i][~arcs[i]].std()) & ~arcs[i]  # 8 sigma, off the arcs
        found, bright = found + (mask & added).sum(), bright + added.sum()
    # measured: 0 and 32 of 65 (sharp), 0 and 26 of 60 (simulator; 12 of 60 with objlim 5 and the candidates in
    # the median)
    assert eaten == 0 and found >= least * bright, (eaten, found, bright)


def test_cosmic_rays_are_looked_for_unless_the_header_says_exposures_were_combined():
    assert holds_cosmic_rays(fits.Header())
    assert holds_cosmic_rays(fits.Header({"NCOMBINE": 1}))
    assert not holds_cosmic_rays(fits.Header({"NCOMBINE": 4}))
    assert not holds_cosmic_rays(fits.Header({"NDRIZIM": 3}))
    assert not holds_cosmic_rays(fits.Header({"COMBINET": "MEDIAN"}))


def test_an_exposure_map_that_varies_says_exposures_were_combined():
    # As the SL2S J0219-0829 WFC3/UVIS cutouts: 286-546 s where two or more exposures overlap, no header keyword.
    combined = np.full((20, 20), 546.0, np.float32)
    combined[:, :7] = 286.0
    combined[0, 0] = 0.0  # no data there: left out
    assert not holds_cosmic_rays(fits.Header(), combined)
    single = np.full((20, 20), 400.0, np.float32)
    single[3, 3] = 0.0
    assert holds_cosmic_rays(fits.Header(), single)
    assert not holds_cosmic_rays(fits.Header({"NCOMBINE": 4}), single)
