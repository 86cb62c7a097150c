"""Explore a sweep's summary: load it, fit the weight-change exponents, draw one figure.

    python examples/explore_summary.py results/<name>/summary.zarr [out.png]

Every variable of the summary carries ``long_name``, ``units`` and ``description``
(docs/store-schema.md), so xarray's own plots are labelled; the fits come from the library
(`ntkpipe.analysis.aggregate`), the same ones the report's verdicts use (Fig. 1: the relative
change of the hidden weights falls as n^−1, of the input and output weights as n^−½).
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from ntkpipe.analysis import aggregate  # noqa: E402


def main(summary_path: str, out_path: str = "weight_change.png") -> dict[str, float]:
    """Print and return {layer role: fitted exponent of ‖W_T − W_0‖_F/‖W_0‖_F in n}."""
    ds = xr.open_zarr(summary_path).load()
    print(ds["weight_change"].attrs["long_name"], "·", ds["weight_change"].attrs["description"])
    usable = aggregate.usable_runs(ds)  # drops diverged and missing runs
    fits = aggregate.weight_change_exponents(usable)
    exponents = {}
    for fit in fits:
        if fit.fit is None:
            print(f"{fit.label}: not fitted ({fit.reason})")
            continue
        exponents[fit.label] = fit.fit.exponent
        print(
            f"{fit.label} {aggregate.format_group(fit.group)}: n^{fit.fit.exponent:.2f} "
            f"(95% CI {fit.fit.ci_low:.2f} … {fit.fit.ci_high:.2f})"
        )
    end = aggregate.final(usable)["weight_change"].sel(model="net")
    hidden = aggregate.layer_role_mean(end, "hidden").mean("seed")
    fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
    hidden.plot.line(x="width", ax=ax, marker="o", xscale="log", yscale="log")
    ax.set_title("hidden layers, end of training")
    fig.savefig(out_path, dpi=100)
    print(f"figure: {out_path}")
    return exponents


if __name__ == "__main__":
    main(*sys.argv[1:])
