"""Two-band lenses with lens light: shapes, colours, reproducibility, and ICA separating them."""

import numpy as np
import pytest
import torch

from lensnet.deblend import ica_deblend
from lensnet.errors import LensnetConfigError
from lensnet.simulate import get_preset
from lensnet.simulate.multiband import TwoBandConfig, TwoBandSimulator


@pytest.fixture(scope="module")
def batch():
    return TwoBandSimulator(get_preset("tiny"), TwoBandConfig(psf_sigma_pixels=(0.5, 0.5))).simulate(6, seed=3)


def test_bands_are_arcs_plus_lens_light_plus_noise(batch):
    assert batch.bands.shape == batch.arcs.shape == batch.lens_light.shape == (6, 2, 32, 32)
    noise = batch.bands - batch.arcs - batch.lens_light
    rms = batch.record["noise_rms"]
    assert torch.allclose(noise.std(dim=(2, 3)), rms, rtol=0.2)
    torch.testing.assert_close(batch.arcs[:, 0].amax(dim=(1, 2)), torch.ones(6))  # band-0 arc peak is the unit
    red = batch.lens_light[:, 1].sum(dim=(1, 2)) / batch.lens_light[:, 0].sum(dim=(1, 2))
    blue = batch.arcs[:, 1].sum(dim=(1, 2)) / batch.arcs[:, 0].sum(dim=(1, 2))
    torch.testing.assert_close(red, batch.record["lens_color"], rtol=1e-3, atol=1e-3)  # same PSF in both bands
    torch.testing.assert_close(blue, batch.record["source_color"], rtol=1e-3, atol=1e-3)


def test_same_seed_same_batch():
    sim = TwoBandSimulator(get_preset("tiny"))
    assert torch.equal(sim.simulate(2, seed=9).bands, sim.simulate(2, seed=9).bands)


def test_config_is_validated():
    with pytest.raises(LensnetConfigError, match="psf_sigma_pixels"):
        TwoBandConfig(psf_sigma_pixels=(0.0, 1.0))


def test_ica_recovers_the_arcs_of_a_two_band_lens():
    sim = TwoBandSimulator(get_preset("paper"), TwoBandConfig(psf_sigma_pixels=(1.0, 1.0), noise_rms=(0.01, 0.01)))
    b = sim.simulate(1, seed=4)
    bands, arcs = b.bands[0].double().numpy(), b.arcs[0, 0].double().numpy()
    result = ica_deblend(bands[0], bands[1], 0.04, band=0, mask_cosmic_rays=False)
    assert np.corrcoef(result.arcs[~result.mask], arcs[~result.mask])[0, 1] > 0.95
