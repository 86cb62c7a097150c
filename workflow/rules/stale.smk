# Config files and stores that no longer match the sweep, found from their own records
# (ntkpipe.start.refresh), not from .snakemake/ metadata: the main process of a real run
# rewrites and removes them; any other command says what a run would do.


workflow_start.refresh(START)
