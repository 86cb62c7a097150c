# Config files and stores that no longer match the sweep, found from their own records
# (ntkpipe.workflow_start.refresh → ntkpipe.start.refresh), not from .snakemake/ metadata: the
# main process of a real run rewrites them and moves the stores aside (after the checks of
# ntkpipe.start_guard: another config's results, corrupted inputs); any other command says what
# a run would do.


workflow_start.refresh(START)
