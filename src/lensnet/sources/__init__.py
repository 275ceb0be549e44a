"""Source-plane light: the Source protocol, Sersic profiles, clumpy galaxies and image stamps."""

from lensnet.sources.banks import (HDF_PIXEL_SCALE, SPLIT_NAMES, SourceBank, SourceBankWarning, fits_folder_bank,
                                   galsim_cosmos_bank, hubble_deep_field_bank)
from lensnet.sources.base import Source
from lensnet.sources.clumpy import MAX_CLUMPS, ClumpySource, draw_clumpy_sources
from lensnet.sources.sersic import N_SERSIC_RANGE, Sersic, sersic_b_n, sersic_profile, sersic_total_flux
from lensnet.sources.stamps import TAPER_FRACTION, StampSource

__all__ = [
    "Source",
    "Sersic",
    "sersic_profile",
    "sersic_b_n",
    "sersic_total_flux",
    "N_SERSIC_RANGE",
    "ClumpySource",
    "draw_clumpy_sources",
    "MAX_CLUMPS",
    "StampSource",
    "TAPER_FRACTION",
    "SourceBank",
    "SourceBankWarning",
    "hubble_deep_field_bank",
    "galsim_cosmos_bank",
    "fits_folder_bank",
    "HDF_PIXEL_SCALE",
    "SPLIT_NAMES",
]
