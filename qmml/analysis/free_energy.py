"""Moved to `qmml.sampling.free_energy`; this name works for one release, with a `DeprecationWarning`."""

from .._deprecation import moved_module
from ..sampling.free_energy import FreeEnergyProfile, umbrella_free_energy  # noqa: F401

moved_module("qmml.analysis.free_energy", "qmml.sampling.free_energy")
