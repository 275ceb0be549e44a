"""The batched lens simulator: prior -> source placement -> ray shooting -> observational effects.

One call of :meth:`LensSimulator.simulate` produces a batch of training images on the simulator's
device from a single seed, so a seed fixes every draw and data are generated where the network
trains. Steps (Hezaveh et al. 2017, Methods, and the numbers of its released code):

1. SIE parameters from the lens prior; a source type per lens from the mixture (real galaxy stamp,
   Sérsic, clumpy galaxy).
2. Source centre inside the grown tangential caustic or the shrunk radial cut; lenses failing the
   acceptance cuts (flux inside the field, total magnification) are redrawn, fully batched.
3. Ray-shot noiseless image with supersampling, then every observational effect, each drawn
   independently per image and recorded.
4. Network input: :func:`lensnet.preprocess.normalize_images` (no use of the noiseless truth).
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lensnet.errors import LensnetConfigError, LensnetRangeError, LensnetValueError
from lensnet.lensing import PixelGrid
from lensnet.observe.pipeline import observe
from lensnet.preprocess import normalize_images
from lensnet.simulate.config import SimulationConfig
from lensnet.simulate.memory import keep_freed_memory
from lensnet.simulate.placement import draw_accepted
from lensnet.sources.banks import (SourceBank, fits_folder_bank, galsim_cosmos_bank,
                                   hubble_deep_field_bank)
from lensnet.sources.base import Source
from lensnet.sources.clumpy import draw_clumpy_sources
from lensnet.sources.sersic import draw_sersic_sources
from lensnet.sources.stamps import StampSource

__all__ = ["LensSimulator", "SimulatedBatch", "SOURCE_TYPES", "SourceKind", "load_source_bank", "peak_signal_to_noise"]

class SourceKind(enum.IntEnum):
    """The kinds of source of the mixture; their codes are stored in ``record['source_type']``."""

    REAL = 0
    SERSIC = 1
    CLUMPY = 2


#: Names of the source kinds by code, as datasets record them.
SOURCE_TYPES = tuple(kind.name.lower() for kind in SourceKind)


@dataclass
class SimulatedBatch:
    """One simulated batch; every tensor is on the simulator's device.

    Attributes
    ----------
    images : Tensor, (B, 1, H, W), float32
        Network input (normalised observed images).
    observed : Tensor, (B, 1, H, W)
        Observed images in units of the arc peak, before normalisation; masked pixels are 0.
    clean : Tensor, (B, 1, H, W)
        Noiseless lensed images, PSF-free, in units of the arc peak.
    targets : Tensor, (B, 5)
        True SIE parameters, columns in :data:`lensnet.conventions.PARAM_NAMES` order.
    masks : Tensor of bool, (B, 1, H, W)
        True where masked.
    seeds : Tensor of int64, (B,)
        The seed of the batch each image came from (``simulate(B, seed)[i]`` reproduces it).
    record : dict of (B,) tensors
        Every drawn value: effect parameters, source type and position, magnification, ...
    """

    images: torch.Tensor
    observed: torch.Tensor
    clean: torch.Tensor
    targets: torch.Tensor
    masks: torch.Tensor
    seeds: torch.Tensor
    record: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return self.images.shape[0]


@functools.lru_cache(maxsize=2)
def _builtin_bank(stamp_size: int) -> SourceBank:
    # Segmenting the deep field takes about a second; every simulator of a process shares the result
    # (a SourceBank is immutable).
    return hubble_deep_field_bank(stamp_size)


def load_source_bank(spec: str, stamp_size: int = 64) -> SourceBank:
    """A real-galaxy bank from its config string: ``hubble_deep_field``, a saved bank, a COSMOS
    catalogue (.fits) or a folder of FITS stamps."""
    if spec == "hubble_deep_field":
        return _builtin_bank(stamp_size)
    path = Path(spec)
    if path.is_dir():
        return fits_folder_bank(path, stamp_size=stamp_size)
    if path.suffix in (".npz", ".h5", ".hdf5"):
        return SourceBank.load(path)
    if path.suffix == ".fits":
        return galsim_cosmos_bank(path, stamp_size=stamp_size)
    raise LensnetConfigError(f"source.bank = {spec!r}: expected 'hubble_deep_field', a folder of FITS stamps, "
                             "a saved bank (.npz/.h5) or a GalSim COSMOS catalogue (.fits)")


class LensSimulator:
    """Simulates batches of lenses for a :class:`SimulationConfig` on one device.

    Parameters
    ----------
    config : SimulationConfig
        Grid, priors, sources, placement and effects.
    device : str or torch.device, optional
        Where to simulate [cpu].
    bank : SourceBank, optional
        Real-galaxy stamps; default: loaded from ``config.source.bank`` and split by galaxy with
        ``config.source.split_seed``, keeping ``config.source.split``.

    Notes
    -----
    A CPU simulator calls :func:`lensnet.simulate.memory.keep_freed_memory` (glibc keeps up to 1 GiB
    of freed memory mapped; 25% faster simulation).
    """

    def __init__(self, config: SimulationConfig, device=None, bank: SourceBank | None = None):
        self.config = config
        self.device = torch.device(device or "cpu")
        if self.device.type == "cpu":
            keep_freed_memory()
        self.grid = PixelGrid(config.n_pix, config.pixel_scale)
        self.bank = None
        if config.source.fractions[0] > 0:
            bank = bank if bank is not None else load_source_bank(config.source.bank)
            if config.source.split != "all":
                bank = bank.split(seed=config.source.split_seed)[config.source.split]
            if len(bank) == 0:
                raise LensnetValueError(f"the {config.source.split!r} split of source bank {config.source.bank!r} "
                                        "holds no galaxy; use more stamps or source.split = 'all'")
            self.bank = bank.to(self.device)

    def simulate(self, batch_size: int, seed: int) -> SimulatedBatch:
        """Simulate ``batch_size`` lenses from ``seed`` (same seed, same batch, on one device)."""
        if batch_size < 1:
            raise LensnetRangeError("batch_size", batch_size, 1, None)
        gen = torch.Generator(self.device).manual_seed(int(seed))
        params, clean, record = self.draw_lenses(batch_size, gen)
        clean = clean[:, None]
        observed, masks, effects = observe(clean, self.config.observation, gen, self.config.pixel_scale)
        record.update(effects)
        clean = clean / record["arc_peak"][:, None, None, None]
        return SimulatedBatch(
            images=normalize_images(observed, masks),
            observed=observed,
            clean=clean,
            targets=params.to_tensor(),
            masks=masks,
            seeds=torch.full((batch_size,), int(seed), dtype=torch.int64, device=self.device),
            record=record,
        )

    # -- drawing ---------------------------------------------------------------------------------

    def draw_lenses(self, batch_size: int, gen: torch.Generator):
        """Lenses that pass the acceptance cuts and their noiseless, PSF-free images (B, H, W) and record
        (:func:`lensnet.simulate.placement.draw_accepted`): the simulation before any observational effect."""
        cfg = self.config
        drawn = draw_accepted(batch_size, cfg.lens, self._make_source, self.grid, gen,
                              supersample=cfg.supersample, supersample_threshold=cfg.supersample_threshold,
                              cuts=cfg.placement)
        record = {"source_type": drawn.source_record["source_type"], "source_x": drawn.source_x,
                  "source_y": drawn.source_y, "source_region": drawn.region,
                  "flux_fraction_in_field": drawn.flux_fraction, "magnification": drawn.magnification}
        return drawn.params, drawn.images, record

    def _make_source(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> "MixtureSource":
        kind = self._draw_kind(x.numel(), gen)
        parts = [(idx, self._draw_source(k, x[idx], y[idx], gen))
                 for k in SourceKind if (idx := (kind == k).nonzero().flatten()).numel()]
        return MixtureSource(x.numel(), parts, {"source_type": kind})

    def _draw_kind(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Source kind per lens (a :class:`SourceKind` code) from the configured mixture."""
        f = torch.tensor(self.config.source.fractions, dtype=torch.float32)
        if self.bank is None:
            f[SourceKind.REAL] = 0.0
        u = torch.rand(n, generator=gen, device=self.device)
        edges = (torch.cumsum(f, 0) / f.sum())[:-1].to(self.device)
        return torch.bucketize(u, edges, right=True)

    def _draw_source(self, kind: SourceKind, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        """Sources of one kind centred on (x, y), each (n,) arcsec."""
        cfg, n = self.config.source, x.numel()
        uniform = lambda lo_hi: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(n, generator=gen, device=self.device)  # noqa: E731
        if kind == SourceKind.REAL:
            index = torch.randint(0, len(self.bank), (n,), generator=gen, device=self.device)
            return StampSource(self.bank.stamps, index, uniform(cfg.stamp_size_arcsec), x, y,
                               angle=uniform((0.0, 2 * math.pi)))
        if kind == SourceKind.SERSIC:
            return draw_sersic_sources(x, y, gen, cfg.sersic_radius_arcsec, cfg.sersic_index, cfg.sersic_q)
        return draw_clumpy_sources(n, gen, center_x=x, center_y=y, R_sersic_range=cfg.sersic_radius_arcsec,
                                   q_range=cfg.sersic_q, dtype=x.dtype)


class MixtureSource(Source):
    """B sources of several types: ``parts`` is a list of (lens indices, source of those lenses).

    ``record`` holds (B,) tensors describing the sources (the type of each), kept by :meth:`take`.
    """

    def __init__(self, batch_size: int, parts: list[tuple[torch.Tensor, Source]], record: dict | None = None):
        self.batch_size, self.parts, self.record = batch_size, parts, record or {}

    def surface_brightness(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = x.shape if x.ndim == 3 else (self.batch_size, *x.shape)
        out = torch.zeros(shape, device=x.device, dtype=x.dtype)
        for idx, source in self.parts:
            out[idx] = source.surface_brightness(x[idx] if x.ndim == 3 else x, y[idx] if y.ndim == 3 else y)
        return out

    def total_flux(self) -> torch.Tensor:
        out = None
        for idx, source in self.parts:
            flux = source.total_flux()
            out = torch.zeros(self.batch_size, dtype=flux.dtype, device=flux.device) if out is None else out
            out[idx] = flux
        return out

    def take(self, keep: torch.Tensor) -> "MixtureSource":
        keep = keep.nonzero().flatten() if keep.dtype == torch.bool else keep
        position = torch.full((self.batch_size,), -1, dtype=torch.long, device=keep.device)
        position[keep] = torch.arange(keep.numel(), device=keep.device)
        parts = []
        for idx, source in self.parts:
            new = position[idx]
            selected = new >= 0
            parts.append((new[selected], source.take(selected)))
        return MixtureSource(keep.numel(), parts, {k: v[keep] for k, v in self.record.items()})


def peak_signal_to_noise(record: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) signal-to-noise of each image's arc peak: 1 / sqrt(rms^2 + 1 / counts), from the drawn Gaussian
    noise rms and Poisson counts at the peak (both in units of the arc peak; an effect not applied adds 0)."""
    variance = torch.where(record["noise_applied"], record["noise_rms"] ** 2, 0.0)
    variance = variance + torch.where(record["poisson_applied"], 1.0 / record["poisson_counts"], 0.0)
    return 1.0 / variance.clamp_min(1e-12).sqrt()
