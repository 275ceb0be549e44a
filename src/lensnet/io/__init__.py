"""File input and output: FITS images and tables, atomic writes."""

from lensnet.io.atomic import atomic_output, check_writable, output_folder
from lensnet.io.fits import (
    FitsWarning,
    pixel_scale_from_header,
    provenance_cards,
    read_image,
    read_image_hdus,
    write_image,
    write_table,
)

__all__ = [
    "atomic_output",
    "check_writable",
    "output_folder",
    "FitsWarning",
    "pixel_scale_from_header",
    "provenance_cards",
    "read_image",
    "read_image_hdus",
    "write_image",
    "write_table",
]
