"""Analysis of finished runs: per-run metrics, the sweep summary, power-law fits, the paper's
claims, figures and the HTML report.

xarray in; xarray, figures and HTML out. Never imports :mod:`ntkpipe.core` or :mod:`ntkpipe.jobs`.
"""
