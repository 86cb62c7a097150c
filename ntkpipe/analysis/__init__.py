"""Analysis of finished runs: per-run metrics, the sweep summary, power-law fits, the paper's
claims, figures and the HTML report.

Modules: ``metrics`` (per run), ``summary`` (access to the sweep summary), ``fits`` (power laws
and intervals), ``ensembles`` (Fig. 2 statistics), ``tables`` (the run table), ``aggregate``
(the exponents and aggregates, re-exporting the four before), ``verdicts`` (decision rules),
``claims`` with ``claims_base``, ``claims_width``, ``claims_outputs``, ``plots``, ``report``.

xarray in; xarray, figures and HTML out. Never imports :mod:`ntkpipe.core` or :mod:`ntkpipe.jobs`.
"""
