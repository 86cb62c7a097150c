"""The pure math of the paper: networks, tangent kernels (empirical and analytic), the
linearization, its closed-form dynamics and gradient-descent training.

Arrays and keys in, arrays out: no files, no config dicts, no xarray. Imports nothing from
ntkpipe but :mod:`ntkpipe.errors`. The public modules are re-exported by :mod:`ntkpipe`.
"""
