"""``lensnet demo``: the main job on built-in defaults.

Simulates lenses with the ``paper`` preset (built-in Hubble-deep-field galaxies as real sources),
draws them with their critical curves and caustics, and, when trained weights ship with the
package, estimates their parameters with the shipped model and compares with the truth.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import torch

from lensnet.conventions import PARAM_NAMES, LensParams
from lensnet.errors import LensnetRangeError
from lensnet.io.atomic import atomic_output
from lensnet.lensing import SIE
from lensnet.simulate.config import get_preset
from lensnet.simulate.simulator import SOURCE_TYPES, LensSimulator

__all__ = ["run_demo", "plot_lenses"]


def plot_lenses(batch, grid, output: str | Path, title: str = "") -> Path:
    """Panels of observed images with the critical curve (image plane), caustic and cut (source plane)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = LensParams.from_tensor(batch.targets.double().cpu())
    lens = SIE(params)
    crit, caus, cut = lens.critical_curve(256), lens.caustic(256), lens.cut(256)
    n = len(batch)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    half = grid.fov / 2
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        image = batch.observed[i, 0].cpu().numpy()
        lo, hi = image.min(), max(image.max(), 1e-6)
        ax.imshow(image, origin="lower", cmap="gray", extent=(-half, half, -half, half), vmin=lo, vmax=hi)
        ax.plot(crit[0][i], crit[1][i], color="tab:orange", lw=1, label="critical curve")
        ax.plot(caus[0][i], caus[1][i], color="tab:cyan", lw=1, label="caustic")
        ax.plot(cut[0][i], cut[1][i], color="tab:green", lw=0.8, ls="--", label="cut")
        ax.plot(batch.record["source_x"][i].item(), batch.record["source_y"][i].item(), "+", color="tab:red",
                ms=8, label="source centre")
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
        theta_E, mu = params.theta_E[i].item(), batch.record["magnification"][i].item()
        kind = SOURCE_TYPES[int(batch.record["source_type"][i])]
        ax.set_title(f"#{i}  θE={theta_E:.2f}″  μ={mu:.1f}  {kind}", fontsize=9)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, loc="lower left", framealpha=0.6)
    for ax in axes[-1]:
        ax.set_xlabel("x [arcsec]", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("y [arcsec]", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(output, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(output)


def _table(batch) -> str:
    params = LensParams.from_tensor(batch.targets.double().cpu())
    q, phi = params.qphi()
    head = f"{'#':>3} " + " ".join(f"{n:>9}" for n in PARAM_NAMES) + f" {'q':>6} {'phi_deg':>8} {'mu':>6} {'source':>7}"
    rows = [head]
    for i in range(len(batch)):
        vals = " ".join(f"{v:9.3f}" for v in batch.targets[i].tolist())
        rows.append(f"{i:3d} {vals} {q[i]:6.3f} {math.degrees(phi[i]):8.1f} "
                    f"{batch.record['magnification'][i]:6.1f} {SOURCE_TYPES[int(batch.record['source_type'][i])]:>7}")
    return "\n".join(rows)


def run_demo(num: int = 6, seed: int = 0, output: str = "lensnet_demo.png") -> Path:
    """Simulate ``num`` lenses, plot them with critical curves and caustics, print their parameters."""
    if num < 1 or num > 64:
        raise LensnetRangeError("num", num, 1, 64, "the demo draws one panel per lens")
    config = get_preset("paper")
    simulator = LensSimulator(config)
    batch = simulator.simulate(num, seed)
    click.echo(f"Simulated {num} lenses (preset 'paper', {config.n_pix}x{config.n_pix} at {config.pixel_scale}\"/px, "
               f"seed {seed}); parameters in arcsec, lenstronomy convention:")
    click.echo(_table(batch))
    path = plot_lenses(batch, simulator.grid, output,
                       title=f"lensnet: simulated SIE lenses (paper preset, seed {seed})")
    click.echo(f"Wrote {path}")
    return path
