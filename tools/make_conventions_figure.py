"""Draw docs/figures/conventions.png: lensnet's image axes, the angle phi and (e1, e2), and the position angle east
of north on a rotated sky, computed with lensnet.conventions.

    python tools/make_conventions_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Arc, Ellipse  # noqa: E402

from lensnet.conventions import position_angle, qphi_to_e1e2  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "conventions.png"
Q, PHI = 0.6, np.radians(30.0)
#: A WCS rotated by 40 degrees: pixel offsets (x, y) to (east, north), as a CD matrix with north 40 deg from +y.
ROTATION = np.radians(40.0)
CD = np.array([[-np.cos(ROTATION), np.sin(ROTATION)], [np.sin(ROTATION), np.cos(ROTATION)]])


def main() -> None:
    e1, e2 = (float(v) for v in qphi_to_e1e2(torch.tensor(Q), torch.tensor(PHI)))
    pa = float(position_angle(torch.tensor(PHI, dtype=torch.float64), torch.tensor(CD)))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), layout="constrained")
    for ax in axes:
        ax.set_xlim(-2, 2)
        ax.set_ylim(-2, 2)
        ax.set_aspect("equal")
        ax.add_patch(Ellipse((0, 0), 2.4, 2.4 * Q, angle=np.degrees(PHI), fill=False, lw=2, color="C0"))
        major = 1.2 * np.array([np.cos(PHI), np.sin(PHI)])
        ax.plot([-major[0], major[0]], [-major[1], major[1]], "--", color="C0")
        ax.set_xlabel("x [arcsec]: along columns")
        ax.set_ylabel("y [arcsec]: along rows (row 0 at the bottom)")
    left, right = axes
    left.annotate("", (1.6, 0), (0, 0), arrowprops=dict(arrowstyle="->", lw=1.5))
    left.annotate("", (0, 1.6), (0, 0), arrowprops=dict(arrowstyle="->", lw=1.5))
    left.text(1.65, -0.15, "+x")
    left.text(0.05, 1.65, "+y")
    left.add_patch(Arc((0, 0), 1.2, 1.2, theta1=0, theta2=np.degrees(PHI), color="C1", lw=1.5))
    left.text(0.7, 0.15, f"φ = {np.degrees(PHI):.0f}°", color="C1")
    left.set_title(f"image frame: q = {Q}, φ counter-clockwise from +x\n"
                   f"e1 + i e2 = (1−q)/(1+q) exp(2iφ): e1 = {e1:.3f}, e2 = {e2:.3f}", fontsize=10)
    # The sky's directions in pixel coordinates: the columns of the inverse CD matrix.
    east, north = np.linalg.inv(CD)[:, 0], np.linalg.inv(CD)[:, 1]
    for vector, label in ((north, "N"), (east, "E")):
        tip = 1.5 * vector / np.linalg.norm(vector)
        right.annotate("", tuple(tip), (0, 0), arrowprops=dict(arrowstyle="->", lw=1.5, color="k"))
        right.text(*(1.12 * tip), label, ha="center", va="center")
    theta_north = np.degrees(np.arctan2(north[1], north[0]))
    # pa turns from north through east (counter-clockwise here) to the major axis.
    right.add_patch(Arc((0, 0), 1.0, 1.0, theta1=theta_north, theta2=theta_north + pa, color="C3", lw=1.5))
    middle = np.radians(theta_north + pa / 2)
    right.text(0.75 * np.cos(middle), 0.75 * np.sin(middle), f"pa = {pa:.0f}°", color="C3", ha="center")
    right.set_title("on the sky (a WCS rotated by 40°): pa = position angle of the\n"
                    "major axis east of north, 0–180°, from the WCS", fontsize=10)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT} (pa = {pa:.1f} deg)")


if __name__ == "__main__":
    main()
