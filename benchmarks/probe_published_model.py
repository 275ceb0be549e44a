"""How much worse do a real lens's pixels fit at its published model? A joint fit of ``bench_real.py`` run twice on
one lens: as the network starts it, and with the published θE (and, with ``--hold theta_E,shape``, the published
axis ratio and position angle) held: the start set to it and its prior's 1σ to the least spread the fit takes as a
prior (0.002″ in θE, 0.005 in e1 and e2, so that a pull of 0.05″ in θE costs 312 in χ²/2); the other parameters
(the power-law slope and the shear too) started as usual and free. The fit is the default one (SIE + shear +
Sérsic lens light and source) or, with ``--model``, the one ``bench_real.py`` sets beside that published model
(Bolton et al.'s SIE: no shear; Tan et al.'s power law + shear: ``--mass epl --shear``). Both optima are compared on
the pixels the data gave, each pixel's χ² capped at the fit's clipping threshold (5σ, squared) as the fit ranks its
own starts: a positive difference says the data, read by that model, prefer lensnet's values to the published ones.

The position angle (east of north) is turned into the image's φ with the file's WCS; a file without one (the two
examples) keeps the free fit's φ, and only the axis ratio is held.

Usage::

    python benchmarks/probe_published_model.py J1051 [--theta-e 1.496]
    python benchmarks/probe_published_model.py J0029 --model "Tan" --hold theta_E,shape
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from lensnet.conventions import e1e2_to_qphi, position_angle, qphi_to_e1e2
from lensnet.io.fits import read_image_hdu
from lensnet.preprocess.real import celestial_wcs, pixel_to_sky
from lensnet.refine.fit import CREDIBLE_SPREAD
from lensnet.refine.model import model_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import CASES, MATCHED, MODEL, fit_through, published  # noqa: E402

#: The fit's clipping threshold (sigma; :func:`lensnet.refine.refine_lenses`' ``clip``).
CLIP = 5.0
#: What ``--hold`` can hold: θE, and the shape (e1, e2 from the published q and position angle).
HOLDABLE = ("theta_E", "shape")


def fit(path: Path, options: list[str], model: list[str], theta_e: float | None = None,
        q: float | None = None, phi: float | None = None) -> dict:
    """One catalogue fit of ``path``: θE held at ``theta_e``, the shape at ``q`` and ``phi`` (radians, the image's
    frame) where given; its lens parameters and capped χ²."""
    seen = {}

    def wrapper(original):
        def wrapped(data, start, spread, **kwargs):
            start, spread = start.clone(), spread.clone()
            if theta_e is not None:
                start[:, 0], spread[:, 0] = theta_e, CREDIBLE_SPREAD[0]
            if q is not None:
                e1, e2 = qphi_to_e1e2(torch.tensor(q, dtype=start.dtype), torch.tensor(phi, dtype=start.dtype))
                start[:, 1], start[:, 2] = e1, e2
                spread[:, 1:3] = CREDIBLE_SPREAD[1]
            elif theta_e is not None:
                start[:, 1:3] = 0.0
            result = original(data, start, spread, **kwargs)
            with torch.no_grad():
                image, _, _ = model_images(result.params, data, 1, result.spec)
                chi2 = ((data.image - image) / data.sigma) ** 2
            given = ~data.mask
            names = result.spec.names
            seen.update({name: float(result.params[0, names.index(name)]) for name in names
                         if name in ("theta_E", "e1", "e2", "center_x", "center_y", "gamma", "gamma1", "gamma2")},
                        capped=float(chi2[given].clamp_max(CLIP ** 2).sum()), pixels=int(given.sum()),
                        reduced_chi2=float(result.reduced_chi2[0]))
            return result
        return wrapped

    fit_through(path, options, model, wrapper)
    return seen


def sky_matrix(path: Path) -> np.ndarray | None:
    """The file's pixel-to-sky matrix (:func:`lensnet.preprocess.real.pixel_to_sky`), None without a celestial WCS."""
    _, header, _ = read_image_hdu(path, None)
    return pixel_to_sky(celestial_wcs(header))


