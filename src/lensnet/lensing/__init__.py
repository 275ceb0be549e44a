"""Lensing physics: pixel grids, lens profiles, critical curves and caustics."""

from lensnet.lensing.base import LensProfile
from lensnet.lensing.epl import EPL, epl_convergence, epl_deflection, epl_hessian, epl_potential
from lensnet.lensing.grid import PixelGrid
from lensnet.lensing.shear import (
    ExternalShear,
    shear_cartesian_to_polar,
    shear_deflection,
    shear_hessian,
    shear_polar_to_cartesian,
    shear_potential,
)
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
    "EPL",
    "ExternalShear",
    "LensProfile",
    "PixelGrid",
    "SIE",
    "epl_convergence",
    "epl_deflection",
    "epl_hessian",
    "epl_potential",
    "shear_cartesian_to_polar",
    "shear_deflection",
    "shear_hessian",
    "shear_polar_to_cartesian",
    "shear_potential",
    "sie_caustic",
    "sie_convergence",
    "sie_critical_curve",
    "sie_cut",
    "sie_deflection",
    "sie_hessian",
    "sie_potential",
]
