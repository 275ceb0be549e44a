"""`lensnet predict`: FITS files in, one catalogue row each; bad files reported while the others go on."""

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from click.testing import CliRunner

from lensnet.cli import cli
from lensnet.conventions import PARAM_NAMES
from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained, load_pretrained
from lensnet.errors import LensnetValueError
from lensnet.inference.catalog import find_fits, most_certain, write_catalog, write_lenstronomy
from lensnet.simulate import LensSimulator, get_preset
from lensnet.simulate.seeds import batch_seed

pytestmark = pytest.mark.skipif(DEFAULT_PRETRAINED not in list_pretrained(), reason="needs the shipped model")


@pytest.fixture(scope="module")
def predictor():
    return load_pretrained()


@pytest.fixture(scope="module")
def lens_files(tmp_path_factory):
    """Two simulated hst-acs lenses (0.05"/px) inside larger 180x200 frames with a celestial WCS."""
    folder = tmp_path_factory.mktemp("fits")
    batch = LensSimulator(get_preset("hst-acs").for_split("test")).simulate(2, batch_seed(99, 0))
    paths = []
    for i in range(2):
        frame = np.random.default_rng(i).normal(0.0, 0.02, (180, 200)) + 0.5
        frame[10:170, 20:180] = batch.observed[i, 0].double().numpy() + 0.5
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [35.0, -8.5], [100.5, 90.5]
        w.wcs.cd = [[-0.05 / 3600, 0], [0, 0.05 / 3600]]
        paths.append(folder / f"lens{i}.fits")
        fits.PrimaryHDU(frame.astype(np.float32), header=w.to_header()).writeto(paths[-1])
    return paths, batch.targets.double().numpy()


def test_a_simulated_lens_is_recovered_within_its_uncertainty(predictor, lens_files):
    paths, truth = lens_files
    table = predictor.predict_fits(paths[:1], center=(99.5, 89.5), progress=False)
    row = table[0]
    assert row["error"] == "" and row["coverage"] == 1.0 and row["pixel_scale_in"] == pytest.approx(0.05)
    for k, name in enumerate(PARAM_NAMES):
        assert abs(row[name] - truth[0, k]) < 3 * row[f"{name}_sigma"], (name, row[name], truth[0, k])
        z95 = float(predictor.z95[k])  # the card's calibrated 95% width
        assert row[f"{name}_hi95"] - row[name] == pytest.approx(z95 * row[f"{name}_sigma"], rel=1e-6)
        assert row[name] - row[f"{name}_lo95"] == pytest.approx(z95 * row[f"{name}_sigma"], rel=1e-6)
    assert (row["ra"], row["dec"]) == pytest.approx((35.0, -8.5), abs=0.5 / 3600)
    assert 0 < row["q"] <= 1 and table["theta_E"].unit == "arcsec" and table.meta["model"] == DEFAULT_PRETRAINED


def test_a_sky_centre_is_the_same_cutout_as_its_pixel(predictor, lens_files):
    paths, _ = lens_files
    by_pixel = predictor.predict_fits(paths[:1], center=(99.5, 89.5), progress=False)
    by_sky = predictor.predict_fits(paths[:1], sky_center=(35.0, -8.5), progress=False)
    for name in PARAM_NAMES:
        assert by_sky[name][0] == pytest.approx(by_pixel[name][0], abs=1e-4)


def test_bad_files_get_their_reason_and_the_others_land(predictor, lens_files, tmp_path):
    paths, _ = lens_files
    good = fits.getdata(paths[0])
    header = fits.getheader(paths[0])
    cases = {
        "not_fits.fits": lambda p: p.write_text("hello"),
        "truncated.fits": lambda p: p.write_bytes(paths[0].read_bytes()[:5000]),
        "no_scale.fits": lambda p: fits.PrimaryHDU(good).writeto(p),
        "all_nan.fits": lambda p: fits.PrimaryHDU(np.full_like(good, np.nan), header=header).writeto(p),
        "cube.fits": lambda p: fits.PrimaryHDU(np.stack([good, good]), header=header).writeto(p),
        "small.fits": lambda p: fits.PrimaryHDU(good[:40, :40], header=header).writeto(p),
    }
    for name, make in cases.items():
        make(tmp_path / name)
    table = predictor.predict_fits([paths[1], tmp_path], progress=False, batch_size=3)
    reasons = {row["file"].split("/")[-1]: row["error"] for row in table}
    assert reasons["lens1.fits"] == "" and np.isfinite(table["theta_E"][0])
    for name, message in (("not_fits.fits", "cannot read FITS"), ("truncated.fits", "cannot read FITS"),
                          ("no_scale.fits", "no pixel-scale keyword"), ("all_nan.fits", "no valid pixel"),
                          ("cube.fits", "2-D image"), ("small.fits", "covers only")):
        assert message in reasons[name], (name, reasons[name])
    assert np.isnan(table["theta_E"][1:]).all()
    off = predictor.predict_fits(paths[:1], center=(500.0, 10.0), progress=False)
    assert "off the" in off["error"][0]


