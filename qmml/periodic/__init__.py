"""Periodic boxes: cell geometry and strain, Ewald sums, and the QM region's coupling to a periodic
environment (see docs/periodic.md)."""
