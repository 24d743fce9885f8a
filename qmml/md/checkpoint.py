"""Checkpoint files: the complete state of a run, written atomically.

A checkpoint is one ``.npz`` file (NumPy arrays, no pickles) holding the `MDState`, the potential's
step-to-step state (the SCF density history), the integrator's state and where each output file
ended.  It is written to a temporary file in the same folder, flushed to disk and renamed over the
old one, so a run killed at any instant (even SIGKILL mid-write) leaves either the previous or the new
checkpoint, never a damaged one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..header_npz import read_header_npz, write_header_npz
from .state import MDState

FORMAT = "qmml-checkpoint"
VERSION = 1
_STATE_ARRAYS = ("positions", "velocities", "forces")
_STATE_SCALARS = ("potential_energy", "step", "time_fs", "rng_state", "heat_eV")
#: Written when set; absent from checkpoints of older versions or runs without them (defaults apply).
_STATE_OPTIONAL = ("cell", "stress", "barostat_rng_state", "barostat_heat_eV")


def _flatten(tree, arrays: dict):
    """JSON-able copy of ``tree`` with every array moved into ``arrays``."""
    if isinstance(tree, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {"__array__": key}
    if isinstance(tree, dict):
        return {str(k): _flatten(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_flatten(v, arrays) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _unflatten(tree, arrays):
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return np.array(arrays[tree["__array__"]])
        return {k: _unflatten(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_unflatten(v, arrays) for v in tree]
    return tree


def write_checkpoint(path, state: MDState, **sections) -> None:
    """Atomically write ``state`` and named sections (nested dicts of arrays and JSON values).

    Parameters
    ----------
    path : str or path
        The ``.npz`` file, replaced atomically.
    state : MDState
        Positions (Å), velocities (Å/fs), forces (eV/Å), energies (eV) and the RNG state.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = {
        "format": FORMAT, "version": VERSION,
        "state": {**{k: getattr(state, k) for k in _STATE_SCALARS}, **{k: getattr(state, k) for k in _STATE_ARRAYS},
                  **{k: getattr(state, k) for k in _STATE_OPTIONAL if getattr(state, k) is not None},
                  "extra": state.extra},
        **sections,
    }
    write_header_npz(path, _flatten(tree, arrays), arrays)
    _fsync_folder(path.parent)


def read_checkpoint(path) -> tuple[MDState, dict]:
    """The `MDState` and the other sections of a checkpoint file.

    Parameters
    ----------
    path : str or path
        A checkpoint written by `write_checkpoint` (``.npz`` with a JSON header).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint there; give a run folder or checkpoint file written by qmml")
    tree, arrays = read_header_npz(path, "qmml checkpoint")
    if tree.get("format") != FORMAT or tree.get("version") != VERSION:
        raise InputError(f"{path}: not a qmml checkpoint of version {VERSION}")
    tree = _unflatten(tree, arrays)
    s = tree.pop("state")
    state = MDState(**{k: s[k] for k in _STATE_ARRAYS + _STATE_SCALARS}, **{k: s[k] for k in _STATE_OPTIONAL if k in s},
                    extra=s["extra"])
    tree.pop("format"), tree.pop("version")
    return state, tree


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename itself is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
