"""PSF kernels and batched convolution: normalisation, widths, flux conservation, orientation."""

import math

import pytest
import torch

from lensnet.errors import LensnetConfigError, LensnetShapeError
from lensnet.observe.psf import PixelPSF, PSFConfig, apply_psf, convolve, gaussian_kernels, moffat_kernels

PSF_FILE = "psf/paltas_emp_psf_f814w.fits"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_sum_to_one(dtype):
    sigma = torch.tensor([0.1, 0.5, 1.3, 2.0], dtype=dtype)
    assert torch.allclose(gaussian_kernels(sigma, 8).sum(dim=(1, 2)), torch.ones((), dtype=dtype), atol=1e-6)
    fwhm, beta = torch.tensor([0.25, 2.0, 4.7], dtype=dtype), torch.tensor([2.0, 3.0, 5.0], dtype=dtype)
    assert torch.allclose(moffat_kernels(fwhm, beta, 15).sum(dim=(1, 2)), torch.ones((), dtype=dtype), atol=1e-6)
    psf = PixelPSF(torch.rand(3, 7, 7, dtype=torch.float64) - 0.2)
    assert torch.allclose(psf.kernels.sum(dim=(1, 2)), torch.ones(3, dtype=torch.float64))
    assert (psf.kernels >= 0).all()


def test_gaussian_kernel_width():
    # second moment of the pixel-integrated Gaussian is sigma^2 + 1/12 (the pixel's own variance)
    sigma = torch.tensor([0.7, 1.2, 2.0], dtype=torch.float64)
    k = gaussian_kernels(sigma, 10)
    x = torch.arange(-10, 11, dtype=torch.float64)
    var = (k.sum(dim=1) * x**2).sum(dim=1)
    assert torch.allclose(var, sigma**2 + 1 / 12, rtol=1e-3)


def test_moffat_half_maximum_at_half_fwhm():
    k = moffat_kernels(torch.tensor([8.0], dtype=torch.float64), torch.tensor([3.5], dtype=torch.float64), 24)[0]
    assert k[24, 28] / k[24, 24] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_convolution_conserves_flux_away_from_edges(generator, dtype):
    images = torch.zeros(8, 2, 48, 48, dtype=dtype)
    images[..., 12:36, 12:36] = torch.rand(8, 2, 24, 24, generator=generator, dtype=dtype)
    kernels = gaussian_kernels(torch.linspace(0.3, 2.0, 8, dtype=dtype), 8)
    out = convolve(images, kernels)
    assert torch.allclose(out.sum(dim=(2, 3)), images.sum(dim=(2, 3)), rtol=1e-5 if dtype == torch.float32 else 1e-12)
    out, record = apply_psf(images, PSFConfig(probability=1.0), generator)
    assert torch.allclose(out.sum(dim=(2, 3)), images.sum(dim=(2, 3)), rtol=1e-5 if dtype == torch.float32 else 1e-12)


def test_convolve_matches_direct_convolution_without_wraparound(generator):
    images = torch.rand(3, 1, 20, 24, generator=generator, dtype=torch.float64)
    kernels = torch.rand(3, 5, 5, generator=generator, dtype=torch.float64)  # asymmetric: checks orientation
    # conv2d is a correlation, so flip the kernel; zero padding = linear convolution
    direct = torch.cat([torch.nn.functional.conv2d(images[i:i + 1], kernels[i].flip(0, 1)[None, None], padding=2)
                        for i in range(3)])
    assert torch.allclose(convolve(images, kernels), direct, atol=1e-12)


def test_not_applied_images_are_unchanged(generator):
    images = torch.rand(64, 1, 16, 16, generator=generator)
    out, record = apply_psf(images, PSFConfig(), generator)
    keep = ~record["psf_applied"]
    assert 0 < keep.sum() < 64
    assert torch.equal(out[keep], images[keep])
    assert not torch.allclose(out[~keep], images[~keep])


