"""The jobs: one module per rule file. The only place that reads run configs and stores and
calls :mod:`ntkpipe.core`.
"""
