"""The out-of-distribution score: the head's arithmetic, the features it reads, and the shipped model's flag on
simulated non-lenses, test lenses (deblended too), catalogue rows and the example lens."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from sklearn.neural_network import MLPClassifier

from lensnet.errors import LensnetIOError, LensnetShapeError
from lensnet.evaluate.ood import deblended_lenses
from lensnet.evaluate.testset import model_simulation_config
from lensnet.inference import DEFAULT_PRETRAINED, list_pretrained, load_pretrained
from lensnet.inference.ood import OODHead, capture_features
from lensnet.preprocess.real import ModelGrid
from lensnet.simulate import LensSimulator
from lensnet.simulate.nonlenses import simulate_nonlenses
from lensnet.simulate.seeds import batch_seed

shipped = pytest.mark.skipif(DEFAULT_PRETRAINED not in list_pretrained(), reason="needs the shipped model")


def test_the_score_is_scikit_learns_perceptron_on_standardised_features():
    """The head reproduces the MLPClassifier it was fitted as (an independent implementation) and survives the
    card's round trip; bad features and bad entries get lensnet's errors."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] * x[:, 1] + 0.3 * x[:, 2] > 0).astype(float)
    model = MLPClassifier((8, 4), alpha=0.1, max_iter=300, random_state=0).fit(x, y)
    layers = [(torch.from_numpy(w.T), torch.from_numpy(b)) for w, b in zip(model.coefs_, model.intercepts_)]
    mean, scale = torch.tensor([1.0, -1.0, 0.0, 0.5, 0.0, 2.0]), torch.tensor([2.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    head = OODHead(mean, scale, layers, 0.6)
    features = torch.from_numpy(rng.normal(size=(7, 6)))
    expected = torch.from_numpy(model.predict_proba(((features - mean) / scale).numpy())[:, 1])
    assert torch.allclose(head.score(features), expected)
    assert torch.allclose(OODHead.from_dict(head.to_dict()).score(features), expected)
    with pytest.raises(LensnetShapeError, match=r"\(B, 6\)"):
        head.score(torch.zeros(3, 4))
    with pytest.raises(LensnetIOError, match="ood entry"):
        OODHead.from_dict({"mean": [0.0]})
    broken = head.to_dict()
    broken["layers"][1]["weight"] = [[0.0] * 5] * 4  # 5 inputs after a layer of 8 outputs
    with pytest.raises(LensnetIOError, match="do not chain"):
        OODHead.from_dict(broken)


def test_the_features_are_the_last_linear_layers_input():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 2, 2)
    with capture_features(net) as features:
        net(x)
    assert torch.allclose(features[0], torch.relu(net[1](x.flatten(1))))
    net(x)
    assert len(features) == 1  # the hook is gone


@pytest.fixture(scope="module")
def predictor():
    return load_pretrained()


@shipped
def test_non_lenses_are_flagged_and_test_lenses_are_not(predictor):
    assert predictor.ood is not None, "the shipped card has no OOD head: run lensnet calibrate --ood"
    config = model_simulation_config(predictor.card)
    lenses = LensSimulator(config.for_split("test")).simulate(8, batch_seed(4242, 0))
    _, _, score = predictor.predict(lenses.images, lenses.masks, normalized=True, ood=True)
    assert (score > predictor.ood.threshold).sum() <= 1
    for kind in ("noise", "star", "galaxy"):
        images, masks = simulate_nonlenses(config, kind, 8, 4242)
        _, _, score = predictor.predict(images, masks, normalized=True, ood=True)
        assert (score > predictor.ood.threshold).sum() >= 7, kind


@shipped
def test_catalogue_rows_carry_the_score_and_the_flag(predictor, tmp_path):
    config = model_simulation_config(predictor.card)
    lens = LensSimulator(config.for_split("test")).simulate(1, batch_seed(4242, 1)).observed[0, 0].numpy()
    noise = np.random.default_rng(0).normal(0.0, 1.0, lens.shape)
    for name, image in (("lens", lens), ("noise", noise)):
        header = fits.Header()
        header["PIXSCALE"] = config.pixel_scale
        fits.PrimaryHDU(image.astype(np.float32), header).writeto(tmp_path / f"{name}.fits")
    table = predictor.predict_fits([tmp_path / "lens.fits", tmp_path / "noise.fits"], progress=False)
    assert list(table["ood"]) == [False, True]
    assert 0 <= table["ood_score"][0] < predictor.ood.threshold < table["ood_score"][1] <= 1


@shipped
def test_a_model_without_a_head_scores_nan():
    bare = load_pretrained()
    bare.ood = None
    mean, std, score = bare.predict(torch.zeros(2, 1, *bare.image_size), ood=True)
    assert mean.shape == (2, 5) and torch.isnan(score).all()


@shipped
def test_the_example_lens_deblended_by_ica_is_not_flagged(predictor, j0219_two_bands):
    """SL2S J0219-0829 as the paper treats it, ICA of two filters: its bands registered, its compact neighbours
    masked, under a head fitted with deblended lenses among the lenses (all three were needed: score 0.997 before).
    Neither ICA's arcs nor the Sérsic fit's, which the network keeps as the surer, is flagged."""
    folder, _ = j0219_two_bands
    row = Table.read(folder / "j0219.ecsv")[0]
    assert not row["ood"] and row["n_neighbours"] >= 4 and abs(row["theta_E"] / 1.285 - 1) < 0.25
    both = predictor.predict_fits([folder / "j0219_arcs.fits", folder / "j0219_arcs_sersic.fits"], hdu=0,
                                  progress=False)
    assert not both["ood"].any() and both["n_neighbours"].min() >= 4


@shipped
def test_deblended_simulated_lenses_are_not_flagged(predictor):
    config = model_simulation_config(predictor.card)
    images, masks = deblended_lenses(config.for_split("test"), ModelGrid.from_card(predictor.card), 6, 4243,
                                      progress=False)
    _, _, score = predictor.predict(images, masks, ood=True)
    assert (score > predictor.ood.threshold).sum() <= 1
