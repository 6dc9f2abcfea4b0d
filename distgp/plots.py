"""Figures written next to the results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DRAWABLE = 1e300
"""Largest magnitude a figure draws: matplotlib's axis arithmetic overflows near float64's
maximum."""


def drawable(*values: np.ndarray) -> np.ndarray:
    """Where every one of ``values`` is finite and within :data:`DRAWABLE`."""
    return np.logical_and.reduce([np.abs(v) < DRAWABLE for v in values])


def pyplot():
    """matplotlib.pyplot with the headless Agg backend. A column name with characters the
    font lacks (CJK names in DejaVu Sans) shows boxes in the figure, without matplotlib's
    warning per character and drawing call."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warnings.filterwarnings(
        "ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning
    )
    return plt


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` as PNG atomically."""
    from distgp.io import atomic_write

    atomic_write(
        path, lambda handle: fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    )


def spectrum(model, path: str | Path) -> None:
    """Learned weight against frequency, one panel per input dimension.

    Frequencies are in cycles per raw input unit; colour marks the bandwidth level. A trend
    part gets one more panel: the weight of each basis function (the prior variance of its
    coefficient, on standardised inputs).
    """
    plt = pyplot()
    grid = model.grid
    dims = grid.dims
    trend = model.trend.size if model.trend is not None else 0
    panels = dims + (1 if trend else 0)
    cols = min(panels, 4)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    w_all = model.weights * model.scaler.y_scale**2
    units = {"none": "y units$^2$", "log": "log y units$^2$"}.get(
        model.transform.kind, "Box-Cox y units$^2$"
    )
    w = w_all[: grid.components]
    widths = np.sqrt(grid.variances.max(axis=1))
    levels = np.unique(widths)
    colours = plt.cm.viridis(np.linspace(0, 0.85, len(levels)))
    legend_of = None
    base = 0.3 * float(w[w > 0].min()) if np.any(w > 0) else 1.0  # stems rise from here
    for p in range(dims):
        ax = axes[p // cols][p % cols]
        freq = grid.means[:, p] / model.scaler.x_scale[p]
        for level, colour in zip(levels, colours, strict=True):
            sel = (widths == level) & (w > 0) & ((grid.means[:, p] > 0) | (grid.means.sum(1) == 0))
            if np.any(sel):
                ax.vlines(freq[sel], base, w[sel], color=colour, lw=1.2)
                ax.plot(
                    freq[sel],
                    w[sel],
                    "o",
                    color=colour,
                    ms=3,
                    # the same colour in every panel: the width in the grid's own units
                    label=f"spectral width {level:.2g} cycles per sd" if len(levels) > 1 else None,
                )
        ax.set_xlabel(f"frequency, cycles per {_unit_of(model, p)}")
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))  # inputs in large units: tiny numbers
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
        ax.set_ylabel(f"weight ({units})")
        if not np.any(w > 0):  # the trend part (or the noise) explains everything
            ax.text(0.5, 0.5, "no spectral weight above zero", ha="center", transform=ax.transAxes)
            continue
        ax.set_yscale("log")  # weights span decades; zero weights are not drawn
        ax.set_ylim(bottom=base)
        if p == 0 and ax.get_legend_handles_labels()[0]:
            legend_of = ax
    if trend:
        ax = axes[dims // cols][dims % cols]
        tw = w_all[grid.components :]
        ax.bar(range(trend), tw, color="tab:orange")
        labels = model.trend.labels([_dim_name(model, p) for p in range(dims)])
        crowded = trend > 8 or max(map(len, labels)) > 40 / trend  # about 40 characters wide
        ax.set_xticks(
            range(trend), labels, rotation=30 if crowded else 0, ha="right" if crowded else "center"
        )
        ax.set_xlabel("trend component (standardised inputs)")
        ax.set_ylabel(f"weight ({units})")
    for q in range(panels, rows * cols):
        axes[q // cols][q % cols].axis("off")
    if legend_of is not None:  # in a free panel where there is one, not over the first's data
        free = axes[panels // cols][panels % cols] if panels < rows * cols else None
        handles, labels = legend_of.get_legend_handles_labels()
        (free or legend_of).legend(
            handles, labels, fontsize=7, loc="upper left" if free else "best"
        )
    fig.suptitle(
        f"Learned GSMP spectrum: {int(np.count_nonzero(w_all))} of {len(w_all)} components active"
        + (
            f" ({int(np.count_nonzero(w_all[grid.components :]))} of {trend} trend)"
            if trend
            else ""
        )
    )
    fig.tight_layout()
    save_figure(fig, Path(path))
    plt.close(fig)


def _dim_name(model, p: int) -> str:
    """Input ``p``'s column name (a model fitted on a CSV), else ``x<p>``."""
    names = model.input_names
    return str(names[p]) if names is not None and p < len(names) else f"x{p}"


def _unit_of(model, p: int) -> str:
    """The unit of input ``p``'s frequencies: ``month (date)`` for a column of dates, else
    ``unit of <name>``."""
    name = _dim_name(model, p)
    unit = model.time_units.get(name)
    return f"{unit} ({name})" if unit else f"unit of {name}"


def _time_axis(model, name: str):
    """Raw inputs of column ``name`` as drawn: dates for a column that held them."""
    unit = model.time_units.get(name)
    if unit is None:
        return lambda x: x
    from distgp import calendar

    return lambda x: calendar.to_dates(x, unit).to_numpy()


def prediction(model, dataset, path: str | Path) -> None:
    """1-D data with the predictive mean and the central 95% interval of a new observation
    (noise included; ``g^-1`` of the latent interval under an output transform). A model with a
    season is drawn at the series' steps, the times its seasonal phases are defined at (between
    them it interpolates the phases, with a wider interval)."""
    plt = pyplot()
    x_train = dataset.X_train[:, 0]
    x_all = np.concatenate([x_train, dataset.X_test[:, 0]])
    lo, hi = x_all.min(), x_all.max()
    pad = 0.02 * (hi - lo or 1.0)
    xs = np.linspace(lo - pad, hi + pad, 800)
    if model.trend is not None and model.trend.season:
        step = model.trend.season_step * float(model.scaler.x_scale[0])
        start = x_train.min()
        xs = start + step * np.arange(np.floor((lo - start) / step), (hi - start) / step + 1)
    latent = model.predict_latent(xs[:, None], return_std=True)
    mean, _ = model.transform.moments(*latent)
    lower, upper = model.transform.interval(*latent, 0.95)
    hidden = ~drawable(mean, lower, upper)  # far beyond the data, past float64's range
    mean, lower, upper = (np.where(hidden, np.nan, v) for v in (mean, lower, upper))
    name = dataset.feature_names[0] if dataset.feature_names else "x"
    at = _time_axis(model, name)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.fill_between(at(xs), lower, upper, color="tab:blue", alpha=0.2, label="95% interval")
    ax.plot(at(xs), mean, color="tab:blue", lw=1.2, label="predictive mean")
    ax.plot(at(x_train), dataset.y_train, ".", color="black", ms=3, label="training data")
    if len(dataset.y_test):
        x_test = dataset.X_test[:, 0]
        ax.plot(at(x_test), dataset.y_test, ".", color="tab:red", ms=5, label="test data")
        if x_test.min() > x_train.max():  # a forecast: mark where the data end
            end = at(np.array([x_train.max()]))[0]
            ax.axvline(end, color="gray", ls=":", lw=1, label="end of training data")
    ax.set_xlabel(name)
    ax.set_ylabel(dataset.target_name or "y")
    ax.set_title(f"{dataset.name}: GSMP GP")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save_figure(fig, Path(path))
    plt.close(fig)


def tuning(evaluations, path: str | Path) -> None:
    """Held-out MSE of every outer setting scored (``distgp.tune``; hollow: stopped early, over
    its first folds), the best so far among those scored on every fold, and the chosen setting
    (the lowest, or the default path's choice when the lowest is not clearly better), with its
    per-fold spread."""
    plt = pyplot()
    mse = np.array([e.mse for e in evaluations], float)
    stopped = np.array([e.stopped for e in evaluations], bool)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    steps = np.arange(1, len(mse) + 1)
    ax.semilogy(steps[~stopped], mse[~stopped], "o", ms=4, label="held-out MSE of the setting")
    if stopped.any():
        ax.semilogy(
            steps[stopped], mse[stopped], "o", ms=4, mfc="none", color="C0",
            label="stopped early: its first folds",
        )  # fmt: skip
    complete = np.where(np.isfinite(mse) & ~stopped, mse, np.inf)
    ax.semilogy(steps, np.minimum.accumulate(complete), "-", label="best so far")
    chosen = [i for i, e in enumerate(evaluations) if e.chosen]
    best = chosen[0] if chosen else int(np.argmin(complete))
    folds = np.asarray(evaluations[best].folds, float)
    if folds.size > 1 and np.all(np.isfinite(folds)):
        ax.vlines(best + 1, folds.min(), folds.max(), color="C3", lw=1, label="chosen: fold range")
    ax.semilogy(best + 1, mse[best], "o", ms=7, mfc="none", color="C3")
    ax.annotate(
        evaluations[best].name,
        (best + 1, mse[best]),
        fontsize=7,
        xytext=(5, 10),
        textcoords="offset points",
    )
    ax.set_xlabel("evaluation")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # evaluations are counted
    ax.set_ylabel("held-out MSE (raw units)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, Path(path))
    plt.close(fig)


def convergence(history, path: str | Path) -> None:
    """ADMM residuals against their tolerances, the penalty, and bits per round."""
    plt = pyplot()
    rounds = [r.round for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    axes[0].semilogy(rounds, [r.primal_residual for r in history], label="primal residual")
    axes[0].semilogy(rounds, [r.primal_tol for r in history], "--", label="primal tolerance")
    axes[0].semilogy(rounds, [r.dual_residual for r in history], label="dual residual")
    axes[0].semilogy(rounds, [r.dual_tol for r in history], "--", label="dual tolerance")
    axes[0].set_xlabel("round")
    axes[0].legend(fontsize=7)
    axes[1].semilogy(rounds, [r.rho for r in history])
    axes[1].set_xlabel("round")
    axes[1].set_ylabel("penalty rho")
    axes[2].plot(rounds, np.cumsum([r.bits for r in history]) / 1e3, label="quantised")
    axes[2].plot(rounds, np.cumsum([r.bits_float64 for r in history]) / 1e3, label="float64")
    axes[2].set_xlabel("round")
    axes[2].set_ylabel("kbits sent (cumulative)")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, Path(path))
    plt.close(fig)
