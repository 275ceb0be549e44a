"""Simulation: rendering, lens prior, source placement, the batched simulator and its presets."""

from lensnet.simulate.config import PRESETS, PlacementConfig, SimulationConfig, SourceConfig, get_preset, load_simulation_config
from lensnet.simulate.placement import acceptance, place_sources, points_in_polygons
from lensnet.simulate.prior import LensPrior
from lensnet.simulate.render import CPU_CHUNK_ELEMENTS, render, render_unlensed
from lensnet.simulate.simulator import SOURCE_TYPES, LensSimulator, SimulatedBatch, SourceKind, load_source_bank

__all__ = [
    "render",
    "render_unlensed",
    "CPU_CHUNK_ELEMENTS",
    "LensPrior",
    "place_sources",
    "points_in_polygons",
    "acceptance",
    "SimulationConfig",
    "SourceConfig",
    "PlacementConfig",
    "PRESETS",
    "get_preset",
    "load_simulation_config",
    "LensSimulator",
    "SimulatedBatch",
    "SOURCE_TYPES",
    "SourceKind",
    "load_source_bank",
]
