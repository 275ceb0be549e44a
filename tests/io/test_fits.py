"""FITS images and tables: round trips with header and provenance, pixel scales, clear errors."""

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

import lensnet
from lensnet.errors import LensnetIOError, LensnetShapeError, LensnetValueError
from lensnet.io.fits import (FitsWarning, read_image, read_image_hdu, read_image_hdus, read_image_with_extensions,
                             write_image, write_table)


@pytest.fixture
def image():
    return np.arange(12 * 10, dtype=np.float32).reshape(12, 10)


def _write_raw(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(cards)
    hdu.writeto(path)
    return path


def test_image_round_trip_with_header_and_provenance(tmp_path, image):
    path = tmp_path / "img.fits"
    cards = {"PIXSCALE": (0.04, "arcsec/pixel"), "SEED": 7, "MODELNAME": ("alexnet", "network")}
    assert write_image(path, image, cards) == path
    data, scale = read_image(path)
    np.testing.assert_array_equal(data, image)  # row 0 stays row 0 (FITS order, no flip)
    assert data.dtype == np.float32 and scale == pytest.approx(0.04)
    header = fits.getheader(path)
    assert header["SEED"] == 7 and header["MODELNAME"] == "alexnet"
    assert header.comments["PIXSCALE"] == "arcsec/pixel"
    assert header["LENSNVER"] == lensnet.__version__ and header["DATE"].startswith("20")


def test_tensor_and_cube_are_written(tmp_path, image):
    cube = torch.from_numpy(np.stack([image, 2 * image]))
    write_image(tmp_path / "cube.fits", cube)
    np.testing.assert_array_equal(fits.getdata(tmp_path / "cube.fits"), cube.numpy())
    with pytest.raises(LensnetShapeError, match=r"\(H, W\) or \(N, H, W\)"):
        write_image(tmp_path / "bad.fits", np.zeros(5))


def test_no_overwrite_without_flag(tmp_path, image):
    path = tmp_path / "img.fits"
    write_image(path, image, {"PIXSCALE": 0.04})
    with pytest.raises(LensnetIOError, match="already exists"):
        write_image(path, 2 * image, {"PIXSCALE": 0.04})
    np.testing.assert_array_equal(read_image(path)[0], image)
    write_image(path, 2 * image, {"PIXSCALE": 0.04}, overwrite=True)
    np.testing.assert_array_equal(read_image(path)[0], 2 * image)


def test_bad_header_card_leaves_no_file(tmp_path, image):
    with pytest.raises(LensnetValueError, match="BADCARD"):
        write_image(tmp_path / "img.fits", image, {"BADCARD": object()})
    assert list(tmp_path.iterdir()) == []


def test_table_round_trip_keeps_units_and_provenance(tmp_path):
    table = Table({"theta_E": [1.0, 1.5] * u.arcsec, "name": ["a", "b"]})
    path = tmp_path / "table.fits"
    write_table(path, table, {"SEED": 3})
    back = Table.read(path)
    assert back["theta_E"].unit == u.arcsec and list(back["name"]) == ["a", "b"]
    np.testing.assert_allclose(back["theta_E"], [1.0, 1.5])
    header = fits.getheader(path, 1)
    assert header["SEED"] == 3 and header["LENSNVER"] == lensnet.__version__
    with pytest.raises(LensnetIOError, match="already exists"):
        write_table(path, table)
    with pytest.raises(LensnetValueError, match="astropy.table.Table"):
        write_table(tmp_path / "x.fits", {"a": [1]})


@pytest.mark.parametrize("cards, expected", [
    ({"CD1_1": -0.05 / 3600, "CD2_1": 0.0}, 0.05),
    ({"CD1_1": 0.03 / 3600 * np.cos(0.3), "CD2_1": 0.03 / 3600 * np.sin(0.3)}, 0.03),  # rotated
    ({"CDELT1": -0.1 / 3600}, 0.1),
    ({"CDELT1": 0.02, "CUNIT1": "arcsec"}, 0.02),
    ({"PIXSCALE": 0.04, "CDELT1": 1.0}, 0.04),  # PIXSCALE first
])
def test_pixel_scale_from_header_keywords(tmp_path, image, cards, expected):
    _, scale = read_image(_write_raw(tmp_path / "img.fits", image, **cards))
    assert scale == pytest.approx(expected, rel=1e-9)


def test_missing_pixel_scale_names_the_keywords(tmp_path, image):
    path = _write_raw(tmp_path / "img.fits", image)
    with pytest.raises(LensnetIOError, match="PIXSCALE.*CD1_1.*CDELT1"):
        read_image(path)
    assert read_image(path, default_pixel_scale=0.03)[1] == pytest.approx(0.03)


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_read_errors_name_the_file(tmp_path, image):
    with pytest.raises(LensnetIOError, match="nope.fits does not exist"):
        read_image(tmp_path / "nope.fits")
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(LensnetIOError, match="garbage.fits"):
        read_image(garbage)
    good = _write_raw(tmp_path / "good.fits", np.ones((50, 50), np.float32), PIXSCALE=0.1)
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(LensnetIOError, match="truncated.fits"):
        read_image(truncated)
    with pytest.raises(LensnetIOError, match=r"1 HDU\(s\); hdu=3"):
        read_image(good, ext=3)


def test_hdu_selection_tables_and_shapes(tmp_path, image):
    path = tmp_path / "multi.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="SCI"),
                  fits.BinTableHDU(Table({"a": [1, 2]}), name="TAB")]).writeto(path)
    np.testing.assert_array_equal(read_image(path, ext=None, default_pixel_scale=1.0)[0], image)
    np.testing.assert_array_equal(read_image(path, ext="SCI", default_pixel_scale=1.0)[0], image)
    with pytest.raises(LensnetIOError, match="holds no data"):
        read_image(path, ext=0, default_pixel_scale=1.0)
    with pytest.raises(LensnetIOError, match="table, not an image"):
        read_image(path, ext="TAB", default_pixel_scale=1.0)
    cube = _write_raw(tmp_path / "cube.fits", np.zeros((2, 3, 3), np.float32), PIXSCALE=1.0)
    with pytest.raises(LensnetShapeError, match=r"\(2, 3, 3\)"):
        read_image(cube)


