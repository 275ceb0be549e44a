"""Likelihood fits of lens images seeded by the network (``lensnet refine``).

:mod:`lensnet.refine.model` is the image model (mass, optional shear and lens light, Sersic source, PSF,
background) and its chi^2; :mod:`lensnet.refine.pixelated` the pixelated source (a regularised linear
inversion on a source-plane grid) and the fit of the lens on its Bayesian evidence; :mod:`lensnet.refine.fit`
the batched, multi-start L-BFGS fit with a Gaussian prior from the network and Laplace uncertainties;
:mod:`lensnet.refine.posterior` the MCMC posterior; :mod:`lensnet.refine.catalog` FITS files to a catalogue.
"""

from lensnet.refine.fit import RefineResult, refine_lenses
from lensnet.refine.model import (FIT_PARAM_NAMES, ImageData, ModelSpec, chi_square, model_images, to_physical,
                                  to_unconstrained)
from lensnet.refine.posterior import Posterior, sample_posterior

__all__ = ["FIT_PARAM_NAMES", "ImageData", "ModelSpec", "Posterior", "RefineResult", "chi_square", "model_images",
           "refine_lenses", "sample_posterior", "to_physical", "to_unconstrained"]
