# The rules' functions (ntkpipe.rules.RuleFunctions: paths, configs as params, inputs and flags
# read off the stage table and the results layout, resources from the cost model), as RULES.

from ntkpipe.rules import WRITE_CONFIG, RuleFunctions

RULES = RuleFunctions(LAYOUT, SWEEP, RESOURCES, RUNS, ANALYTIC, ENSEMBLES)
