"""Splitting a system into a QM region and an environment: selection, cuts, link atoms, boundary charges."""

from .boundary import SCHEMES, BoundaryMap
from .core import Partition, partition
from .links import LinkAtom
from .shell import MLShell, build_shell

__all__ = ["Partition", "partition", "LinkAtom", "BoundaryMap", "SCHEMES", "MLShell", "build_shell"]
