"""The eight rotations and reflections of a lens image: images and parameters transform together."""

import pytest
import torch

from lensnet.conventions import LensParams
from lensnet.errors import LensnetShapeError
from lensnet.lensing import PixelGrid
from lensnet.lensing.sie import SIE
from lensnet.networks import create_model
from lensnet.inference import LensPredictor
from lensnet.inference.symmetry import (DIHEDRAL_GROUP, parameter_map, symmetrized_estimate, transform_images,
                                       transform_params)

GRID = PixelGrid(n_pix=32, pixel_scale=0.1)


def _params() -> torch.Tensor:
    """Three asymmetric lenses: off-centre, elongated at angles that no symmetry maps to themselves."""
    return torch.tensor([[1.0, 0.30, 0.10, 0.25, -0.12],
                         [0.7, -0.05, 0.40, -0.31, 0.07],
                         [1.3, 0.20, -0.25, 0.05, 0.33]], dtype=torch.float64)


def _convergence_maps(params: torch.Tensor) -> torch.Tensor:
    x, y = GRID.coordinates(dtype=torch.float64)
    return SIE(LensParams.from_tensor(params)).convergence(x, y)


@pytest.mark.parametrize("m", DIHEDRAL_GROUP)
def test_transformed_image_is_the_image_of_the_transformed_lens(m):
    params = _params()
    expected = _convergence_maps(transform_params(params, m))
    assert torch.allclose(transform_images(_convergence_maps(params), m), expected, rtol=1e-10, atol=1e-12)


def test_the_eight_maps_are_distinct_orthogonal_and_a_group():
    maps = [parameter_map(m, torch.float64) for m in DIHEDRAL_GROUP]
    assert len({tuple(p.flatten().tolist()) for p in maps}) == 8
    keys = {tuple(p.flatten().tolist()) for p in maps}
    for p in maps:
        assert torch.equal(p @ p.T, torch.eye(5, dtype=torch.float64))
        assert all(tuple((p @ q).flatten().tolist()) in keys for q in maps)


def test_rotation_by_90_degrees_by_hand():
    """Counter-clockwise by 90 degrees: (x, y) -> (-y, x) and 2 phi turns by 180 degrees."""
    m = DIHEDRAL_GROUP[1]
    p = torch.tensor([[1.0, 0.3, 0.1, 0.2, -0.1]])
    assert torch.allclose(transform_params(p, m), torch.tensor([[1.0, -0.3, -0.1, 0.1, 0.2]]))
    image = torch.zeros(4, 4)
    image[0, 3] = 1.0  # bottom-right corner: x > 0, y < 0, goes to x > 0, y > 0 (top-right)
    assert transform_images(image, m)[3, 3] == 1.0


def test_swapping_axes_needs_square_images():
    with pytest.raises(LensnetShapeError, match="square"):
        transform_images(torch.zeros(1, 1, 8, 6), DIHEDRAL_GROUP[1])
    assert transform_images(torch.zeros(1, 1, 8, 6), DIHEDRAL_GROUP[2]).shape == (1, 1, 8, 6)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return LensPredictor(create_model("lensnet_resnet_small"), [1.0, 0.0, 0.0, 0.0, 0.0],
                         [0.5, 0.2, 0.2, 0.1, 0.1]).double()


def test_symmetrized_predictor_is_exactly_equivariant(predictor):
    images = torch.rand(3, 1, 32, 32, dtype=torch.float64)
    mean, std = predictor.predict(images, normalized=True, symmetrize=True)
    for m in DIHEDRAL_GROUP:
        mean_m, std_m = predictor.predict(transform_images(images, m), normalized=True, symmetrize=True)
        assert torch.allclose(mean_m, transform_params(mean, m), atol=1e-10)
        assert torch.allclose(std_m, std @ parameter_map(m, torch.float64).abs().T, atol=1e-10)


def test_symmetrized_estimate_averages_the_views(predictor):
    images = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    with torch.inference_mode():
        views = [predictor(transform_images(images, m)) for m in DIHEDRAL_GROUP]
        mean, std = symmetrized_estimate(predictor, images)
    back = [v[0] @ parameter_map(m, torch.float64) for v, m in zip(views, DIHEDRAL_GROUP)]
    assert torch.allclose(mean, torch.stack(back).mean(0))
    assert torch.allclose(std[:, 0], torch.stack([v[1][:, 0] for v in views]).pow(2).mean(0).sqrt())
    plain, _ = predictor.predict(images, normalized=True)
    assert not torch.allclose(mean, plain)


def test_symmetrize_rejects_non_square_images(predictor):
    with pytest.raises(LensnetShapeError, match="square"):
        predictor.predict(torch.rand(1, 1, 32, 24), normalized=True, symmetrize=True)