def test_of_two_images_of_a_lens_the_network_keeps_the_one_it_is_surer_of(predictor, lens_files, tmp_path):
    paths, _ = lens_files
    # The same lens under ten times the noise: a blurrier read of it, with a larger sigma.
    data, header = fits.getdata(paths[0]), fits.getheader(paths[0])
    noisy = data + np.random.default_rng(5).normal(0.0, 0.2, data.shape)
    fits.PrimaryHDU(noisy.astype(np.float32), header=header).writeto(tmp_path / "noisy.fits")
    best, table = most_certain(predictor, [tmp_path / "noisy.fits", paths[0]], center=(99.5, 89.5))
    assert best == 1 and table["theta_E_sigma"][1] < table["theta_E_sigma"][0]
    (tmp_path / "bad.fits").write_text("hello")
    assert most_certain(predictor, [tmp_path / "bad.fits", paths[0]], center=(99.5, 89.5))[0] == 1
    with pytest.raises(LensnetValueError, match="no image could be estimated.*bad.fits"):
        most_certain(predictor, [tmp_path / "bad.fits"])


def test_two_bands_give_ica_and_sersic_arcs_and_the_network_reads_the_surer(predictor, j0219_two_bands):
    """SL2S J0219-0829: ICA leaves what its two components cannot hold of the lens inside the ring, and the
    network reads the first band's Sérsic-fit arcs instead (θE within 1% of Tan et al.'s 1.285", 19% low on ICA's)."""
    folder, output = j0219_two_bands
    candidates = [folder / "j0219_arcs.fits", folder / "j0219_arcs_sersic.fits"]
    assert fits.getheader(candidates[0])["DEBLEND"] == "ica" and fits.getheader(candidates[1])["DEBLEND"] == "sersic"
    both = predictor.predict_fits(candidates, hdu=0, progress=False)
    row = Table.read(folder / "j0219.ecsv")[0]
    assert row["file"] == str(candidates[1]) and "the network reads j0219_arcs_sersic.fits" in output
    assert row["theta_E_sigma"] == pytest.approx(min(both["theta_E_sigma"]), rel=1e-6)
    assert abs(row["theta_E"] / 1.285 - 1) < 0.05


def test_catalogue_formats_and_lenstronomy(predictor, lens_files, tmp_path):
    table = predictor.predict_fits(lens_files[0], progress=False)
    for suffix in (".ecsv", ".csv", ".fits"):
        back = Table.read(write_catalog(table, tmp_path / f"cat{suffix}"))
        np.testing.assert_allclose(back["theta_E"], table["theta_E"], rtol=1e-6)
    with pytest.raises(Exception, match="unknown catalogue format"):
        write_catalog(table, tmp_path / "cat.txt")
    kwargs = json.loads(write_lenstronomy(table, tmp_path / "lenses.json").read_text())
    first = kwargs[str(lens_files[0][0])]
    assert first["lens_model_list"] == ["SIE"] and set(first["kwargs_lens"][0]) == set(PARAM_NAMES)
    # North up, east left: the sky frame mirrors x, so e1 stays and e2 changes sign; the centre is the origin.
    image, sky = first["kwargs_lens"][0], first["kwargs_lens_sky"][0]
    assert sky["e1"] == pytest.approx(image["e1"], abs=1e-6) and sky["e2"] == pytest.approx(-image["e2"], abs=1e-6)
    assert sky["theta_E"] == image["theta_E"] and (sky["center_x"], sky["center_y"]) == (0.0, 0.0)
    assert (first["ra"], first["dec"]) == pytest.approx((table["ra"][0], table["dec"][0]))


def test_find_fits_takes_files_folders_and_globs(lens_files, tmp_path):
    paths, _ = lens_files
    folder = paths[0].parent
    assert find_fits([folder]) == paths and find_fits([str(folder / "lens*.fits")]) == paths
    with pytest.raises(Exception, match="does not exist"):
        find_fits([tmp_path / "nope.fits"])


