"""Source banks: real COSMOS and XDF galaxies, FITS folders, splits by galaxy, save/load, errors."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from lensnet.errors import LensnetIOError, LensnetRangeError, LensnetShapeError, LensnetValueError
from lensnet.sources.banks import (
    SourceBank,
    SourceBankWarning,
    fits_folder_bank,
    galsim_cosmos_bank,
    hubble_deep_field_bank,
)


def _frame_median(stamps: torch.Tensor, width: int = 4) -> torch.Tensor:
    """Median of a frame ``width`` pixels wide around each stamp, shape (G,)."""
    frame = torch.cat([stamps[:, :width].flatten(1), stamps[:, -width:].flatten(1),
                       stamps[:, :, :width].flatten(1), stamps[:, :, -width:].flatten(1)], dim=1)
    return frame.median(dim=1).values


def _check_normalised(bank: SourceBank, size: int, background_atol: float):
    assert bank.stamps.shape == (len(bank), size, size) and bank.stamps.dtype == torch.float32
    assert torch.isfinite(bank.stamps).all()
    torch.testing.assert_close(bank.stamps.amax(dim=(1, 2)), torch.ones(len(bank)), rtol=0, atol=1e-6)
    assert _frame_median(bank.stamps).abs().max() < background_atol


def _blob(shape=(40, 40), sky=0.1, seed=0, width=4.0) -> np.ndarray:
    rows, cols = np.indices(shape)
    r = np.hypot(rows - shape[0] / 2, cols - shape[1] / 2)
    noise = np.random.default_rng(seed).normal(0, 1e-3, shape)
    return (5 * np.exp(-0.5 * (r / width) ** 2) + sky + noise).astype(np.float32)


def _write_stamp(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(cards)
    hdu.writeto(path)


def _toy_bank(names):
    return SourceBank(torch.rand(len(names), 8, 8) + 0.1, 0.03, names, "toy")


@pytest.fixture(scope="module")
def xdf_bank():
    return hubble_deep_field_bank(stamp_size=48)


def test_cosmos_bank_reads_the_shared_catalogue(realdata):
    catalog = realdata / "sources/paltas_cosmos/real_galaxy_catalog_23.5.fits"
    bank = galsim_cosmos_bank(catalog, stamp_size=64)
    assert len(bank) == 10 and bank.names[:2] == ("141190", "143346")
    assert bank.pixel_scale == pytest.approx(0.03, rel=1e-6)
    _check_normalised(bank, 64, background_atol=0.01)
    # The first galaxy's image is 234 x 233 pixels: its longer side now spans 64 stamp pixels.
    assert bank.stamp_scales[0].item() == pytest.approx(0.03 * 234 / 64, rel=1e-5)


def test_cosmos_bank_other_catalogues(realdata):
    aegis = galsim_cosmos_bank(realdata / "sources/galsim_aegis/AEGIS_F814w_catalog.fits", stamp_size=32)
    assert len(aegis) == 5
    _check_normalised(aegis, 32, background_atol=0.02)
    # Both rows of the slsim catalogue point to HDU 2 of the same file: one galaxy, with a warning.
    with pytest.warns(SourceBankWarning, match="row 1 .*HDU 2 like row 0"):
        slsim = galsim_cosmos_bank(realdata / "sources/slsim_cosmos/real_galaxy_catalog_23.5.fits", stamp_size=32)
    assert slsim.names == ("97475",)


def test_cosmos_catalogue_errors(tmp_path):
    fits.HDUList([fits.PrimaryHDU(_blob()), fits.ImageHDU(_blob(seed=1))]).writeto(tmp_path / "gals.fits")
    good = Table({"IDENT": [1, 2], "GAL_FILENAME": ["gals.fits"] * 2, "GAL_HDU": [0, 1]})
    good.write(tmp_path / "cat.fits")
    bank = galsim_cosmos_bank(tmp_path / "cat.fits", pixel_scale=0.05, stamp_size=16)
    assert bank.names == ("1", "2") and bank.pixel_scale == 0.05
    with pytest.raises(LensnetIOError, match="no PIXEL_SCALE column"):
        galsim_cosmos_bank(tmp_path / "cat.fits")
    Table({"IDENT": [1, 2], "GAL_FILENAME": ["gals.fits"] * 2, "GAL_HDU": [0, 7]}).write(tmp_path / "badhdu.fits")
    with pytest.raises(LensnetIOError, match=r"rows \[0, 1\].*2 HDU\(s\); hdu=7"):
        galsim_cosmos_bank(tmp_path / "badhdu.fits", pixel_scale=0.05)
    Table({"GAL_FILENAME": ["missing.fits"], "GAL_HDU": [0]}).write(tmp_path / "nofile.fits")
    with pytest.raises(LensnetIOError, match="missing.fits does not exist"):
        galsim_cosmos_bank(tmp_path / "nofile.fits", pixel_scale=0.05)
    Table({"GAL_FILENAME": ["gals.fits"]}).write(tmp_path / "nocol.fits")
    with pytest.raises(LensnetIOError, match="lacks column.*GAL_HDU"):
        galsim_cosmos_bank(tmp_path / "nocol.fits", pixel_scale=0.05)
    with pytest.raises(LensnetIOError, match="does not exist"):
        galsim_cosmos_bank(tmp_path / "absent.fits")
    (tmp_path / "corrupt.fits").write_bytes(b"\x00garbage" * 500)
    with pytest.raises(LensnetIOError, match="corrupt.fits"):
        galsim_cosmos_bank(tmp_path / "corrupt.fits")


def test_xdf_bank_has_many_normalised_galaxies(xdf_bank):
    assert len(xdf_bank) > 150  # 219 with the defaults
    assert len(set(xdf_bank.names)) == len(xdf_bank)
    _check_normalised(xdf_bank, 48, background_atol=0.03)
    assert (xdf_bank.stamp_scales > xdf_bank.pixel_scale * 0.3).all()


def test_split_is_by_galaxy_and_reproducible(xdf_bank):
    parts = xdf_bank.split((0.8, 0.1, 0.1), seed=3)
    names = {k: set(v.names) for k, v in parts.items()}
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    assert set().union(*names.values()) == set(xdf_bank.names)
    n = len(xdf_bank)
    assert [len(parts[k]) for k in ("val", "test")] == [round(0.9 * n) - round(0.8 * n), n - round(0.9 * n)]
    again = xdf_bank.split((0.8, 0.1, 0.1), seed=3)
    assert all(again[k].names == parts[k].names for k in parts)
    assert xdf_bank.split((0.8, 0.1, 0.1), seed=4)["test"].names != parts["test"].names
    i = xdf_bank.names.index(parts["val"].names[0])
    torch.testing.assert_close(parts["val"].stamps[0], xdf_bank.stamps[i], rtol=0, atol=0)


def test_split_keeps_stamps_of_one_galaxy_together():
    bank = _toy_bank(["a", "b", "a", "c", "b", "d", "e", "a", "f", "g"])
    for seed in range(5):
        parts = bank.split((0.5, 0.25, 0.25), seed=seed)
        assert sum(len(p) for p in parts.values()) == len(bank)
        owners = {n: k for k, p in parts.items() for n in p.names}
        assert sum(p.names.count("a") for p in parts.values()) == 3 and parts[owners["a"]].names.count("a") == 3
    with pytest.raises(LensnetValueError, match="sum to 1"):
        bank.split((0.5, 0.1, 0.1), seed=0)
    with pytest.raises(LensnetShapeError):
        bank.split((0.5, 0.5), seed=0)
    with pytest.raises(LensnetRangeError):
        bank.split((1.2, -0.1, -0.1), seed=0)


def test_bank_validation_and_to():
    with pytest.raises(LensnetShapeError, match=r"\(G, S, S\)"):
        SourceBank(torch.ones(2, 8, 9), 0.03, ["a", "b"])
    with pytest.raises(LensnetShapeError, match="names"):
        SourceBank(torch.ones(2, 8, 8), 0.03, ["a"])
    with pytest.raises(LensnetValueError, match="non-finite"):
        SourceBank(torch.full((1, 8, 8), float("nan")), 0.03, ["a"])
    with pytest.raises(LensnetRangeError, match="pixel_scale"):
        SourceBank(torch.ones(1, 8, 8), -1.0, ["a"])
    bank = _toy_bank(["a", "b"]).to("cpu", torch.float64)
    assert bank.stamps.dtype == bank.stamp_scales.dtype == torch.float64 and bank.stamp_size == 8


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_save_load_round_trip(tmp_path, suffix):
    bank = SourceBank(torch.rand(3, 8, 8), 0.03, ["x1", "x2", "x3"], "toy origin", torch.tensor([0.1, 0.2, 0.3]))
    path = bank.save(tmp_path / f"bank{suffix}")
    back = SourceBank.load(path)
    torch.testing.assert_close(back.stamps, bank.stamps, rtol=0, atol=0)
    torch.testing.assert_close(back.stamp_scales, bank.stamp_scales, rtol=0, atol=0)
    assert (back.names, back.origin, back.pixel_scale) == (bank.names, bank.origin, bank.pixel_scale)
    with pytest.raises(LensnetIOError, match="already exists"):
        bank.save(path)
    bank.save(path, overwrite=True)


def test_load_errors(tmp_path):
    with pytest.raises(LensnetIOError, match="does not exist"):
        SourceBank.load(tmp_path / "none.npz")
    (tmp_path / "corrupt.h5").write_bytes(b"garbage" * 100)
    with pytest.raises(LensnetIOError, match="corrupt.h5"):
        SourceBank.load(tmp_path / "corrupt.h5")
    np.savez(tmp_path / "partial.npz", stamps=np.zeros((1, 4, 4)))
    with pytest.raises(LensnetIOError, match="lacks names"):
        SourceBank.load(tmp_path / "partial.npz")
    with pytest.raises(LensnetValueError, match=r"\.npz, \.h5 or \.hdf5"):
        _toy_bank(["a"]).save(tmp_path / "bank.txt")


def test_fits_folder_bank_reads_pixel_scale_from_headers(tmp_path):
    _write_stamp(tmp_path / "gal_a.fits", _blob(), PIXSCALE=0.03)
    _write_stamp(tmp_path / "gal_b.fits", _blob(seed=1), CD1_1=-0.03 / 3600, CD2_1=0.0)
    _write_stamp(tmp_path / "gal_c.fits", _blob((20, 40), seed=2), CDELT1=0.03 / 3600)
    (tmp_path / "notes.txt").write_text("not a stamp")
    bank = fits_folder_bank(tmp_path, stamp_size=32)
    assert bank.names == ("gal_a", "gal_b", "gal_c") and bank.pixel_scale == pytest.approx(0.03)
    _check_normalised(bank, 32, background_atol=2e-3)
    # The 20 x 40 stamp keeps its aspect ratio: 16 rows of galaxy, zero padding above and below.
    assert (bank.stamps[2, :8] == 0).all() and (bank.stamps[2, -8:] == 0).all()
    assert bank.stamp_scales.tolist() == pytest.approx([0.03 * 40 / 32] * 3)


def test_fits_folder_bank_pixel_scale_argument_and_errors(tmp_path):
    _write_stamp(tmp_path / "a.fits", _blob())
    with pytest.raises(LensnetIOError, match="a.fits.*PIXSCALE"):
        fits_folder_bank(tmp_path)
    assert fits_folder_bank(tmp_path, pixel_scale=0.05, stamp_size=16).pixel_scale == 0.05
    _write_stamp(tmp_path / "b.fits", _blob(), PIXSCALE=0.1)
    with pytest.raises(LensnetValueError, match="differ"):
        fits_folder_bank(tmp_path, pixel_scale=0.05)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LensnetIOError, match="holds no FITS file"):
        fits_folder_bank(empty)
    with pytest.raises(LensnetIOError, match="does not exist"):
        fits_folder_bank(tmp_path / "absent")
    (empty / "corrupt.fits").write_bytes(b"\x00garbage" * 500)
    with pytest.raises(LensnetIOError, match="corrupt.fits"):
        fits_folder_bank(empty, pixel_scale=0.03)


def test_nan_and_empty_stamps_are_skipped_with_a_warning(tmp_path):
    nan = _blob()
    nan[3, 3] = np.nan
    _write_stamp(tmp_path / "a_nan.fits", nan, PIXSCALE=0.03)
    _write_stamp(tmp_path / "b_zero.fits", np.zeros((30, 30), np.float32), PIXSCALE=0.03)
    with pytest.warns(SourceBankWarning) as record:
        with pytest.raises(LensnetValueError, match="no usable galaxy"):
            fits_folder_bank(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "a_nan, which has 1 NaN" in messages and "b_zero, which has no positive pixel" in messages
    _write_stamp(tmp_path / "c_good.fits", _blob(), PIXSCALE=0.03)
    with pytest.warns(SourceBankWarning):
        bank = fits_folder_bank(tmp_path, stamp_size=16)
    assert bank.names == ("c_good",)
