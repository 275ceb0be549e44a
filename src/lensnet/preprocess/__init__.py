"""Images made ready for a network: the input normalisation shared by simulated and real images, and the
preparation of real FITS images (cutout, resampling to the model's grid, background, noise, masks).

- :func:`normalize_images` (:mod:`~lensnet.preprocess.normalize`): every network input, simulated or real;
- :func:`lensnet.preprocess.real.prepare_image`: a real image on the model's pixel grid (imported from its
  module: it brings astropy's WCS and reproject, which simulation does not need).
"""

from lensnet.preprocess.normalize import normalize_images

__all__ = ["normalize_images"]
