"""Simulated non-lenses: the preset's observation of empty fields, stars and galaxies, seeded."""

import pytest
import torch

from lensnet.errors import LensnetRangeError, LensnetValueError
from lensnet.simulate import SimulationConfig, get_preset
from lensnet.simulate.nonlenses import NONLENS_KINDS, simulate_nonlenses


@pytest.mark.parametrize("kind", NONLENS_KINDS)
def test_every_kind_is_observed_normalised_and_seeded(kind):
    config = get_preset("tiny")
    images, masks = simulate_nonlenses(config, kind, 3, 5)
    assert images.shape == (3, 1, config.n_pix, config.n_pix) and masks.shape == (3, 1, config.n_pix, config.n_pix)
    assert torch.isfinite(images).all() and masks.dtype == torch.bool
    again, _ = simulate_nonlenses(config, kind, 3, 5)
    assert torch.equal(images, again) and not torch.equal(images, simulate_nonlenses(config, kind, 3, 6)[0])


def test_a_star_is_a_point_near_the_centre_and_a_galaxy_is_extended():
    quiet = {effect: {"probability": 0.0} for effect in ("gaussian_noise", "poisson", "cosmic_rays", "hot_pixels",
                                                          "masks", "bias")}
    config = SimulationConfig.from_dict({"observation": quiet}, base=get_preset("paper"))
    n = config.n_pix
    star, _ = simulate_nonlenses(config, "star", 4, 1)
    galaxy, _ = simulate_nonlenses(config, "galaxy", 4, 1)
    for image in star[:, 0]:
        row, col = divmod(int(image.argmax()), n)
        assert abs(row - n / 2) * config.pixel_scale < 0.4 and abs(col - n / 2) * config.pixel_scale < 0.4
    # The fraction of the flux above half the peak: a blurred point is compact, a galaxy wider.
    compact = lambda images: ((images > 0.5 * images.amax((2, 3), keepdim=True)).float().mean((1, 2, 3)))  # noqa: E731
    assert compact(star).max() < compact(galaxy).min()


def test_bad_arguments_are_named():
    with pytest.raises(LensnetValueError, match="kind = 'quasar'"):
        simulate_nonlenses(get_preset("tiny"), "quasar", 1, 0)
    with pytest.raises(LensnetRangeError, match="num"):
        simulate_nonlenses(get_preset("tiny"), "star", 0, 0)
