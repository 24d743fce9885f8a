"""Moved to `qmml.periodic.neighbours` (neighbour lists are lattice maths, below the models that use them)."""

from .._deprecation import moved_module
from ..periodic.neighbours import brute_force_pairs, neighbour_list  # noqa: F401

moved_module("qmml.ml.neighbours", "qmml.periodic.neighbours")
