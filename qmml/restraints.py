"""Moved to `qmml.sampling.restraints`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .sampling.restraints import HarmonicRestraint, Restrained  # noqa: F401

moved_module("qmml.restraints", "qmml.sampling.restraints")
