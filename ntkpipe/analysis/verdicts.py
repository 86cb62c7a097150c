"""Decision rules of the verdicts: an interval (or a fraction) against the paper's criterion.

Three outcomes of a test, one for a claim the experiment cannot test, and one for a claim
whose data are absent:

- ``consistent``: the 95% interval lies inside the region the paper's claim allows;
- ``inconsistent``: the interval lies outside it (for a one-sided claim: it excludes an effect
  of at least a stated margin in the claimed direction);
- ``inconclusive``: the data cannot decide (too few widths or seeds, or an interval that
  straddles the criterion); `Claim.reason` then says what would decide it;
- ``not applicable``: the experiment does not meet the conditions under which the paper's
  statement holds (networks not trained far enough, η above η_crit, one seed per point, too
  few widths, no analytic kernel: `ntkpipe.analysis.claims_applicability`), so no test is
  made; `Claim.reason` says which condition failed and what would meet it. Counted apart
  from "inconclusive" (the experiment tests the claim but cannot decide);
- ``not tested``: the sweep has no data for the claim.

False "consistent" rates. An interval at confidence c misses the true value on a given side
with probability (1 − c)/2, so each rule says "consistent" for a false claim (true value
outside the allowed region, or no effect) at most 2.5% of the time at c = 0.95, when the
interval's assumptions hold (independent replicates, log-normal noise of the fits). The
fraction rules of Fig. 2 have no such closed form; their rates are measured on synthetic
ensembles in tests/analysis/test_verdict_rates.py, as are those of every rule here.

All functions are vectorized: arrays in, an array of verdict strings out.
"""

from __future__ import annotations

import numpy as np

from ntkpipe.analysis.summary import format_number

CONSISTENT, INCONSISTENT, INCONCLUSIVE, NOT_APPLICABLE, NOT_TESTED = (
    "consistent",
    "inconsistent",
    "inconclusive",
    "not applicable",
    "not tested",
)
#: Verdicts of a claim, in the order the report counts them.
VERDICTS = (CONSISTENT, INCONSISTENT, INCONCLUSIVE, NOT_APPLICABLE, NOT_TESTED)
#: Fig. 2 fraction rules: consistent at or above the first, inconsistent below the second.
FRACTION_THRESHOLDS = (0.9, 0.5)


def range_verdict(low, high, allowed):
    """Interval [low, high] against the allowed range (lo, hi), e.g. the paper's exponent
    widened by the finite-width margin: consistent inside, inconsistent disjoint, else
    inconclusive (a NaN interval is inconclusive)."""
    lo, hi = allowed
    low, high = np.asarray(low, float), np.asarray(high, float)
    inside = (low >= lo) & (high <= hi)
    outside = (high < lo) | (low > hi)
    return np.where(inside, CONSISTENT, np.where(outside, INCONSISTENT, INCONCLUSIVE))


def sign_verdict(low, high, *, direction: int, margin: float):
    """A one-sided claim "the quantity is > 0" (direction +1) or "< 0" (direction −1).

    Consistent when the interval lies on the claimed side of 0; inconsistent when it excludes
    an effect of at least `margin` on the claimed side (it lies below +margin, resp. above
    −margin); inconclusive otherwise.
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    if direction < 0:
        low, high = -high, -low
    return np.where(low > 0, CONSISTENT, np.where(high < margin, INCONSISTENT, INCONCLUSIVE))


def fraction_verdict(fraction, thresholds=FRACTION_THRESHOLDS):
    """Consistent when the fraction ≥ thresholds[0], inconsistent below thresholds[1], else
    (or NaN) inconclusive."""
    fraction = np.asarray(fraction, float)
    good, bad = thresholds
    return np.where(
        fraction >= good, CONSISTENT, np.where(fraction < bad, INCONSISTENT, INCONCLUSIVE)
    )


def interval_needs(low, high, allowed, what: str = "seeds or widths") -> str:
    """What would decide an inconclusive interval test, e.g. ``CI width 0.60 > allowed range
    0.40: add seeds or widths`` or ``CI [−0.72, −0.41] straddles −0.7: add seeds or widths``."""
    lo, hi = allowed
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"no finite interval (one degree of freedom or none): add {what}"
    width, room = high - low, hi - lo
    if width > room:
        return f"CI width {format_number(width)} > allowed range {format_number(room)}: add {what}"
    bound = lo if low < lo else hi
    return (
        f"CI [{format_number(low)}, {format_number(high)}] straddles {format_number(bound)}: "
        f"add {what}"
    )


def sign_needs(low, high, *, direction: int, margin: float, what: str = "seeds") -> str:
    """What would decide an inconclusive `sign_verdict`."""
    side = "> 0" if direction > 0 else "< 0"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"no finite interval: add {what}"
    return (
        f"CI [{format_number(low)}, {format_number(high)}] neither {side} nor excluding an "
        f"effect of {format_number(margin)}: add {what}"
    )
