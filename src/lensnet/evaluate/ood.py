"""The library call behind ``lensnet calibrate --ood``: fit a model's out-of-distribution head, measure it, store it.

The head (:mod:`lensnet.inference.ood`) is a multilayer perceptron (scikit-learn's ``MLPClassifier``, hidden
layers :data:`HIDDEN`, L2 penalty ``alpha``, early stopping on a tenth of the fit set) on the network's
penultimate features of

- ``num`` lenses simulated with the model's preset and the bank's ``val`` galaxies (seed ``seed``), and
  ``num_deblended`` lenses with their lens light removed as a real image's is (:func:`deblended_lenses`: two-band
  lenses of :mod:`lensnet.simulate.multiband`, half by ICA of the two bands, half by a Sérsic fit to the blue one,
  prepared for the network as ``lensnet predict`` prepares a file; seed ``seed + 4``), against
- ``num_per_kind`` non-lenses of each of :data:`~lensnet.simulate.nonlenses.NONLENS_KINDS` (seed ``seed + 1``).

The deblended lenses are there because every real lens reaches the network deblended, and deblending leaves
residuals no training image has: a head fitted without them flagged 16-18% of deblended simulated lenses
(``benchmarks/bench_deblend.py``) and SL2S J0219-0829. With 800 of them beside 4,000 lenses (``lensnet calibrate
--ood --num 4000``), 6% of fresh deblended lenses are flagged (with 200 or 400: 13% and 7%, and galaxy pairs
95.8% and 94.0% against 95.4%).

The non-lenses weigh as many images as the lenses (``num_per_kind = num / 5``, and ``num_deblended = num / 5``
deblended lenses beside, as ``lensnet calibrate --ood`` does). The threshold is the ``QUANTILE`` quantile of the
scores of ``num`` other held-out lenses (seed ``seed + 2``), so about 2.5% of lenses like the training set's are
flagged. Against the logistic regression it replaced, on the same features (4,000 lenses, 800 non-lenses of each
kind, no deblended lenses): galaxy pairs flagged 93.9% → 95.6%, test lenses 2.6% → 2.3%. The fractions flagged are
then measured on data the fit never saw: the seeded test set (``test`` galaxies, the one of Table 1),
``num_deblended / 2`` fresh deblended lenses (``test`` galaxies, seed ``seed + 5``) and ``num_per_kind`` fresh
non-lenses of each kind (seed ``seed + 3``); they are stored with the head in the card's ``ood`` entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier

from tqdm import tqdm

from lensnet.deblend import ica_deblend
from lensnet.deblend.files import sersic_deblend
from lensnet.evaluate.testset import TEST_SET, model_simulation_config, simulated_chunks
from lensnet.inference import DEFAULT_PRETRAINED, card_markdown, load_pretrained, weights_directory
from lensnet.inference.ood import OODHead, capture_features
from lensnet.io.atomic import atomic_output
from lensnet.observe.psf import gaussian_kernels
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.simulate.multiband import TwoBandSimulator
from lensnet.simulate.nonlenses import NONLENS_KINDS, simulate_nonlenses
from lensnet.simulate.seeds import batch_seed

__all__ = ["HIDDEN", "QUANTILE", "deblended_lenses", "run_ood_fit"]

#: Quantile of held-out lenses' scores taken as the threshold.
QUANTILE = 0.975
#: Hidden layers of the head.
HIDDEN = (128, 32)
#: Non-lenses simulated per call.
CHUNK = 100


def run_ood_fit(name: str = DEFAULT_PRETRAINED, num: int = 2000, num_per_kind: int = 400, seed: int = 2026,
                test_num: int = TEST_SET["num"], test_seed: int = TEST_SET["seed"], alpha: float = 0.1,
                num_deblended: int = 400, directory: str | Path | None = None, write: bool = True,
                progress: bool = True) -> dict:
    """Fit the OOD head of a shipped model and measure it (module docstring); returns the card's ``ood`` entry."""
    folder = Path(directory) if directory is not None else weights_directory()
    predictor = load_pretrained(name, directory=folder)
    config = model_simulation_config(predictor.card)

    def lenses(split, count, lens_seed):
        chunks = simulated_chunks(config.for_split(split), int(count), int(lens_seed), torch.device("cpu"), progress)
        return torch.cat([_features(predictor, batch.images, batch.masks) for batch, _ in chunks])

    def nonlenses(count, kind_seed):
        out = {}
        for k, kind in enumerate(NONLENS_KINDS):
            parts = [_features(predictor, *simulate_nonlenses(config, kind, min(CHUNK, count - start),
                                                              kind_seed * 1000 + 100 * k + start // CHUNK))
                     for start in range(0, count, CHUNK)]
            out[kind] = torch.cat(parts)
        return out

    def deblended(split, count, lens_seed):
        images, masks = deblended_lenses(config.for_split(split), ModelGrid.from_card(predictor.card), count,
                                         lens_seed, progress)
        return _features(predictor, images, masks, normalized=False)

    fit_lenses = torch.cat([lenses("val", num, seed), deblended("val", num_deblended, seed + 4)])
    fit_non = nonlenses(num_per_kind, seed + 1)
    x = torch.cat([fit_lenses, *fit_non.values()]).numpy()
    y = np.r_[np.zeros(len(fit_lenses)), np.ones(len(x) - len(fit_lenses))]
    mean, scale = x.mean(0), x.std(0) + 1e-6
    model = MLPClassifier(HIDDEN, alpha=alpha, max_iter=500, early_stopping=True, random_state=int(seed))
    model.fit((x - mean) / scale, y)
    layers = [(torch.from_numpy(w.T).double(), torch.from_numpy(b).double())
              for w, b in zip(model.coefs_, model.intercepts_)]
    head = OODHead(torch.from_numpy(mean).double(), torch.from_numpy(scale).double(), layers, 0.0)
    head.threshold = float(torch.quantile(head.score(lenses("val", num, seed + 2)), QUANTILE))
    flagged = {"test lenses": _flagged(head, lenses("test", test_num, test_seed)),
               "deblended test lenses": _flagged(head, deblended("test", num_deblended // 2, seed + 5))}
    flagged.update({kind: _flagged(head, f) for kind, f in nonlenses(num_per_kind, seed + 3).items()})
    entry = {**head.to_dict(), "method": "multilayer perceptron on the penultimate features (backbone frozen)",
             "features": "input of the network's last linear layer", "hidden": list(HIDDEN), "alpha": alpha,
             "quantile": QUANTILE,
             "fit_set": {"num": int(num), "num_per_kind": int(num_per_kind), "seed": int(seed),
                         "num_deblended": int(num_deblended),
                         "simulation": config.name, "source_split": "val", "kinds": list(NONLENS_KINDS)},
             "flagged": flagged, "test_set": {"num": int(test_num), "seed": int(test_seed)}}
    if write:
        card = {**predictor.card, "ood": entry}
        for path, text in ((folder / f"{name}.json", json.dumps(card, indent=2, allow_nan=False) + "\n"),
                           (folder / f"{name}.md", card_markdown(card))):
            with atomic_output(path, overwrite=True) as tmp:
                tmp.write_text(text)
    return entry


def deblended_lenses(config, grid: ModelGrid, num: int, seed: int, progress: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` two-band lenses of ``config`` (:class:`~lensnet.simulate.multiband.TwoBandSimulator`, chunk i from
    ``batch_seed(seed, i)``), their lens light removed as a real image's is, alternately by ICA of the two bands
    (PSF-matched) and by a Sérsic fit to the blue one, each prepared for the network as ``lensnet predict`` prepares
    a file (:func:`~lensnet.preprocess.real.prepare_image` with the deblending's mask): images and masks (N, 1, H, W)."""
    simulator = TwoBandSimulator(config)
    scale = config.pixel_scale
    images, masks = [], []
    with tqdm(total=num, unit="lens", desc="deblending lenses", disable=not progress) as bar:
        for k, start in enumerate(range(0, num, CHUNK)):
            batch = simulator.simulate(min(CHUNK, num - start), batch_seed(seed, k))
            for i in range(len(batch.targets)):
                bands = batch.bands[i].double().numpy()
                sigma = batch.record["psf_sigma"][i]
                psfs = [gaussian_kernels(sigma[j:j + 1], 6)[0].double().numpy() for j in range(2)]
                if (start + i) % 2 == 0:
                    ica = ica_deblend(bands[0], bands[1], scale, psf1=psfs[0], psf2=psfs[1])
                    arcs, mask = ica.arcs, ica.mask
                else:
                    fit, mask = sersic_deblend(bands[0], scale, noise=float(batch.record["noise_rms"][i, 0]),
                                               psf=psfs[0])
                    arcs = fit.arcs
                prepared = prepare_image(arcs, grid, scale, mask=mask, neighbours=True, seed=start + i)
                images.append(torch.from_numpy(prepared.image)[None])
                masks.append(torch.from_numpy(prepared.mask)[None])
                bar.update()
    return torch.stack(images), torch.stack(masks)


def _features(predictor, images: torch.Tensor, masks: torch.Tensor, normalized: bool = True) -> torch.Tensor:
    with capture_features(predictor.backbone) as features:
        predictor.predict(images, masks, normalized=normalized)
    return torch.cat(features).double().cpu()


def _flagged(head: OODHead, features: torch.Tensor) -> float:
    return float((head.score(features) > head.threshold).double().mean())
