"""Two-band lenses with lens light: the data the ICA deblending of Hezaveh et al. (2017) works on.

A lens of :class:`~lensnet.simulate.simulator.LensSimulator` (SIE, source, placement, acceptance) is seen
in two filters: a blue one (band 0), where the star-forming source is bright, and a red one (band 1),
where the lens galaxy's old stars dominate. Per image:

- **lens light**: an elliptical Sérsic centred on the mass, with its own axis ratio and angle near the
  mass's (``q_light = q_mass + N(0, light_q_scatter)``, ``phi_light = phi_mass + N(0, light_angle_scatter_deg)``),
  averaged over ``light_supersample`` x ``light_supersample`` sub-pixels (a pixel-centre sample of its cusp
  is up to twice the pixel's mean, which biases any fit of the light by 1-2 sigma);
- **colours**: the arcs' band-1/band-0 flux ratio ~ U(``source_color``), the lens light's ~ U(``lens_color``);
  the lens light's peak in band 1 is U(``light_to_arc``) times the arcs' peak there;
- **observation**: a Gaussian PSF per band (sigma ~ U(``psf_sigma_pixels``)) and white Gaussian noise per band
  (rms ~ U(``noise_rms``) in units of the band-0 arc peak).

Everything is in units of the band-0 arc peak (after its PSF). A seed fixes the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lensnet.configfile import Config, setting
from lensnet.conventions import qphi_to_e1e2
from lensnet.observe.psf import convolve, gaussian_kernels
from lensnet.simulate.config import SimulationConfig
from lensnet.simulate.render import render_unlensed
from lensnet.simulate.simulator import LensSimulator
from lensnet.sources.sersic import Sersic

__all__ = ["TwoBandBatch", "TwoBandConfig", "TwoBandSimulator"]


@dataclass(frozen=True)
class TwoBandConfig(Config):
    """Lens light, colours, PSFs and noise of two-band lenses (see the module docstring)."""

    light_R_sersic_arcsec: tuple[float, float] = setting((0.4, 1.5), "lens-light half-light radius", min=0.01)
    light_n_sersic: tuple[float, float] = setting((2.0, 5.0), "lens-light Sérsic index", min=0.5, max=8.0)
    light_q_scatter: float = setting(0.1, "std of the lens light's axis ratio about the mass's", min=0.0)
    light_angle_scatter_deg: float = setting(10.0, "std of the lens light's angle about the mass's", min=0.0)
    light_to_arc: tuple[float, float] = setting((2.0, 20.0), "lens-light peak over arc peak, band 1", min=0.0)
    light_supersample: int = setting(8, "sub-pixels per pixel side of the lens light", min=1, max=32)
    source_color: tuple[float, float] = setting((0.3, 1.0), "arcs' band-1/band-0 flux ratio (blue)", min=0.0)
    lens_color: tuple[float, float] = setting((2.0, 5.0), "lens light's band-1/band-0 flux ratio (red)", min=0.0)
    psf_sigma_pixels: tuple[float, float] = setting((0.5, 1.5), "Gaussian PSF sigma per band", min=0.1, max=10.0)
    noise_rms: tuple[float, float] = setting((0.01, 0.05), "white noise rms per band, band-0 arc peaks", min=0.0)


@dataclass
class TwoBandBatch:
    """Two-band lenses; every image (B, 2, H, W) in units of the band-0 arc peak.

    Attributes
    ----------
    bands : observed images (arcs + lens light, PSF, noise);
    arcs, lens_light : their noiseless, PSF-convolved parts, the truth a deblending should recover;
    targets : (B, 5) SIE parameters; record : dict of (B,) or (B, 2) drawn values.
    """

    bands: torch.Tensor
    arcs: torch.Tensor
    lens_light: torch.Tensor
    targets: torch.Tensor
    record: dict


class TwoBandSimulator:
    """Simulates :class:`TwoBandBatch` es on the grid of ``simulation`` (see the module docstring)."""

    def __init__(self, simulation: SimulationConfig, config: TwoBandConfig | None = None, device=None):
        self.lenses = LensSimulator(simulation, device=device)
        self.config = config or TwoBandConfig()
        self.grid = self.lenses.grid

    def simulate(self, batch_size: int, seed: int) -> TwoBandBatch:
        gen = torch.Generator(self.lenses.device).manual_seed(int(seed))
        params, clean, record = self.lenses.draw_lenses(batch_size, gen)
        b, cfg = params.batch_size, self.config

        def uniform(lo_hi, shape=(b,)):
            u = torch.rand(shape, generator=gen, device=clean.device, dtype=clean.dtype)
            return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u

        def normal(std):
            return std * torch.randn(b, generator=gen, device=clean.device, dtype=clean.dtype)

        sigma = uniform(cfg.psf_sigma_pixels, (b, 2))
        half = int(math.ceil(4 * cfg.psf_sigma_pixels[1]))
        kernels = [gaussian_kernels(sigma[:, k], half) for k in range(2)]
        blurred_arcs = [convolve(clean[:, None], kernels[k])[:, 0] for k in range(2)]
        peak = blurred_arcs[0].amax(dim=(1, 2)).clamp_min(1e-12)[:, None, None]
        source_color = uniform(cfg.source_color)
        arcs = torch.stack([blurred_arcs[0] / peak, blurred_arcs[1] / peak * source_color[:, None, None]], 1)

        q, phi = params.qphi()
        q_light = (q + normal(cfg.light_q_scatter)).clamp(0.2, 1.0)
        phi_light = phi + normal(math.radians(cfg.light_angle_scatter_deg))
        e1, e2 = qphi_to_e1e2(q_light, phi_light)
        radius, index = uniform(cfg.light_R_sersic_arcsec), uniform(cfg.light_n_sersic)
        profile = render_unlensed(Sersic(torch.ones_like(radius), radius, index, e1, e2, params.center_x,
                                         params.center_y), self.grid, cfg.light_supersample)
        red = [convolve(profile[:, None], kernels[k])[:, 0] for k in range(2)]
        light_peak = uniform(cfg.light_to_arc) * arcs[:, 1].amax(dim=(1, 2))
        lens_color = uniform(cfg.lens_color)
        band1 = red[1] * (light_peak / red[1].amax(dim=(1, 2)).clamp_min(1e-12))[:, None, None]
        band0 = red[0] * (light_peak / lens_color / red[0].amax(dim=(1, 2)).clamp_min(1e-12))[:, None, None]
        light = torch.stack([band0, band1], 1)
        rms = uniform(cfg.noise_rms, (b, 2))
        noise = torch.randn(light.shape, generator=gen, device=clean.device, dtype=clean.dtype) * rms[:, :, None, None]
        record.update(psf_sigma=sigma, noise_rms=rms, source_color=source_color, lens_color=lens_color,
                      light_to_arc=light_peak / arcs[:, 1].amax(dim=(1, 2)), light_R_sersic=radius,
                      light_n_sersic=index, light_q=q_light, light_phi=phi_light)
        return TwoBandBatch(arcs + light + noise, arcs, light, params.to_tensor(), record)
