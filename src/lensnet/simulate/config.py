"""Simulation configuration: dataclasses, presets and YAML/TOML loading.

A :class:`SimulationConfig` fixes everything a simulated dataset depends on besides its seed: the
pixel grid, the lens prior, the source mixture, the placement cuts and the observational effects.
Presets:

- ``paper``: REFERENCE's numbers: 192x192 pixels at 0.04", the paper's priors and effects.
- ``hst-acs``: HST ACS/WFC sampling, 0.05"/px on 160x160 pixels (8"), with the drizzled ACS PSF
  (FWHM 0.10-0.14") on every image; otherwise as ``paper``.
- ``tiny``: 32x32 pixels at 0.12", small Einstein radii, no supersampling: for tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from lensnet.configfile import from_dict, read_config_file, to_dict
from lensnet.errors import LensnetConfigError
from lensnet.observe.pipeline import ObservationConfig
from lensnet.simulate.prior import LensPrior

__all__ = ["SourceConfig", "PlacementConfig", "SimulationConfig", "PRESETS", "get_preset",
           "load_simulation_config"]


def _check_interval(owner: str, name: str, value, lo=None, hi=None):
    a, b = value
    if a > b or (lo is not None and a < lo) or (hi is not None and b > hi):
        raise LensnetConfigError(f"{owner}.{name} = {list(value)}: expected [min, max] with min <= max"
                                 + (f" inside [{lo}, {hi}]" if lo is not None or hi is not None else ""))


@dataclass(frozen=True)
class SourceConfig:
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
        Angular size across of a real-galaxy stamp (REFERENCE: 0.4-2.0").
    sersic_radius_arcsec : (float, float)
        Sérsic half-light radius range for Sérsic sources and clumpy bodies.
    sersic_index : (float, float)
        Sérsic index range.
    sersic_q : (float, float)
        Source axis-ratio range.
    """

    fractions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)
    bank: str = "hubble_deep_field"
    split: str = "train"
    split_seed: int = 2017
    stamp_size_arcsec: tuple[float, float] = (0.4, 2.0)
    sersic_radius_arcsec: tuple[float, float] = (0.05, 0.3)
    sersic_index: tuple[float, float] = (0.5, 4.0)
    sersic_q: tuple[float, float] = (0.4, 1.0)

    def __post_init__(self):
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise LensnetConfigError(f"source.fractions = {list(self.fractions)}: expected three non-negative "
                                     "probabilities (real, sersic, clumpy) summing to 1")
        if self.split not in ("train", "val", "test", "all"):
            raise LensnetConfigError(f"source.split = {self.split!r}: expected train, val, test or all")
        _check_interval("source", "stamp_size_arcsec", self.stamp_size_arcsec, 1e-3)
        _check_interval("source", "sersic_radius_arcsec", self.sersic_radius_arcsec, 1e-3)
        _check_interval("source", "sersic_index", self.sersic_index, 0.2, 8.0)
        _check_interval("source", "sersic_q", self.sersic_q, 0.05, 1.0)


