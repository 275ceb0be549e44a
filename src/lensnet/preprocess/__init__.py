"""Images made ready for a network: the input normalisation shared by simulated and real images, and the
preparation of real FITS images (cutout, resampling to the model's grid, background, noise, masks).

- :func:`normalize_images` (:mod:`~lensnet.preprocess.normalize`): every network input, simulated or real;
- :func:`lensnet.preprocess.real.prepare_image`: a real image on the model's pixel grid (imported from its
  module: it brings astropy's WCS and reproject, which simulation does not need);
- :func:`read_native` (:mod:`~lensnet.preprocess.native`): a real image on its own pixels with the noise,
  mask and PSF its file carries, for fitting a lens model (loaded on first use, for the same reason);
- :func:`lensnet.preprocess.whiten.match_noise`: correlated noise brought to a spectrum of the training's, by
  adding noise (a step of ``prepare_image``).
"""

import importlib

from lensnet.preprocess.normalize import normalize_images

__all__ = ["NativeCutout", "normalize_images", "read_native"]


def __getattr__(name: str):
    if name in ("NativeCutout", "read_native"):
        return getattr(importlib.import_module("lensnet.preprocess.native"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
