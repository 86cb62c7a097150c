"""Everything before any job: the config schema and its validation, the expansion of a sweep
into runs (ids, per-stage configs), the stage table and the cost model.

Light: no JAX and no xarray, since the Snakefile imports it at every start.
"""
