"""Why the network misses a real lens's θE: the shipped network on the real image, on the image with the joint
fit's lens light removed, and on the joint fit's own arcs with noise (a simulated twin of the lens).

The default real-lens fit of ``bench_real.py`` (``lensnet predict --refine --lens-light sersic --shear``) is run
once per lens; its SIE + shear, Sérsic source and Sérsic lens light then make the network's inputs:

- **catalogue**: the network's estimate as ``lensnet predict`` gives it (the image, its lens light removed by the
  Sérsic fit; for SL2S J0219-0829 the surer of ICA's arcs and the Sérsic fit's);
- **deblended, fit field**: the deblended image the catalogue's network saw, cut to the fitted pixels
  (``--fit-size`` 5″) with its mask: the field's part;
- **data − fitted light**: the fitted pixels less the joint fit's lens light, the data's mask kept: the best
  deblending the fit can give; then the same with the outliers the fit clipped (beyond 5σ) masked too;
- **twin, fit field**: the joint model's lensed source alone, with white noise of the data's median 1σ, on the
  same 5″;
- **twin, full field**: the same twin rendered over the network's whole field (7.7″).

If the network reads the twin right but not the data, what it misses is in the real image (the source's
structure, residual light, masks), not the configuration; if it misreads the twin too, it is the network's
own error on such a lens. Every input is brought to the network's grid by :func:`lensnet.preprocess.real.prepare_image`
as ``lensnet predict`` does (resampled, padded with noise).

Results: ``benchmarks/results/network_real_cpu.md``.

Usage::

    python benchmarks/probe_network_real.py [J0753 J1051 J0219 ...]
"""

from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from lensnet.inference.pretrained import load_pretrained, pretrained_card
from lensnet.lensing.grid import PixelGrid
from lensnet.preprocess.real import ModelGrid, prepare_image
from lensnet.refine.model import ImageData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import CASES, MODEL, fit_through, published  # noqa: E402
from machine import machine_description  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "network_real_cpu.md"

#: Side in arcsec of the twin rendered over the network's whole field (its 7.68″ and a margin).
FULL_FIELD = 8.0


def joint_fit(path: Path, options: list[str]) -> dict:
    """The default catalogue fit of ``path``: its data, result and the network's estimate that started it."""
    seen = {}

    def wrapper(original):
        def wrapped(data, start, spread, **kwargs):
            result = original(data, start, spread, **kwargs)
            seen.update(data=data, result=result, network=float(start[0, 0]), arcs=kwargs.get("arcs"))
            return result
        return wrapped

    fit_through(path, options, MODEL, wrapper)
    return seen


def components(result, data: ImageData) -> tuple[np.ndarray, np.ndarray]:
    """The fitted lensed source and lens light (+ background) of the first lens, on ``data``'s grid."""
    with torch.no_grad():
        unit = result.spec.unit_images(result.params, result.fitted(data))
        parts = result.amplitude[:, :, None, None] * unit
    arcs = parts[0, 0].numpy()
    light = parts[0, 1:].sum(0).numpy() + float(result.background[0])
    return arcs, light


def twin_full_field(result, data: ImageData) -> np.ndarray:
    """The fitted lensed source of the first lens rendered over :data:`FULL_FIELD` arcsec."""
    scale = data.grid.pixel_scale
    n = int(math.ceil(FULL_FIELD / scale))
    grid = PixelGrid(n, scale)
    empty = ImageData(torch.zeros(1, n, n, dtype=torch.float64), torch.ones(1, n, n, dtype=torch.float64),
                      torch.zeros(1, n, n, dtype=torch.bool), data.psf[:1], grid)
    with torch.no_grad():
        unit = result.spec.unit_images(result.params[:1], empty)
    return (result.amplitude[:1, 0, None, None] * unit[:, 0])[0].numpy()


def estimate(predictor, grid: ModelGrid, image: np.ndarray, pixel_scale: float, mask: np.ndarray | None = None
             ) -> tuple[float, float]:
    """The network's θE and its 1σ for ``image`` brought to the network's grid as ``lensnet predict`` does."""
    prepared = prepare_image(image, grid, pixel_scale, mask=mask)
    mean, std = predictor.predict(torch.from_numpy(prepared.image)[None, None],
                                  torch.from_numpy(prepared.mask)[None, None])
    return float(mean[0, 0]), float(std[0, 0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lenses", nargs="*", default=["J0753", "J1051", "J0219"],
                        help="parts of lens names in bench_real.py [J0753 J1051 J0219]")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the twins' noise, with the lens's place in bench_real.py [0]")
    args = parser.parse_args(argv)
    predictor = load_pretrained()
    grid = ModelGrid.from_card(pretrained_card())
    machine = machine_description(torch.device("cpu"))
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = [f"# Why the network misses a real lens's θE ({machine['cpu']}, {machine['cores']} cores, torch "
             f"{machine['torch']})", "",
             f"`python benchmarks/probe_network_real.py {shlex.join(argv if argv is not None else sys.argv[1:])}`, "
             f"{date}. The shipped network's θE on each input (see the script's docstring), with its 1σ; in brackets "
             "its difference from the published θE, then from the refined one.", "",
             "| lens | published θE | refined θE | catalogue | deblended, fit field | data − fitted light | "
             "the same, outliers masked | twin, fit field | twin, full field |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for part in args.lenses:
        matches = [case for case in CASES if part in case[0]]
        if len(matches) != 1:
            parser.error(f"{part!r} names {len(matches)} of bench_real.py's lenses")
        name, path, options = matches[0]
        rng = np.random.default_rng((args.seed, CASES.index(matches[0])))  # each lens's twins its own noise
        fit = joint_fit(path, options)
        data, result = fit["data"], fit["result"]
        scale = data.grid.pixel_scale
        arcs, light = components(result, data)
        image, sigma = data.image[0].numpy(), data.sigma[0].numpy()
        given, fitted = data.mask[0].numpy(), result.mask[0].numpy()
        noise = float(np.median(sigma[~fitted]))
        deblended = fit["arcs"] or data
        cells = [estimate(predictor, grid, deblended.image[0].numpy(), scale, deblended.mask[0].numpy()),
                 estimate(predictor, grid, image - light, scale, given),
                 estimate(predictor, grid, image - light, scale, fitted),
                 estimate(predictor, grid, arcs + rng.normal(0.0, noise, arcs.shape), scale)]
        full = twin_full_field(result, data)
        cells.append(estimate(predictor, grid, full + rng.normal(0.0, noise, full.shape), scale))
        refined = float(result.params[0, 0])
        pub = published()[name][0]["theta_E"]

        def cell(value: float, sigma: float | None = None) -> str:
            spread = "" if sigma is None else f" ± {sigma:.3f}"
            return f"{value:.3f}{spread} ({100 * (value / pub - 1):+.0f}%; {100 * (value / refined - 1):+.0f}%)"

        lines.append(f"| {name} | {pub:.3f} | {refined:.3f} ({100 * (refined / pub - 1):+.1f}%) | "
                     f"{cell(fit['network'])} | " + " | ".join(cell(*c) for c in cells) + " |")
        print(lines[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
