"""What the fixed terms of an environment model share: storage in model files.

A fixed term (`D3Dispersion`, `BondBaseline`) is a frozen dataclass of plain parameters plus one table of
rows, evaluated by ``compute(elements, positions, cell, molecules, forces=)``; `EnvironmentModel.fixed_terms`
adds each to every member.  `FixedTerm` writes and reads them as JSON dicts tagged with their form, so a
model file names the form it was trained with and an unknown one is refused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields

import numpy as np

from ..errors import InputError


class FixedTerm:
    """Mixin of the fixed-term dataclasses: `to_dict` / `from_dict` for model files.

    Subclasses set ``FORM`` (the stored form name), ``KIND`` (the word in error messages and the model
    architecture key) and ``TABLE`` (the field holding a tuple of rows).
    """

    FORM: str = ""
    KIND: str = ""
    TABLE: str = ""

    def _plain_numbers(self, names, *, non_negative: bool) -> None:
        """Check that each named field is a finite number (>= 0 if asked) and store it as a plain float, so
        that `to_dict` is JSON; called from ``__post_init__`` of the frozen dataclass."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(value) or (non_negative and value < 0):
                bound = " >= 0" if non_negative else ""
                raise InputError(f"{type(self).__name__}.{name} must be a finite number{bound}, got {value!r}")
            object.__setattr__(self, name, float(value))

    def _table_rows(self, types, layout: str) -> list[tuple]:
        """The rows of the table field, each converted by ``types``; one clear error naming ``layout``
        (e.g. "(Z, D_eV, a_per_A, r0_A)") for a row that does not fit."""
        rows = []
        for row in getattr(self, self.TABLE):
            try:
                if len(row) != len(types):
                    raise ValueError
                rows.append(tuple(kind(value) for kind, value in zip(types, row)))
            except (TypeError, ValueError):
                raise InputError(f"{type(self).__name__}.{self.TABLE} rows are {layout}, got {row!r}") from None
        return rows

    def to_dict(self) -> dict:
        """Plain JSON-able dict (stored in the ``architecture`` of model files)."""
        data = asdict(self)
        data[self.TABLE] = [list(row) for row in getattr(self, self.TABLE)]
        return {"form": self.FORM, **data}

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`; ``{}`` gives the defaults."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise InputError(f"{cls.KIND} must be a {cls.__name__} or its dict (to_dict()), got {data!r}")
        data = dict(data)
        form = data.pop("form", cls.FORM)
        if form != cls.FORM:
            raise InputError(f"{cls.KIND} form {form!r} is not known to this qmml (it knows {cls.FORM!r}); "
                             "use the qmml version that wrote the model")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown {cls.KIND} parameters {unknown}; known: {sorted(known)}")
        return cls(**data)