@dataclass(frozen=True)
class PlacementConfig:
    """Where sources go and which lenses are kept (REFERENCE).

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

    caustic_growth_arcsec: float = 0.15
    cut_shrink: float = 0.7
    min_flux_fraction: float = 0.99
    min_magnification: float = 2.0
    max_rounds: int = 50

    def __post_init__(self):
        if not 0 < self.cut_shrink <= 1:
            raise LensnetConfigError(f"placement.cut_shrink = {self.cut_shrink}: expected a factor in (0, 1]")
        if self.caustic_growth_arcsec < 0:
            raise LensnetConfigError(f"placement.caustic_growth_arcsec = {self.caustic_growth_arcsec}: expected >= 0")
        if not 0 <= self.min_flux_fraction <= 1:
            raise LensnetConfigError(f"placement.min_flux_fraction = {self.min_flux_fraction}: expected in [0, 1]")
        if self.min_magnification < 0:
            raise LensnetConfigError(f"placement.min_magnification = {self.min_magnification}: expected >= 0")
        if self.max_rounds < 1:
            raise LensnetConfigError(f"placement.max_rounds = {self.max_rounds}: expected >= 1")


@dataclass(frozen=True)
class SimulationConfig:
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

    name: str = "paper"
    n_pix: int = 192
    pixel_scale: float = 0.04
    supersample: int = 2
    supersample_threshold: float = 3e-3
    lens: LensPrior = field(default_factory=LensPrior)
    source: SourceConfig = field(default_factory=SourceConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)

    def __post_init__(self):
        if self.n_pix < 8:
            raise LensnetConfigError(f"n_pix = {self.n_pix}: expected at least 8 pixels per side")
        if not self.pixel_scale > 0:
            raise LensnetConfigError(f"pixel_scale = {self.pixel_scale}: expected a positive number of arcsec per pixel")
        if self.supersample < 1:
            raise LensnetConfigError(f"supersample = {self.supersample}: expected a positive integer")
        if not 0 <= self.supersample_threshold < 1:
            raise LensnetConfigError(f"supersample_threshold = {self.supersample_threshold}: expected a fraction "
                                     "of the brightest pixel in [0, 1)")

    def to_dict(self) -> dict:
        d = to_dict(self)
        d["lens"] = _part_to_dict(self.lens)
        d["observation"] = self.observation.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, base: "SimulationConfig | None" = None) -> "SimulationConfig":
        """Build from a (partial) mapping; fields left out keep the values of ``base`` (default: paper)."""
        base = base or SimulationConfig()
        if not isinstance(data, dict):
            raise LensnetConfigError("a simulation configuration must be a mapping of field names")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LensnetConfigError(f"unknown configuration field {unknown[0]}; known fields: {', '.join(sorted(known))}")
        changes = {}
        for name, value in data.items():
            current = getattr(base, name)
            if name == "observation":
                merged = _merge(current.to_dict(), value, name)
                changes[name] = ObservationConfig.from_dict(merged, where="observation")
            elif dataclasses.is_dataclass(current):
                merged = _merge(_part_to_dict(current), value, name)
                try:
                    changes[name] = from_dict(type(current), merged, name)
                except LensnetConfigError as exc:
                    msg = str(exc)
                    raise LensnetConfigError(msg if msg.startswith(name) else f"{name}.{msg}") from None
            else:
                changes[name] = getattr(from_dict(_ScalarFields, {name: value}), name)
        return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class _ScalarFields:
    # The scalar fields of SimulationConfig, typed, so from_dict can check them without building a
    # whole config (whose __post_init__ would reject the partial state).
    name: str = "paper"
    n_pix: int = 192
    pixel_scale: float = 0.04
    supersample: int = 2
    supersample_threshold: float = 3e-3


def _part_to_dict(part) -> dict:
    return part.to_dict() if hasattr(part, "to_dict") else to_dict(part)


def _merge(base: dict, override, where: str) -> dict:
    if override is None:
        return base
    if not isinstance(override, dict):
        raise LensnetConfigError(f"{where}: expected a mapping of fields, got {override!r}")
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(base[k], v, f"{where}.{k}") if isinstance(base.get(k), dict) and isinstance(v, dict) else v
    return out


def _paper() -> SimulationConfig:
    return SimulationConfig()


def _hst_acs() -> SimulationConfig:
    # Drizzled ACS/WFC PSF: FWHM 0.10-0.14" (REFERENCE.md), sigma = FWHM / 2.355 in 0.05" pixels,
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
    """Read a YAML/TOML file; its fields override the preset it names (key ``preset``) or ``preset``."""
    data = read_config_file(path)
    base = get_preset(data.pop("preset", preset or "paper"))
    return SimulationConfig.from_dict(data, base)