def image_angle(pa: float, matrix: np.ndarray) -> float:
    """The image's φ (radians, counter-clockwise from +x) of an axis at position angle ``pa`` (degrees east of
    north)."""
    phis = torch.linspace(0.0, math.pi, 36001, dtype=torch.float64)[:-1]
    pas = position_angle(phis, torch.from_numpy(matrix))
    miss = torch.remainder(pas - pa + 90.0, 180.0) - 90.0
    return float(phis[miss.abs().argmin()])


def describe(row: dict, matrix: np.ndarray | None) -> str:
    q, phi = e1e2_to_qphi(torch.tensor(row["e1"]), torch.tensor(row["e2"]))
    pa = (f"PA {float(position_angle(phi.double(), torch.from_numpy(matrix))):.0f}°" if matrix is not None
          else f"φ {math.degrees(float(phi)):.0f}° (no WCS)")
    slope = f", slope {row['gamma']:.2f}" if "gamma" in row else ""
    shear = math.hypot(row.get("gamma1", 0.0), row.get("gamma2", 0.0))
    return (f"θE {row['theta_E']:.3f}\", q {float(q):.2f}, {pa}{slope}, shear {shear:.3f}, centre "
            f"({row['center_x']:+.3f}, {row['center_y']:+.3f})\", reduced χ² {row['reduced_chi2']:.3f}, "
            f"capped χ² {row['capped']:.1f} on {row['pixels']} pixels")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lens", help="part of the lens's name in bench_real.py (e.g. J1051)")
    parser.add_argument("--model", help="part of the published model's family or reference (e.g. Tan, SIE) "
                                        "[the lens's first; fitted with the default model]")
    parser.add_argument("--hold", default="theta_E", help=f"what to hold, of {', '.join(HOLDABLE)} [theta_E]")
    parser.add_argument("--theta-e", type=float, help="θE to hold [the published one, lenstronomy's convention]")
    args = parser.parse_args(argv)
    matches = [case for case in CASES if args.lens in case[0]]
    if len(matches) != 1:
        parser.error(f"{args.lens!r} names {len(matches)} of bench_real.py's lenses")
    hold = set(args.hold.split(","))
    if not hold <= set(HOLDABLE):
        parser.error(f"--hold {args.hold!r}: expected a comma list of {', '.join(HOLDABLE)}")
    name, path, options = matches[0]
    rows, model = published()[name], MODEL
    if args.model:
        rows = [r for r in rows if args.model in r["model"] or args.model in r["reference"]]
        if len(rows) != 1:
            parser.error(f"--model {args.model!r} names {len(rows)} of {name}'s published models")
        model = MATCHED.get(rows[0]["model"], MODEL)
    row = rows[0]
    theta_e = args.theta_e if args.theta_e is not None else row["theta_E"]
    matrix = sky_matrix(path)
    free = fit(path, options, model)
    q = phi = None
    if "shape" in hold:
        if row["q"] == "":
            parser.error(f"{name}'s {row['model']} model has no published axis ratio")
        q = row["q"]
        phi = (image_angle(row["pa_east_of_north"], matrix) if matrix is not None and row["pa_east_of_north"] != ""
               else float(e1e2_to_qphi(torch.tensor(free["e1"]), torch.tensor(free["e2"]))[1]))
    held = fit(path, options, model, theta_e if "theta_E" in hold else None, q, phi)
    print(f"{name}: {row['model']} ({row['reference']}) θE {row['theta_E']:.3f}\", q {row['q']}, PA "
          f"{row['pa_east_of_north']}; fitted with {' '.join(model)}")
    print(f"  free: {describe(free, matrix)}")
    print(f"  {args.hold} held: {describe(held, matrix)}")
    print(f"capped χ² held - free: {held['capped'] - free['capped']:+.1f}")


if __name__ == "__main__":
    main()
