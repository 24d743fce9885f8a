"""What keeps a run folder honest: one process at a time, restarts only of the physics it holds.

* `RunFolderLock`: an exclusive lock (``filelock``, an OS file lock the kernel drops when its process dies,
  so a lock left by a killed run is taken over safely).  A second process gets one line naming the holder.
* `physics_fingerprint`: the resolved job settings a checkpoint belongs to, with the structure and model
  files by content hash.  `changes` lists what differs between two fingerprints.
* ``config_history.yaml``: one entry per run and restart (time, ``--set`` values, accepted changes).
  ``config.yaml`` is written once, by ``qmml run``; a restart reads it plus the history's ``--set`` values.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path

import yaml

from .errors import InputError

LOCK = ".qmml.lock"
HOLDER = ".qmml.holder"
HISTORY = "config_history.yaml"
#: settings a restart may change without changing the physics: how long it runs and what it shows
NOT_PHYSICS = ("md.steps", "md.progress", "md.run_dir", "md.guard", "qm.device")


class RunFolderLock:
    """Hold ``run_dir`` for this process (context manager); `InputError` naming the holder's PID when another
    process has it."""

    def __init__(self, run_dir):
        from filelock import FileLock

        self.run_dir = Path(run_dir)
        self._lock = FileLock(self.run_dir / LOCK, timeout=0, thread_local=False)

    def __enter__(self) -> "RunFolderLock":
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = (self.run_dir / HOLDER).read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise InputError(f"run folder {self.run_dir} is in use by another qmml process ({holder}); wait for it "
                             f"to finish, or stop it (create {self.run_dir / 'STOP'}) before continuing") from None
        (self.run_dir / HOLDER).write_text(f"PID {os.getpid()} on {os.uname().nodename}, since "
                                           f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        return self

    def __exit__(self, *exc) -> None:
        (self.run_dir / HOLDER).unlink(missing_ok=True)
        self._lock.release()


def bookkeeping(name: str) -> bool:
    """True for the files a run folder holds for qmml's own use (lock, holder), not for results."""
    return name in (LOCK, HOLDER)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten(data, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def physics_fingerprint(config) -> dict:
    """Dotted key -> value of every setting of a resolved `JobConfig` that changes the dynamics (all but
    `NOT_PHYSICS`), with ``<key>.sha256`` for the content of structure and model files."""
    from .ml.io import model_path

    flat = {key: value for key, value in _flatten(config.model_dump(mode="json")).items()
            if not any(key == skip or key.startswith(skip + ".") for skip in NOT_PHYSICS)}
    flat["structure.sha256"] = [_sha256(path) for path in config.structure]
    for key in ("environment.model", "md.fast_model"):
        if flat.get(key):
            try:
                flat[f"{key}.sha256"] = _sha256(model_path(flat[key]))
            except InputError as err:
                raise InputError(f"key '{key}': {err}") from None
    return flat


def changes(before: dict, after: dict) -> dict:
    """Key -> [before, after] for every setting that differs (None where one side lacks it)."""
    return {key: [before.get(key), after.get(key)] for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def describe(diff: dict) -> str:
    def short(value):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."

    return "; ".join(f"{key}: {short(old)} -> {short(new)}" for key, (old, new) in diff.items())


def read_history(run_dir) -> list:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    try:
        entries = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err}); restore it or remove the broken entry") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{path}: expected a list of entries written by qmml; restore it")
    return entries


def history_overrides(entries) -> list[str]:
    """The ``--set`` values of every earlier restart, in order (a later one wins)."""
    return [item for entry in entries for item in entry.get("set", [])]


def append_history(run_dir, command: str, overrides=(), diff: dict | None = None) -> None:
    entry = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "command": command,
             "set": list(overrides)}
    if diff:
        entry["accepted_changes"] = {key: {"before": old, "after": new} for key, (old, new) in diff.items()}
    with open(Path(run_dir) / HISTORY, "a") as handle:
        handle.write(yaml.safe_dump([entry], sort_keys=False))
        handle.flush()
        os.fsync(handle.fileno())
