"""Write the real lenses of ../shared/realdata/lenses/ as the package's example FITS files (run once).

Usage: python tools/make_example_data.py [REALDATA_DIR]. Values are unchanged except: SDSS J2303+1422's rows
are flipped to FITS order (row 0 at the bottom) and its PSF is renormalised to unit sum.
"""

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

OUT = Path(__file__).resolve().parents[1] / "src" / "lensnet" / "examples"


def write(path, image, cards, extra):
    header = fits.Header()
    for key, (value, comment) in cards.items():
        header[key] = (value, comment)
    hdus = [fits.PrimaryHDU(image if image.dtype == np.uint8 else image.astype(np.float32), header=header)]
    hdus += [fits.ImageHDU(data.astype(np.float32), name=name) for name, data in extra.items()]
    fits.HDUList(hdus).writeto(path, overwrite=True, checksum=True)


def main(realdata: Path):
    j0219 = realdata / "lenses" / "sl2sj0219-0829"
    for band in ("F475X", "F600LP"):
        write(OUT / f"sl2sj0219-0829_{band}.fits", np.load(j0219 / f"image_{band}.npy"), {
            "OBJECT": ("SL2S J0219-0829", "lens"), "TELESCOP": ("HST", ""), "INSTRUME": ("WFC3/UVIS", ""),
            "FILTER": (band, ""), "BUNIT": ("counts/s", ""), "PIXSCALE": (0.04, "arcsec/pixel"),
            "ORIGIN": ("ajshajib/dolphin @4c2cbf2 (BSD-3-Clause)", "lens_system3"),
        }, {"PSF": np.load(j0219 / f"psf_{band}.npy"), "EXPTIME": np.load(j0219 / f"exposure_time_{band}.npy")})
    # Three compact sources in the field, unrelated to the lens (peaks of the ICA arcs image at pixels (70, 12),
    # (5, 22), (8, 112), 2.1-2.9" from the lens): discs of 0.3" to mask when estimating the lens.
    y, x = np.mgrid[:130, :130]
    neighbours = np.zeros((130, 130), np.uint8)
    for px, py in ((70, 12), (5, 22), (8, 112)):
        neighbours[np.hypot(x - px, y - py) * 0.04 < 0.3] = 1
    write(OUT / "sl2sj0219-0829_neighbours.fits", neighbours, {
        "OBJECT": ("SL2S J0219-0829", "mask of unrelated sources"), "PIXSCALE": (0.04, "arcsec/pixel")}, {})
    j2303 = realdata / "lenses" / "sdssj2303+1422"
    psf = np.load(j2303 / "psf.npy")[::-1]
    write(OUT / "sdssj2303+1422.fits", np.load(j2303 / "data.npy")[::-1], {
        "OBJECT": ("SDSS J2303+1422", "SLACS lens"), "TELESCOP": ("HST", ""), "INSTRUME": ("ACS", ""),
        "PIXSCALE": (0.05, "arcsec/pixel"),
        "ORIGIN": ("Jammy2211/autofit_workspace @1552ff6", "projects/cosmology/dataset"),
    }, {"NOISE": np.load(j2303 / "noise_map.npy")[::-1], "PSF": psf / psf.sum()})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "realdata")