def test_gaussian_uses_the_recorded_width(generator):
    images = torch.rand(16, 1, 32, 32, generator=generator, dtype=torch.float64)
    out, record = apply_psf(images, PSFConfig(probability=1.0), generator)
    sigma = record["psf_sigma_pix"]
    assert ((sigma >= 0.1) & (sigma <= 2.0)).all()
    assert torch.allclose(out, convolve(images, gaussian_kernels(sigma, 8)), atol=1e-12)


def test_moffat_psf_records_its_draws(generator):
    cfg = PSFConfig(kind="moffat", probability=1.0, fwhm_range=(1.0, 3.0), beta_range=(2.5, 4.0))
    out, record = apply_psf(torch.rand(32, 1, 24, 24, generator=generator), cfg, generator)
    assert ((record["psf_fwhm_pix"] >= 1) & (record["psf_fwhm_pix"] <= 3)).all()
    assert ((record["psf_moffat_beta"] >= 2.5) & (record["psf_moffat_beta"] <= 4)).all()


def test_supersampled_psf_reduces_to_native_pixels():
    delta = torch.zeros(9, 9, dtype=torch.float64)
    delta[4, 4] = 1
    for s in (2, 3):  # a point stays a point once integrated over a pixel centred on it
        native = PixelPSF(delta, supersample=s).native().kernels[0]
        assert native[native.shape[0] // 2, native.shape[1] // 2] == pytest.approx(1)
    block = torch.zeros(9, 9, dtype=torch.float64)
    block[3:6, 3:6] = 1  # fills exactly the central native pixel at s = 3
    native = PixelPSF(block, supersample=3).native().kernels[0]
    assert native.shape == (3, 3) and native[1, 1] == pytest.approx(1)
    # an effective PSF is only sampled: every third sample through the centre
    eff = PixelPSF(torch.arange(81.0, dtype=torch.float64).reshape(9, 9) + 1, supersample=3, effective=True)
    ref = (torch.arange(81.0, dtype=torch.float64).reshape(9, 9) + 1)[1::3, 1::3]
    assert torch.allclose(eff.native().kernels[0], ref / ref.sum())


def test_hst_effective_psfs_from_fits(realdata, generator):
    psf = PixelPSF.from_fits(realdata / PSF_FILE, supersample=4, effective=True)
    assert psf.kernels.shape == (56, 101, 101)
    native = psf.native().kernels
    assert native.shape == (56, 25, 25)
    assert torch.allclose(native.sum(dim=(1, 2)), torch.ones(56, dtype=torch.float64))
    assert (native.flatten(1).argmax(dim=1) == 12 * 25 + 12).all()  # peak on the central pixel
    cfg = PSFConfig(kind="pixel", probability=1.0, pixel_psf_file=str(realdata / PSF_FILE), supersample=4,
                    effective=True)
    images = torch.zeros(4, 1, 64, 64)
    images[:, :, 32, 32] = 1
    out, record = apply_psf(images, cfg, generator)
    assert ((record["psf_index"] >= 0) & (record["psf_index"] < 56)).all()
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(4), atol=1e-5)
    assert torch.allclose(out[:, 0, 20:45, 20:45], native[record["psf_index"]].float(), atol=1e-6)


def test_bad_kernels_and_configs():
    with pytest.raises(LensnetShapeError, match="kernels"):
        PixelPSF(torch.ones(4, 4))
    with pytest.raises(LensnetConfigError, match="sigma_range"):
        PSFConfig(sigma_range=(2.0, 0.1))
    with pytest.raises(LensnetConfigError, match="kind"):
        PSFConfig(kind="airy")
    with pytest.raises(LensnetConfigError, match="probability"):
        PSFConfig(probability=math.nan)
    with pytest.raises(LensnetConfigError, match="pixel_psf_file"):
        apply_psf(torch.zeros(2, 1, 8, 8), PSFConfig(kind="pixel"), torch.Generator())
