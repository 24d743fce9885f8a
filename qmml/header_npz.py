"""NumPy ``.npz`` files with a JSON header: checkpoints and other resumable state, no pickles.

Written atomically (temporary file, fsync, rename), so a kill at any instant leaves the old file or the new
one; a failed write (full disk, file-size limit) removes its temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import InputError


def write_header_npz(path, header, arrays: dict) -> None:
    """Atomically write ``header`` (JSON-serialisable) and named ``arrays`` to ``path``."""
    path = Path(path)
    text = json.dumps(header, default=lambda value: value.item() if hasattr(value, "item") else str(value))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, __header__=np.array(text), **arrays)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def read_header_npz(path, what: str) -> tuple[object, dict]:
    """The header and the arrays of a file written by `write_header_npz`; `InputError` naming ``what`` (e.g.
    "qmml checkpoint") when it is not readable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return json.loads(str(arrays.pop("__header__"))), arrays
    except Exception as err:  # a file that is not ours, or damaged by something other than qmml
        raise InputError(f"{path}: not a readable {what} ({err})") from None
