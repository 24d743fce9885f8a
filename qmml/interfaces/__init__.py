"""Interfaces to other simulation programs: an ASE calculator and an i-PI socket client.

``import qmml`` imports neither ASE nor anything from this package; the ASE names load ASE on
first use (``pip install "qmml[ase]"``), and the i-PI client needs only the standard library.

    from qmml.interfaces import QMMLCalculator, to_ase_atoms    # ASE optimizers, NEB, MD
    from qmml.interfaces import IPIClient                       # path-integral MD with i-PI

See ``docs/interfaces.md``.
"""

from __future__ import annotations

_LAZY = {
    "QMMLCalculator": "ase",
    "to_ase_atoms": "ase",
    "check_atoms": "ase",
    "IPIClient": "ipi",
    "virial": "ipi",
}

__all__ = ["IPIClient", "QMMLCalculator", "check_atoms", "to_ase_atoms", "virial"]


def __getattr__(name):
    # lazy, so that `import qmml.interfaces` (and the i-PI client) work without ASE installed
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
