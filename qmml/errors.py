"""Exceptions with messages a user can act on.

Every input error names the file, key or atom at fault and says how to fix it.
"""


class QmmlError(Exception):
    """Base class of every error qmml raises on purpose."""


class InputError(QmmlError, ValueError):
    """Bad input: a structure, selection, configuration key or argument."""


class PartitionError(InputError):
    """A QM/environment partition that qmml refuses to build (override flags exist)."""


class SCFConvergenceError(QmmlError, RuntimeError):
    """The SCF did not converge even after the automatic fallbacks."""


class UnstableDynamicsError(QmmlError, RuntimeError):
    """A molecular-dynamics step broke a `qmml.md.StepGuard` limit (non-finite numbers, runaway temperature,
    a jump, an energy leak); the run stopped with the last good step in its checkpoint."""


def check_range(name: str, value, *, low=None, high=None, low_open: bool = False, unit: str = "") -> float:
    """``value`` as a float when finite and within [low, high] (``(low, high]`` with ``low_open``), else an
    `InputError` naming ``name``, the allowed range and the unit.  NaN and inf never pass."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}={value!r} is not a number{f' ({unit})' if unit else ''}") from None
    ok = number == number and abs(number) != float("inf")
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number <= high
    if not ok:
        lower = "" if low is None else f"{'above' if low_open else 'at least'} {low:g}"
        upper = "" if high is None else f"at most {high:g}"
        bounds = " and ".join(b for b in (lower, upper) if b) or "finite"
        raise InputError(f"{name}={value!r} must be {bounds}{f' ({unit})' if unit else ''}")
    return number


class ReweightingWarning(UserWarning):
    """Reweighted averages rest on too few effective samples (`qmml.analysis.reweight`)."""
