"""lensnet: fast measurement of strong gravitational lenses with convolutional neural networks.

Reimplements and extends Hezaveh, Perreault Levasseur & Marshall 2017 (Nature 548, 555). Conventions
(parameters, axes, units) are defined once in :mod:`lensnet.conventions`.
"""

from importlib.metadata import PackageNotFoundError, version

from lensnet.conventions import PARAM_NAMES, LensParams
from lensnet.errors import LensnetError

try:  # the version is defined once, in pyproject.toml
    __version__ = version("lensnet")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
__all__ = ["PARAM_NAMES", "LensParams", "LensnetError", "__version__"]
