"""Lens light removed before estimation: ICA of two filters (the paper's method), or a Sérsic fit to one band.

- :func:`ica_deblend` (:mod:`~lensnet.deblend.ica`): FastICA of two co-registered bands;
- :func:`fit_lens_light` (:mod:`~lensnet.deblend.sersic_fit`): an elliptical Sérsic fitted and subtracted;
- :func:`~lensnet.deblend.figure.deblend_figure`: the inputs, the components and the arcs left, as the
  paper's Extended Data Fig. 2.
"""

from lensnet.deblend.figure import deblend_figure
from lensnet.deblend.ica import IcaResult, ica_deblend, lens_center
from lensnet.deblend.sersic_fit import SersicFit, fit_lens_light

__all__ = ["IcaResult", "SersicFit", "deblend_figure", "fit_lens_light", "ica_deblend", "lens_center"]
