"""Moved to `qmml.coupling.reference`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .coupling.reference import MLReference  # noqa: F401

moved_module("qmml.reference", "qmml.coupling.reference")
