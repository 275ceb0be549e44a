"""The full observation pipeline: order, normalisation, records, independence, seeds, config I/O."""

import doctest

import pytest
import torch

import lensnet.observe.pipeline as pipeline
import lensnet.observe.psf as psf
from lensnet.errors import LensnetConfigError, LensnetShapeError
from lensnet.observe import (
    BiasConfig,
    CosmicRayConfig,
    GaussianNoiseConfig,
    HotPixelConfig,
    MaskConfig,
    ObservationConfig,
    PoissonConfig,
    PSFConfig,
    observe,
)


def _arcs(b, n=32, dtype=torch.float32, scale=1.0):
    y, x = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype), indexing="ij")
    r = ((x - n / 2) ** 2 + (y - n / 2) ** 2).sqrt()
    amp = scale * (1 + torch.arange(b, dtype=dtype))[:, None, None, None]
    return amp * torch.exp(-(((r - n / 4) / 1.5) ** 2))[None, None]


def test_same_seed_same_output():
    clean = _arcs(32)
    runs = [observe(clean, ObservationConfig(), torch.Generator().manual_seed(s), 0.04) for s in (7, 7, 8)]
    (a, ma, ra), (b, mb, rb), (c, _, _) = runs
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert all(torch.equal(ra[k], rb[k]) for k in ra)
    assert not torch.equal(a, c)


def test_records_hold_every_draw(generator):
    clean = _arcs(64, dtype=torch.float64)
    images, masks, record = observe(clean, ObservationConfig(), generator, 0.04)
    assert images.shape == clean.shape and images.dtype == torch.float64 and masks.shape == (64, 1, 32, 32)
    expected = {"psf_applied", "psf_sigma_pix", "arc_peak", "poisson_applied", "poisson_counts", "noise_applied",
                "noise_rms", "noise_colored", "cosmic_rays_applied", "n_cosmic_rays", "n_cosmic_ray_tracks",
                "cosmic_ray_amplitude_max", "hot_pixels_applied", "n_hot_pixels", "hot_pixel_amplitude_max",
                "bias_applied", "bias", "masks_applied", "n_masks_drawn", "n_masks", "mask_flux_fraction"}
    assert set(record) == expected
    assert all(v.shape == (64,) for v in record.values())
    assert (images[masks.expand_as(images)] == 0).all()
    assert (record["mask_flux_fraction"] <= 0.25 + 1e-6).all()


def test_noiseless_output_is_divided_by_the_arc_peak(generator):
    quiet = ObservationConfig(poisson=PoissonConfig(probability=0.0),
                              gaussian_noise=GaussianNoiseConfig(probability=0.0),
                              cosmic_rays=CosmicRayConfig(probability=0.0), hot_pixels=HotPixelConfig(probability=0.0),
                              bias=BiasConfig(probability=0.0), masks=MaskConfig(probability=0.0))
    clean = _arcs(16, scale=50.0)
    images, masks, record = observe(clean, quiet, generator, 0.04)
    assert torch.allclose(images.amax(dim=(1, 2, 3)), torch.ones(16))
    assert torch.allclose(images.sum(dim=(1, 2, 3)) * record["arc_peak"], clean.sum(dim=(1, 2, 3)), rtol=1e-4)
    assert not masks.any()


def test_noise_level_in_peak_units(generator):
    cfg = ObservationConfig(psf=PSFConfig(probability=0.0), poisson=PoissonConfig(probability=0.0),
                            gaussian_noise=GaussianNoiseConfig(rms_range=(0.05, 0.05), colored_probability=0.0),
                            cosmic_rays=CosmicRayConfig(probability=0.0), hot_pixels=HotPixelConfig(probability=0.0),
                            bias=BiasConfig(probability=0.0), masks=MaskConfig(probability=0.0))
    clean = _arcs(64, scale=1000.0)
    images, _, record = observe(clean, cfg, generator, 0.04)
    residual = images - clean / record["arc_peak"][:, None, None, None]
    assert residual.std().item() == pytest.approx(0.05, rel=0.02)


def test_effects_are_drawn_independently(generator):
    b = 2048
    _, _, record = observe(torch.rand(b, 1, 12, 12, generator=generator), ObservationConfig(), generator, 0.04)
    draws = torch.stack([record[k].double() for k in ("psf_sigma_pix", "poisson_counts", "noise_rms", "bias",
                                                       "psf_applied", "poisson_applied", "noise_colored",
                                                       "cosmic_rays_applied", "n_hot_pixels", "masks_applied")])
    corr = torch.corrcoef(draws)
    off_diagonal = corr[~torch.eye(len(draws), dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.1  # sampling error 0.022
    assert record["psf_applied"].double().mean().item() == pytest.approx(0.8, abs=0.03)


def test_several_bands(generator):
    images, masks, record = observe(_arcs(8).repeat(1, 2, 1, 1), ObservationConfig(), generator, 0.04)
    assert images.shape == (8, 2, 32, 32) and masks.shape == (8, 1, 32, 32)
    assert all(v.shape == (8,) for v in record.values())


def test_config_round_trip_and_errors():
    cfg = ObservationConfig.from_dict({"psf": {"sigma_range": [0.5, 1.5]}, "masks": None})
    assert cfg.psf.sigma_range == (0.5, 1.5) and cfg.masks == MaskConfig()
    assert ObservationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(LensnetConfigError, match="shot_noise"):
        ObservationConfig.from_dict({"shot_noise": {}})
    with pytest.raises(LensnetConfigError, match="cosmic_rays.*amplitude"):
        ObservationConfig.from_dict({"cosmic_rays": {"amplitude": 0.5}})
    with pytest.raises(LensnetConfigError, match="poisson.*probability"):
        ObservationConfig.from_dict({"poisson": {"probability": 1.5}})
    with pytest.raises(LensnetConfigError, match="gaussian_noise.*rms_range"):
        ObservationConfig.from_dict({"gaussian_noise": {"rms_range": [0.1]}})
    assert ObservationConfig(masks={"probability": 1.0}).masks == MaskConfig(probability=1.0)
    with pytest.raises(LensnetConfigError, match="masks"):
        ObservationConfig(masks=0.5)


def test_bad_inputs(generator):
    with pytest.raises(LensnetShapeError, match="clean_images"):
        observe(torch.zeros(2, 16, 16), ObservationConfig(), generator, 0.04)


@pytest.mark.parametrize("module", [pipeline, psf])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0
