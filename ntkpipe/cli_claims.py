"""``ntkpipe claims results/<name>``: a sweep's claims and verdicts from its claims.tsv
(`ntkpipe.analysis.claims_tsv`), for a reader and for a lab's CI (``--fail-on inconsistent``
exits with status 1). Kept light: the analysis is imported only when the command runs."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "print a sweep's claims and verdicts (claims.tsv); --fail-on inconsistent exits 1"
#: The verdicts --fail-on accepts (those of `ntkpipe.analysis.verdicts.VERDICTS`).
VERDICTS = ("consistent", "inconsistent", "inconclusive", "not applicable", "not tested")


def add_arguments(parser) -> None:
    """The command's arguments: the results folder and ``--fail-on``."""
    parser.add_argument("results", type=Path, help="the sweep's results folder, results/<name>")
    parser.add_argument(
        "--fail-on",
        nargs="+",
        default=[],
        choices=VERDICTS,
        metavar="VERDICT",
        help="exit with status 1 when a claim has one of these verdicts (e.g. inconsistent; "
        f"allowed: {', '.join(repr(v) for v in VERDICTS)})",
    )


def run(args) -> None:
    """Print the claims; exit with status 1 when one has a verdict in ``args.fail_on``."""
    from ntkpipe.analysis import claims_tsv

    path = args.results / claims_tsv.FILE_NAME
    if not args.results.is_dir():
        raise FileNotFoundError(f"results folder {str(args.results)!r} does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: the report stage writes it with "
            f"{args.results / 'report.html'} (snakemake … --configfile <the sweep's config>)"
        )
    frame = claims_tsv.read_claims(path)
    print(claims_tsv.format_claims(frame))
    failing = frame[frame["verdict"].isin(args.fail_on)]
    if len(failing):
        print(
            f"ntkpipe claims: {len(failing)} claim(s) {' or '.join(args.fail_on)}", file=sys.stderr
        )
        raise SystemExit(1)