def test_cli_exit_code_says_whether_a_file_failed(lens_files, tmp_path):
    paths, _ = lens_files
    (tmp_path / "bad.fits").write_text("x")
    out = tmp_path / "cat.ecsv"
    result = CliRunner().invoke(cli, ["predict", str(paths[0]), "-o", str(out), "--no-progress-bar", "--workers", "0"])
    assert result.exit_code == 0, result.output
    # Beside the catalogue, the pixels the estimate left out, on the network's grid.
    with fits.open(tmp_path / "cat_masks.fits") as hdul:
        assert hdul[1].name == "MASK0" and hdul[1].header["FILE"] == paths[0].name and hdul[1].data.shape == (192, 192)
    result = CliRunner().invoke(cli, ["predict", str(paths[0]), str(tmp_path / "bad.fits"), "-o", str(out),
                                      "--overwrite", "--no-progress-bar", "--workers", "0"])
    assert result.exit_code == 1 and "1 file(s) failed" in result.output and len(Table.read(out)) == 2


def test_two_processes_give_the_catalogue_of_one(lens_files, tmp_path):
    paths, _ = lens_files
    one, two = tmp_path / "one.ecsv", tmp_path / "two.ecsv"
    args = [*map(str, paths), "--center", "99.5,89.5", "--no-progress-bar", "--workers", "0"]
    base = [sys.executable, "-m", "lensnet.cli", "predict"]
    for out, extra in ((one, []), (two, ["--devices", "2"])):
        proc = subprocess.run([*base, *args, "-o", str(out), *extra], capture_output=True, text=True, timeout=240,
                              cwd=tmp_path, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = Table.read(one), Table.read(two)
    assert list(a["file"]) == list(b["file"])
    for name in (*PARAM_NAMES, "ra", "dec"):
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6)
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize("transform", ["rot90", "flip"])
def test_position_angle_and_sky_centre_follow_a_rotated_or_flipped_wcs(predictor, lens_files, tmp_path, transform):
    """The same sky, stored rotated by 90 degrees or mirrored, with the WCS that says so: the symmetrised network
    (exactly equivariant under these) gives another phi in the pixel frame, but the same pa east of north."""
    paths, _ = lens_files
    with fits.open(paths[0]) as hdul:
        frame, header = hdul[0].data, hdul[0].header
    w = WCS(header)
    height, width = frame.shape
    (cx, cy), cd = w.wcs.crpix, w.pixel_scale_matrix
    if transform == "rot90":  # new (x', y') shows old (W - 1 - y', x')
        image, m, crpix, center = np.rot90(frame), np.array([[0, -1], [1, 0]]), [cy, width - cx + 1], (89.5, 99.5)
    else:  # new (x', y') shows old (W - 1 - x', y')
        image, m, crpix, center = frame[:, ::-1], np.array([[-1, 0], [0, 1]]), [width - cx + 1, cy], (99.5, 89.5)
    turned = WCS(naxis=2)
    turned.wcs.ctype, turned.wcs.crval, turned.wcs.crpix, turned.wcs.cd = w.wcs.ctype, w.wcs.crval, crpix, cd @ m
    path = tmp_path / f"{transform}.fits"
    fits.PrimaryHDU(np.ascontiguousarray(image), header=turned.to_header()).writeto(path)
    original = predictor.predict_fits(paths[:1], center=(99.5, 89.5), symmetrize=True, progress=False)[0]
    stored = predictor.predict_fits([path], center=center, symmetrize=True, progress=False)[0]
    assert abs(stored["phi"] - original["phi"]) > 10  # the pixel frame's angle changed...
    difference = abs(stored["pa"] - original["pa"]) % 180
    assert min(difference, 180 - difference) < 1.0  # ...the sky's did not
    assert (stored["ra"], stored["dec"]) == pytest.approx((original["ra"], original["dec"]), abs=0.1 * 0.05 / 3600)


