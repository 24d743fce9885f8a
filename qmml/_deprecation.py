"""Public names that moved keep working for one release, with a `DeprecationWarning` naming the new home.

A moved module leaves a stub that calls `moved_module`; a module that lost some names defines
``__getattr__ = moved_names(__name__, {"old_name": "new.module"})``.  The layer test
(`tests/test_layers.py`) ignores the imports these stubs make: they point up or sideways on purpose.
"""

from __future__ import annotations

import importlib
import warnings


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there (the old name goes in the next release)",
                  DeprecationWarning, stacklevel=3)


def moved_module(old: str, new: str) -> None:
    """Warn once per import of the stub module ``old`` that now lives at ``new``."""
    _warn(old, new)


def moved_names(module: str, homes: dict):
    """A module ``__getattr__`` that serves each name in ``homes`` (name -> new module) with a warning."""

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{homes[name]}.{name}")
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
