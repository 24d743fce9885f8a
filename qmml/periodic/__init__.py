"""Periodic boxes: cell geometry and strain, Ewald sums, and the QM region's coupling to a periodic
environment (see docs/periodic.md)."""

from .ewald import coulomb_open, ewald_coulomb

__all__ = ["ewald_coulomb", "coulomb_open"]
