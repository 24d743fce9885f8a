"""Moved to `qmml.coupling.vdw`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .coupling.vdw import LennardJones  # noqa: F401

moved_module("qmml.vdw", "qmml.coupling.vdw")
