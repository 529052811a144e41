"""The credit run's curves PNG: ROC curves of every model, and the KS curves of the DNN.

`curves` maps a model name to components.credit.metrics.curve_points() of its
eval scores, the DNN first (dicts keep their order), then the baselines.
"""
import os
from typing import Dict

DPI = 100
FIGURE_SIZE = (12.0, 5.5)


def write_roc_ks_png(path: str, curves: Dict[str, dict]) -> None:
    """Writes one PNG with two panels.

    Left: the ROC curve of every model, with the diagonal of a random score.
    Right: the cumulative shares of bads and goods against the population
    share (riskiest first) of the first model, with its KS gap marked where
    the two curves are furthest apart.
    """
    if not curves:
        raise ValueError("no curves to plot: `curves` is empty")
    # Imported here: matplotlib is only needed when a credit run writes its report.
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI)
    roc_axes, ks_axes = figure.subplots(1, 2)

    for name, points in curves.items():
        roc = points["roc"]
        roc_axes.plot(roc["fpr"], roc["tpr"], linewidth=1.5, label=name)
    roc_axes.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", linewidth=1.0, label="random")
    roc_axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0), xlabel="false positive rate (share of goods declined)",
                 ylabel="true positive rate (share of bads declined)", title="ROC")
    roc_axes.set_aspect("equal")
    roc_axes.grid(alpha=0.3)
    roc_axes.legend(loc="lower right", fontsize="small")

    first = next(iter(curves))
    ks = curves[first]["ks"]
    population, bads, goods = ks["population_share"], ks["cum_bads_share"], ks["cum_goods_share"]
    ks_axes.plot(population, bads, color="tab:red", linewidth=1.5, label="bads (cumulative share)")
    ks_axes.plot(population, goods, color="tab:green", linewidth=1.5, label="goods (cumulative share)")
    gaps = [abs(b - g) for b, g in zip(bads, goods)]
    at = max(range(len(gaps)), key=gaps.__getitem__)
    ks_axes.vlines(population[at], min(bads[at], goods[at]), max(bads[at], goods[at]), color="black",
                   linewidth=2.0, label=f"KS = {gaps[at]:.3f} at {population[at]:.1%} of the population")
    ks_axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0), xlabel="population share (riskiest first)",
                ylabel="cumulative share", title=f"KS: {first}")
    ks_axes.grid(alpha=0.3)
    ks_axes.legend(loc="lower right", fontsize="small")

    figure.tight_layout()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.savefig(path, format="png")
