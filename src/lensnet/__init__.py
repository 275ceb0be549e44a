"""lensnet: fast measurement of strong gravitational lenses with convolutional neural networks.

Reimplements and extends Hezaveh, Perreault Levasseur & Marshall 2017 (Nature 548, 555). Conventions
(parameters, axes, units) are defined once in :mod:`lensnet.conventions`.
"""

from lensnet.conventions import PARAM_NAMES, LensParams
from lensnet.errors import LensnetError

__version__ = "0.1.0"
__all__ = ["PARAM_NAMES", "LensParams", "LensnetError", "__version__"]
