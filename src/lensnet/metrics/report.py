"""Reports of accuracy metrics: our 68% errors beside the paper's Table 1, as text or Markdown.

One formatter, :func:`format_beside_table1`, sets rows of lensnet results beside the five rows of
Table 1 of Hezaveh et al. (2017); ``lensnet evaluate`` (:func:`format_evaluation`), ``lensnet
combine``, the demo and the model card all print through it, so the tables cannot drift apart.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from lensnet.conventions import PARAM_NAMES, PARAM_UNITS
from lensnet.metrics.accuracy import PAPER_PARAM_NAMES

__all__ = ["PAPER_TABLE1", "format_beside_table1", "format_evaluation", "markdown_table", "text_table"]

#: Table 1 of Hezaveh et al. 2017: 68% errors of theta_E ("), eps_x, eps_y, x ("), y (").
PAPER_TABLE1 = {
    "Inception-v4": (0.03, 0.04, 0.05, 0.06, 0.06),
    "AlexNet": (0.03, 0.04, 0.04, 0.05, 0.06),
    "OverFeat": (0.04, 0.05, 0.05, 0.06, 0.06),
    "own network": (0.03, 0.05, 0.06, 0.05, 0.05),
    "combined": (0.02, 0.04, 0.04, 0.04, 0.04),
}

#: Labels of the lensnet-convention metrics of :func:`lensnet.metrics.compute_metrics`, in print order.
METRIC_LABELS = {"err68": "68% error", "err68_abs": "68th percentile of abs(residual)", "rms": "RMS",
                 "std": "std (released code)", "bias": "median residual (bias)",
                 "cover68": "coverage of 68% interval", "cover95": "coverage of 95% interval",
                 "prior_err68": "prior mean: 68% error"}


def format_beside_table1(rows: Iterable[tuple[str, dict]], prior: dict | None = None, markdown: bool = False,
                         digits: int = 3) -> str:
    """Rows of 68% errors in the paper's convention under the paper's Table 1.

    Parameters
    ----------
    rows : iterable of (label, errors)
        ``errors`` maps each of :data:`PAPER_PARAM_NAMES` to a 68% error; each row is printed as
        ``lensnet: <label>``.
    prior : dict, optional
        The 68% errors of the constant predictor (the mean truth), printed last as the baseline.
    markdown : bool
        A Markdown table instead of aligned text [False].
    digits : int
        Decimals of our rows [3]; the paper's rows have the paper's two.
    """
    head = ["", *(f"{n} (\")" if n in ("theta_E", "x", "y") else n for n in PAPER_PARAM_NAMES)]
    body = [(f"paper: {k}", *(f"{v:.2f}" for v in vals)) for k, vals in PAPER_TABLE1.items()]
    body += [(f"lensnet: {label}", *(f"{err[n]:.{digits}f}" for n in PAPER_PARAM_NAMES)) for label, err in rows]
    if prior is not None:
        body.append(("prior mean (baseline)", *(f"{prior[n]:.{digits}f}" for n in PAPER_PARAM_NAMES)))
    return (markdown_table if markdown else text_table)(head, body)


def format_evaluation(result: dict, markdown: bool = False) -> str:
    """An evaluation summary (``EvaluationResult.to_dict()``, as a model card stores it) as tables:
    the test set, our 68% errors beside Table 1, then every metric per parameter (lensnet convention)."""
    m, ts, timing = result["metrics"], result["test_set"], result["timing"]
    lens_head = [f"{n} ({u})" if u else n for n, u in zip(PARAM_NAMES, PARAM_UNITS)]
    metric_rows = [(label, *(f"{m['lensnet'][key][n]:.4f}" for n in PARAM_NAMES)) for key, label in METRIC_LABELS.items()]
    speed = timing.get("lenses_per_s")
    intro = (f"{ts['num']} test lenses (simulation '{ts['simulation']}', held-out '{ts['source_split']}' source "
             f"galaxies, seed {ts['seed']}); inference "
             + (f"{speed:,.0f} lenses/s on {timing['device']}." if speed else f"on {timing['device']}."))
    title1 = ("68% errors, half-width of the central 68% interval of the residuals, in the paper's convention "
              "(eps = (1-q)(cos a, sin a), a = phi + 90 deg, better sign per lens) beside Table 1 of Hezaveh et al. 2017:")
    title2 = "Every metric in lensnet's convention (e1 + i e2 = (1-q)/(1+q) exp(2i phi)):"
    table1 = format_beside_table1([(result["model"], m["paper"]["err68"])], m["paper"]["prior_err68"], markdown)
    table = markdown_table if markdown else text_table
    parts = [intro, "", title1, "", table1, "", title2, "", table(["", *lens_head], metric_rows)]
    for key, label, unit in (("theta_E_bins", "true theta_E", '"'), ("snr_bins", "arc peak S/N", "")):
        bins = m.get(key)
        if not bins:
            continue
        edges = bins["edges"]
        rows = [(f"{edges[b]:g}-{edges[b + 1]:g}{unit} ({bins['count'][b]})",
                 *(("-" if bins[c][b][n] is None else f"{bins[c][b][n]:.3f}") for c in ("cover68", "cover95")
                   for n in PARAM_NAMES)) for b in range(len(edges) - 1)]
        head = [f"{label} (lenses)", *(f"{n} {p}" for p in ("68%", "95%") for n in PARAM_NAMES)]
        parts += ["", f"Coverage of the 68% and 95% intervals in bins of the {label}:", "", table(head, rows)]
    return "\n".join(parts)


def text_table(head: Sequence[str], rows: Sequence[tuple]) -> str:
    """Columns aligned with spaces: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def markdown_table(head: Sequence[str], rows: Sequence[tuple]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])
