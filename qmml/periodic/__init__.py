"""Periodic boxes: cell geometry and strain, neighbour lists, Ewald sums, and the QM region's coupling to a periodic
environment (see docs/periodic.md)."""

from . import cell
from .ewald import coulomb_open, ewald_coulomb, molecule_exclusions

__all__ = ["cell", "ewald_coulomb", "coulomb_open", "molecule_exclusions"]
