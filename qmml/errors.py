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
