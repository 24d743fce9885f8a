"""Moved to `qmml.sampling.colvars`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .sampling.colvars import Distance, DistanceDifference  # noqa: F401

moved_module("qmml.colvars", "qmml.sampling.colvars")
