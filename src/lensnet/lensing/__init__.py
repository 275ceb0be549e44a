"""Lensing physics: pixel grids, lens profiles, critical curves and caustics."""

from lensnet.lensing.base import LensProfile
from lensnet.lensing.grid import PixelGrid
from lensnet.lensing.sie import (
    SIE,
    sie_caustic,
    sie_convergence,
    sie_critical_curve,
    sie_cut,
    sie_deflection,
    sie_hessian,
    sie_potential,
)

__all__ = [
    "LensProfile",
    "PixelGrid",
    "SIE",
    "sie_caustic",
    "sie_convergence",
    "sie_critical_curve",
    "sie_cut",
    "sie_deflection",
    "sie_hessian",
    "sie_potential",
]
