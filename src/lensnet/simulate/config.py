"""Simulation configuration: dataclasses, presets and YAML/TOML loading.

A :class:`SimulationConfig` fixes everything a simulated dataset depends on besides its seed: the
pixel grid, the lens prior, the source mixture, the placement cuts and the observational effects.
Presets:

- ``paper``: the paper's: 192x192 pixels at 0.04", its priors and effects (Hezaveh et al. 2017, Methods).
- ``hst-acs``: HST ACS/WFC sampling, 0.05"/px on 160x160 pixels (8"), with the drizzled ACS PSF
  (FWHM 0.10-0.14") on every image; otherwise as ``paper``.
- ``tiny``: 32x32 pixels at 0.12", small Einstein radii, no supersampling: for tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lensnet.configfile import Config, load_config_file, read_config_file, setting
from lensnet.errors import LensnetConfigError
from lensnet.observe.pipeline import ObservationConfig
from lensnet.simulate.prior import LensPrior

__all__ = ["SourceConfig", "PlacementConfig", "SimulationConfig", "PRESETS", "get_preset",
           "load_simulation_config"]


@dataclass(frozen=True)
class SourceConfig(Config):
    """The source mixture (the paper: equal thirds of real galaxies, Sérsic and clumpy galaxies).

    Parameters
    ----------
    fractions : (float, float, float)
        Probabilities of a real-galaxy stamp, a Sérsic and a clumpy source; they must sum to 1.
    bank : str
        Real-galaxy bank: ``hubble_deep_field`` (built in), or a path to a saved bank (.npz/.h5), a
        GalSim COSMOS catalogue (.fits) or a folder of FITS stamps.
    split : str
        Which galaxy split of the bank to draw from: ``train``, ``val``, ``test`` or ``all``.
    split_seed : int
        Seed of the by-galaxy split (the same for every dataset, so splits never share a galaxy).
    stamp_size_arcsec : (float, float)
        Angular size across of a real-galaxy stamp (the paper: 0.4-2.0").
    sersic_radius_arcsec : (float, float)
        Sérsic half-light radius range for Sérsic sources and clumpy bodies.
    sersic_index : (float, float)
        Sérsic index range.
    sersic_q : (float, float)
        Source axis-ratio range.
    """

    fractions: tuple[float, float, float] = setting((1 / 3, 1 / 3, 1 / 3))
    bank: str = setting("hubble_deep_field")
    split: str = setting("train", choices=("train", "val", "test", "all"))
    split_seed: int = setting(2017)
    stamp_size_arcsec: tuple[float, float] = setting((0.4, 2.0), min=1e-3)
    sersic_radius_arcsec: tuple[float, float] = setting((0.05, 0.3), min=1e-3)
    sersic_index: tuple[float, float] = setting((0.5, 4.0), min=0.2, max=8.0)
    sersic_q: tuple[float, float] = setting((0.4, 1.0), min=0.05, max=1.0)

    def validate(self):
        if min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise LensnetConfigError(f"fractions = {list(self.fractions)}: expected three non-negative "
                                     "probabilities (real, sersic, clumpy) summing to 1")


@dataclass(frozen=True)
class PlacementConfig(Config):
    """Where sources go and which lenses are kept (Hezaveh et al. 2017, Methods, and its released code).

    Parameters
    ----------
    caustic_growth_arcsec : float
        Half the sources lie inside the tangential caustic grown by this much [0.15"].
    cut_shrink : float
        The other half lie inside the radial cut scaled by this factor [0.7].
    min_flux_fraction : float
        Keep a lens only if at least this fraction of its lensed flux is inside the field [0.99].
    min_magnification : float
        Keep a lens only if its total magnification is at least this [2].
    max_rounds : int
        Redraw rejected lenses at most this many times before giving up with an error.
    """

    caustic_growth_arcsec: float = setting(0.15, min=0.0)
    cut_shrink: float = setting(0.7, min=0.0, max=1.0, min_open=True)
    min_flux_fraction: float = setting(0.99, min=0.0, max=1.0)
    min_magnification: float = setting(2.0, min=0.0)
    max_rounds: int = setting(50, min=1)


@dataclass(frozen=True)
class SimulationConfig(Config):
    """Everything a simulated dataset depends on besides its seed.

    Parameters
    ----------
    name : str
        Preset name or a user label.
    n_pix : int
        Pixels per side.
    pixel_scale : float
        Arcsec per pixel.
    supersample : int
        Sub-pixels per pixel side for ray shooting.
    supersample_threshold : float
        Adaptive supersampling: only pixels brighter than this fraction of each image's brightest
        pixel, or next to one, are supersampled (:func:`lensnet.simulate.render.render`); 0: all.
        The default, 3e-3, changes no pixel by more than 0.3% of the peak, a third of the
        smallest noise rms of the presets.
    lens : LensPrior
        Prior of the SIE parameters.
    source : SourceConfig
        Source mixture.
    placement : PlacementConfig
        Source placement and acceptance cuts.
    observation : ObservationConfig
        Observational effects.
    """

    name: str = setting("paper")
    n_pix: int = setting(192, min=8)
    pixel_scale: float = setting(0.04, min=0.0, min_open=True)
    supersample: int = setting(2, min=1)
    supersample_threshold: float = setting(3e-3, min=0.0, max=1.0, max_open=True)
    lens: LensPrior = setting(factory=LensPrior)
    source: SourceConfig = setting(factory=SourceConfig)
    placement: PlacementConfig = setting(factory=PlacementConfig)
    observation: ObservationConfig = setting(factory=ObservationConfig)

    def for_split(self, split: str) -> "SimulationConfig":
        """This config with its real galaxies from the bank's ``split`` ('train', 'val' or 'test'), unless
        it draws from all of them (``source.split = 'all'``): held-out sets use galaxies training never saw."""
        return self if self.source.split == "all" else self.from_dict({"source": {"split": split}}, base=self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _paper() -> SimulationConfig:
    return SimulationConfig()


def _hst_acs() -> SimulationConfig:
    # Drizzled ACS/WFC PSF: FWHM 0.10-0.14" (ACS instrument handbook), sigma = FWHM / 2.355 in 0.05" pixels,
    # always present.
    return SimulationConfig.from_dict({
        "name": "hst-acs", "n_pix": 160, "pixel_scale": 0.05,
        "observation": {"psf": {"probability": 1.0, "sigma_range": [0.85, 1.19]}},
    })


def _tiny() -> SimulationConfig:
    return SimulationConfig.from_dict({
        "name": "tiny", "n_pix": 32, "pixel_scale": 0.12, "supersample": 1,
        "lens": {"theta_E_range": [0.5, 1.2]},
        "placement": {"max_rounds": 100},
    })


PRESETS = {"paper": _paper, "hst-acs": _hst_acs, "tiny": _tiny}


def get_preset(name: str) -> SimulationConfig:
    """The named preset (``paper``, ``hst-acs`` or ``tiny``)."""
    if name not in PRESETS:
        raise LensnetConfigError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")
    return PRESETS[name]()


def load_simulation_config(path, preset: str | None = None) -> SimulationConfig:
    """Read a YAML/TOML file; its fields override the preset it names (key ``preset``) or ``preset``.

    Raises
    ------
    LensnetConfigError
        If the file cannot be parsed, names an unknown preset, or has an unknown field or a value of
        the wrong type or range; the message names the file, the field and the allowed range.
    """
    data = read_config_file(path)
    try:
        base = get_preset(data.pop("preset", preset or "paper"))
    except LensnetConfigError as exc:
        raise LensnetConfigError(f"{path}: {exc}") from None
    return load_config_file(SimulationConfig, path, base, data)
