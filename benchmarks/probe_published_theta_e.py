"""How much worse do a real lens's pixels fit at its published θE? The default joint fit of ``bench_real.py``
(``lensnet predict --refine --lens-light sersic --shear``) run twice on one lens: as the network starts it, and
with θE held at the published value (the start's θE set to it and its prior's 1σ to 0.002″, the least spread the
fit takes as a prior, so that a pull of 0.05″ costs 312 in χ²/2; the other parameters started round and free). Both
optima are compared on the pixels the data gave, each pixel's χ² capped at the fit's clipping threshold (5σ,
squared) as the fit ranks its own starts: a positive difference says the data, read by an SIE + shear, prefer
lensnet's θE to the published one.

The catalogue has no option to hold a parameter, so the fit's entry point is wrapped here.

Usage::

    python benchmarks/probe_published_theta_e.py J1051 [--theta-e 1.496]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from click.testing import CliRunner

import lensnet.refine.catalog as catalog
from lensnet.cli import cli
from lensnet.refine.fit import CREDIBLE_SPREAD
from lensnet.refine.model import model_images

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import CASES, MODEL, published  # noqa: E402

#: The prior's 1σ (arcsec) that holds θE at the published value: the least the fit takes as a prior.
PINNED_SIGMA = CREDIBLE_SPREAD[0]
#: The fit's clipping threshold (sigma; :func:`lensnet.refine.refine_lenses`' ``clip``).
CLIP = 5.0


def fit(path: Path, options: list[str], theta_e: float | None) -> dict:
    """One catalogue fit of ``path``, θE held at ``theta_e`` if given: its SIE + shear and capped χ²."""
    original = catalog.refine_lenses
    seen = {}

    def wrapped(data, start, spread, **kwargs):
        if theta_e is not None:
            start, spread = start.clone(), spread.clone()
            start[:, 0], start[:, 1:3], spread[:, 0] = theta_e, 0.0, PINNED_SIGMA
        result = original(data, start, spread, **kwargs)
        with torch.no_grad():
            model, _, _ = model_images(result.params, data, 1, result.spec)
            chi2 = ((data.image - model) / data.sigma) ** 2
        given = ~data.mask
        names = result.spec.names
        seen.update({name: float(result.params[0, names.index(name)]) for name in
                     ("theta_E", "e1", "e2", "center_x", "center_y", "gamma1", "gamma2")},
                    capped=float(chi2[given].clamp_max(CLIP ** 2).sum()), pixels=int(given.sum()),
                    reduced_chi2=float(result.reduced_chi2[0]))
        return result

    catalog.refine_lenses = wrapped
    try:
        with tempfile.TemporaryDirectory() as work:
            args = ["predict", str(path), *options, "--refine", *MODEL, "-o", f"{work}/out.ecsv", "--no-progress-bar"]
            outcome = CliRunner().invoke(cli, args, catch_exceptions=False)
            if outcome.exit_code != 0:
                raise SystemExit(outcome.output)
    finally:
        catalog.refine_lenses = original
    return seen


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lens", help="part of the lens's name in bench_real.py (e.g. J1051)")
    parser.add_argument("--theta-e", type=float, help="θE to hold [the published one, lenstronomy's convention]")
    args = parser.parse_args(argv)
    matches = [case for case in CASES if args.lens in case[0]]
    if len(matches) != 1:
        parser.error(f"{args.lens!r} names {len(matches)} of bench_real.py's lenses")
    name, path, options = matches[0]
    theta_e = args.theta_e if args.theta_e is not None else published()[name][0]["theta_E"]
    free, held = fit(path, options, None), fit(path, options, theta_e)
    for label, row in ((f"{name}, free", free), (f"θE held at {theta_e:.3f}", held)):
        e = (row["e1"] ** 2 + row["e2"] ** 2) ** 0.5
        shear = (row["gamma1"] ** 2 + row["gamma2"] ** 2) ** 0.5
        print(f"{label}: θE {row['theta_E']:.3f}\", q {(1 - e) / (1 + e):.2f}, shear {shear:.3f}, centre "
              f"({row['center_x']:+.3f}, {row['center_y']:+.3f})\", reduced χ² {row['reduced_chi2']:.3f}, "
              f"capped χ² {row['capped']:.1f} on {row['pixels']} pixels")
    print(f"capped χ² held - free: {held['capped'] - free['capped']:+.1f}")


if __name__ == "__main__":
    main()
