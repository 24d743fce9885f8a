"""Moved to `qmml.coupling.switching`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .coupling.switching import ChargeSwitching, switch  # noqa: F401

moved_module("qmml.switching", "qmml.coupling.switching")