def test_nan_pixels_are_reported(tmp_path, image):
    image[2, 3] = np.nan
    path = _write_raw(tmp_path / "nan.fits", image, PIXSCALE=0.04)
    with pytest.warns(FitsWarning, match="1 NaN"):
        data, _ = read_image(path)
    assert np.isnan(data[2, 3])


def test_read_image_hdus_opens_once_and_names_missing_hdus(tmp_path, image):
    path = tmp_path / "galaxies.fits"
    fits.HDUList([fits.PrimaryHDU(image), fits.ImageHDU(2 * image)]).writeto(path)
    first, second = read_image_hdus(path, [0, 1])
    np.testing.assert_array_equal(second, 2 * first)
    with pytest.raises(LensnetIOError, match=r"2 HDU\(s\); hdu=5"):
        read_image_hdus(path, [0, 5])


@pytest.mark.parametrize("layout, expected", [
    ([("", None), ("SCI", "image"), ("WHT", "map"), ("CTX", "map")], "SCI"),  # HST drizzled
    ([("", None), ("SCI", "image"), ("ERR", "map"), ("DQ", "map")], "SCI"),  # HST flt
    ([("", None), ("VIS_RMS", "map"), ("VIS_FLUX", "image"), ("VIS_PSF", "small")], "VIS_FLUX"),  # Euclid cutout
    ([("", "image"), ("ERR", "map")], "0"),  # a plain primary image
    ([("", None), ("WHT", "map"), ("", "image")], "2"),  # an unnamed image after a weight map
])
def test_the_image_hdu_is_found_by_name_and_role(tmp_path, image, layout, expected):
    arrays = {"image": image, "map": np.ones_like(image), "small": np.ones((5, 5), np.float32), None: None}
    hdus = [fits.PrimaryHDU(arrays[layout[0][1]])] + [fits.ImageHDU(arrays[kind], name=name or None)
                                                      for name, kind in layout[1:]]
    path = tmp_path / "layout.fits"
    fits.HDUList(hdus).writeto(path)
    data, _, where = read_image_hdu(path, None)
    np.testing.assert_array_equal(data, image)
    assert where == f"{path}[{expected}]"


def test_empty_primary_names_the_image_hdus_and_cubes_need_a_plane(tmp_path, image):
    path = tmp_path / "drizzled.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="SCI")]).writeto(path)
    with pytest.raises(LensnetIOError, match=r"holds no data; its image HDUs: 1 \(SCI\) \(choose one with --hdu\)"):
        read_image_hdu(path, 0)
    single = _write_raw(tmp_path / "single.fits", image[None])
    np.testing.assert_array_equal(read_image_hdu(single, None)[0], image)  # (1, H, W): the axis is dropped
    stack = np.stack([image, 2 * image, 3 * image])
    cube = _write_raw(tmp_path / "cube3.fits", stack)
    with pytest.raises(LensnetIOError, match="--plane"):
        read_image_hdu(cube, None)
    with pytest.raises(LensnetShapeError, match="--plane"):
        read_image_hdu(cube, 0)
    data, _, where = read_image_hdu(cube, None, plane=2)
    np.testing.assert_array_equal(data, 3 * image)
    assert where.endswith("[0, plane 2]")
    with pytest.raises(LensnetValueError, match="plane 3 does not exist, the cube has planes 0-2"):
        read_image_hdu(cube, 0, plane=3)
    with pytest.raises(LensnetValueError, match="not a cube"):
        read_image_hdu(single, None, plane=1)


def test_extensions_are_found_bare_or_with_the_images_band_prefix(tmp_path, image):
    path = tmp_path / "survey.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="VIS_FLUX"),
                  fits.ImageHDU(image + 1, name="NIR_EXPTIME"), fits.ImageHDU(image + 2, name="VIS_EXPTIME"),
                  fits.ImageHDU(image + 3, name="EXPTIME"), fits.ImageHDU(image + 4, name="MASK")]).writeto(path)
    data, _, where, found = read_image_with_extensions(path, "VIS_FLUX", ("EXPTIME", "MASK", "WHT"))
    assert where.endswith("[VIS_FLUX]") and set(found) == {"EXPTIME", "MASK"}
    np.testing.assert_array_equal(found["EXPTIME"], image + 2)  # the image's own band first, never another's
    np.testing.assert_array_equal(found["MASK"], image + 4)
    _, _, _, plain = read_image_with_extensions(path, "EXPTIME", ("MASK",))
    np.testing.assert_array_equal(plain["MASK"], image + 4)