#: Archive layouts: the image HDU's name, and the maps beside it (name, shape: "image" or a small PSF).
LAYOUTS = {
    "hst drizzled": ("SCI", [("WHT", "image"), ("CTX", "image")]),
    "hst flt": ("SCI", [("ERR", "image"), ("DQ", "image")]),
    "euclid": ("VIS_FLUX", [("VIS_RMS", "image"), ("VIS_PSF", "psf")]),
    "plain primary": ("", []),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_archive_layout_with_a_rotated_wcs_gives_the_position_angle_on_the_sky(predictor, lens_files, tmp_path,
                                                                                   layout):
    """The lens stored rotated by 90 degrees (its WCS saying so) in an HST drizzled, HST flt, Euclid or plain file:
    the image HDU is found by its name, and the position angle east of north is the unrotated file's within 1°."""
    paths, _ = lens_files
    with fits.open(paths[0]) as hdul:
        frame, header = hdul[0].data, hdul[0].header
    w = WCS(header)
    turned = WCS(naxis=2)
    turned.wcs.ctype, turned.wcs.crval = w.wcs.ctype, w.wcs.crval
    turned.wcs.crpix = [w.wcs.crpix[1], frame.shape[1] - w.wcs.crpix[0] + 1]
    turned.wcs.cd = w.pixel_scale_matrix @ np.array([[0, -1], [1, 0]])  # new (x', y') shows old (W - 1 - y', x')
    image = np.ascontiguousarray(np.rot90(frame))
    name, maps = LAYOUTS[layout]
    arrays = {"image": np.ones_like(image), "psf": np.pad([[1.0]], 10).astype(np.float32)}
    if name:
        hdus = [fits.PrimaryHDU(), fits.ImageHDU(image, header=turned.to_header(), name=name)]
        hdus += [fits.ImageHDU(arrays[kind] * (0 if extension == "DQ" else 1), name=extension)
                 for extension, kind in maps]
    else:
        hdus = [fits.PrimaryHDU(image, header=turned.to_header())]
    path = tmp_path / f"{layout.replace(' ', '_')}.fits"
    fits.HDUList(hdus).writeto(path)
    original = predictor.predict_fits(paths[:1], center=(99.5, 89.5), symmetrize=True, progress=False)[0]
    stored = predictor.predict_fits([path], center=(89.5, 99.5), symmetrize=True, progress=False)[0]
    assert stored["error"] == "" and stored["hdu"] == (name or "0")
    difference = abs(stored["pa"] - original["pa"]) % 180
    assert min(difference, 180 - difference) < 1.0
    assert stored["theta_E"] == pytest.approx(original["theta_E"], abs=0.01)


def test_cosmic_rays_and_a_companion_added_to_a_lens_are_masked_and_the_estimate_stays_within_its_sigma(
        predictor, lens_files, tmp_path):
    paths, _ = lens_files
    with fits.open(paths[0]) as hdul:
        frame, header = hdul[0].data.astype(np.float64), hdul[0].header
    rng = np.random.default_rng(7)
    dirty = frame.copy()
    yy, xx = np.mgrid[:frame.shape[0], :frame.shape[1]]
    dirty += 3.0 * np.exp(-((xx - 99.5 - 72) ** 2 + (yy - 89.5) ** 2) / (2 * 3.0 ** 2))  # a companion 3.6" west
    for _ in range(25):  # cosmic-ray tracks of 1-4 pixels, 10-100 times the noise
        y, x, length, step = rng.integers(5, 175), rng.integers(5, 195), rng.integers(1, 5), rng.integers(0, 2, 2)
        for k in range(length):
            dirty[y + k * step[0], x + k * step[1]] += rng.uniform(0.2, 2.0)
    path = tmp_path / "dirty.fits"
    fits.PrimaryHDU(dirty.astype(np.float32), header=header).writeto(path)
    clean, hit = predictor.predict_fits([paths[0], path], center=(99.5, 89.5), progress=False)
    assert hit["cosmic_rays"] and hit["n_neighbours"] >= 1 and hit["n_masked"] > clean["n_masked"]
    for name in PARAM_NAMES:
        assert abs(hit[name] - clean[name]) < clean[f"{name}_sigma"], name
    loose = predictor.predict_fits([path], center=(99.5, 89.5), cosmic_rays=False, keep_neighbours=True,
                                   progress=False)[0]
    assert abs(loose["theta_E"] - clean["theta_E"]) > 3 * clean["theta_E_sigma"]  # unmasked, the companion pulls


def test_any_flux_unit_gives_the_same_estimate_and_a_constant_image_is_an_error(predictor, lens_files, tmp_path):
    paths, _ = lens_files
    with fits.open(paths[0]) as hdul:
        frame, header = hdul[0].data.astype(np.float64), hdul[0].header
    scaled, constant = tmp_path / "scaled.fits", tmp_path / "constant.fits"
    fits.PrimaryHDU((frame * 1e-8).astype(np.float32), header=header).writeto(scaled)
    fits.PrimaryHDU(np.full_like(frame, 3.0, dtype=np.float32), header=header).writeto(constant)
    table = predictor.predict_fits([paths[0], scaled, constant], center=(99.5, 89.5), progress=False)
    for name in PARAM_NAMES:
        assert table[name][1] == pytest.approx(table[name][0], abs=1e-4), name
    assert "holds no signal: every valid pixel is 3" in table["error"][2]
