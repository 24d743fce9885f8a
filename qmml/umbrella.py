"""Moved to `qmml.sampling`; this name works for one release, with a `DeprecationWarning`."""

from ._deprecation import moved_module
from .sampling import (ConfigPotentialFactory, MLPotentialFactory, UmbrellaSampling, UmbrellaWindow,  # noqa: F401
                       WindowSamples, run_umbrella_window, run_umbrella_windows, umbrella_windows)

moved_module("qmml.umbrella", "qmml.sampling")
