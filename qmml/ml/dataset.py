"""Labelled structures for training and testing environment models, stored as one ``.npz`` file.

Frames of different sizes are stored flat (atoms of all frames concatenated) with per-frame counts,
so a dataset of mixed clusters and periodic boxes is a handful of arrays.  Units are Å, eV, eV/Å
and e, written into the file's metadata; positions and forces are stored in float32 to keep shipped
datasets small (1e-6 Å is far below any label's accuracy).
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMAT = "qmml-dataset"
FORMAT_VERSION = 1
UNITS = {"positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom", "charges": "e", "cell": "Angstrom",
         "stress": "eV/Angstrom^3", "esp_charges": "e"}

_ATOM_KEYS = ("elements", "positions", "forces", "charges", "molecule")
_FRAME_KEYS = ("n_atoms", "energy", "cell", "periodic")


@dataclass(frozen=True, eq=False)
class Frame:
    """One labelled structure.

    Attributes
    ----------
    elements : ndarray (n,) int
        Atomic numbers.
    positions : ndarray (n, 3)
        Å.
    energy : float
        eV (total energy of the reference method; only differences matter).
    forces : ndarray (n, 3)
        eV/Å.
    charges : ndarray (n,)
        Reference atomic charges, e.
    molecule : ndarray (n,) int
        Index of the molecule (charge group) of each atom, 0..n_mol-1.
    molecule_charges : ndarray (n_mol,)
        Integer total charge of each molecule, e.
    cell : ndarray (3, 3) or None
        Lattice vectors as rows, Å; None for an open (cluster) structure.
    stress : ndarray (3, 3) or None
        (1/V) dE/d(strain) of a periodic frame, eV/Å^3 (the convention of `qmml.ml.MLPotential` results
        and ASE; the pressure is minus a third of its trace); None where the label has none.
    esp_charges : ndarray (n,) or None
        Charges fitted to the electrostatic potential of a QM density (RESP), e: the targets of a model's
        embedding-charge head (`EnvironmentModel(embedding_charges=True)`), separate from ``charges``
        (the reference method's own, e.g. GFN2-xTB Mulliken); the dataset's metadata ``esp_reference``
        names their level.  None where the frame has none.
    """

    elements: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    charges: np.ndarray
    molecule: np.ndarray
    molecule_charges: np.ndarray
    cell: np.ndarray | None = None
    stress: np.ndarray | None = None
    esp_charges: np.ndarray | None = None

    def to_system(self, resname: str = "MOL"):
        """This structure as a `qmml.System` to simulate: bonds from covalent radii, one residue per
        molecule (numbered from 1), the cell as the box, and each molecule's charge spread evenly
        over its atoms as topology charges (so charged molecules keep their charge)."""
        from ..elements import SYMBOLS
        from ..system import System
        from .labelling import bonds_from_distances

        box = None
        if self.cell is not None:
            from MDAnalysis.lib.mdamath import triclinic_box

            box = triclinic_box(*np.asarray(self.cell, dtype=np.float64))
        counts = np.bincount(self.molecule)
        charges = np.asarray(self.molecule_charges, float)[self.molecule] / counts[self.molecule]
        return System.from_arrays([SYMBOLS[z - 1] for z in self.elements], self.positions, box=box,
                                  bonds=bonds_from_distances(self.elements, self.positions, self.cell),
                                  residues=self.molecule + 1, resnames=[resname] * len(self.elements),
                                  charges=charges)


@dataclass(eq=False)
class Dataset:
    """A list of `Frame` objects with metadata (reference method, units, provenance).

    Parameters
    ----------
    frames : list of Frame
        The structures with their labels (Å, eV, eV/Å, e).
    metadata : dict
        Reference method, units and provenance (JSON values).
    """

    frames: list[Frame] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):
        if isinstance(index, slice | list | np.ndarray):
            idx = range(len(self))[index] if isinstance(index, slice) else index
            return Dataset([self.frames[i] for i in idx], dict(self.metadata))
        return self.frames[index]

    @property
    def n_atoms(self) -> int:
        return int(sum(len(f.elements) for f in self.frames))

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers present."""
        return sorted({int(z) for f in self.frames for z in f.elements})

    def append(self, frame: Frame) -> None:
        n = len(frame.elements)
        for name in ("positions", "forces"):
            if np.shape(getattr(frame, name)) != (n, 3):
                raise InputError(f"frame {len(self)}: {name} has shape {np.shape(getattr(frame, name))}, expected ({n}, 3)")
        if np.shape(frame.charges) != (n,) or np.shape(frame.molecule) != (n,):
            raise InputError(f"frame {len(self)}: charges and molecule need one entry per atom ({n})")
        if frame.stress is not None and (frame.cell is None or np.shape(frame.stress) != (3, 3)):
            raise InputError(f"frame {len(self)}: a stress needs a cell and shape (3, 3), got {np.shape(frame.stress)}")
        if frame.esp_charges is not None and (np.shape(frame.esp_charges) != (n,)
                                              or not np.isfinite(frame.esp_charges).all()):
            raise InputError(f"frame {len(self)}: esp_charges need one finite entry per atom ({n})")
        self.frames.append(frame)

    def split(self, fractions=(0.9, 0.1), seed: int = 0) -> list["Dataset"]:
        """Random split of the frames into parts with the given fractions."""
        order = np.random.default_rng(seed).permutation(len(self))
        bounds = np.round(np.cumsum((0.0,) + tuple(fractions)) / sum(fractions) * len(self)).astype(int)
        return [self[list(order[a:b])] for a, b in zip(bounds[:-1], bounds[1:])]

    def __add__(self, other: "Dataset") -> "Dataset":
        return Dataset(self.frames + other.frames, {**other.metadata, **self.metadata})

    # -- storage -------------------------------------------------------------------------
    @property
    def has_stress(self) -> bool:
        """Whether any frame carries a stress label."""
        return any(f.stress is not None for f in self.frames)

    @property
    def has_esp_charges(self) -> bool:
        """Whether any frame carries ESP-fitted charges."""
        return any(f.esp_charges is not None for f in self.frames)

    def arrays(self) -> dict[str, np.ndarray]:
        """The flat arrays written to disk (``stress`` and ``esp_charges`` only where some frame has them; NaN
        marks the others)."""
        f = self.frames
        cells = np.stack([np.zeros((3, 3)) if x.cell is None else np.asarray(x.cell, float) for x in f]) if f else np.zeros((0, 3, 3))
        extra = {}
        if self.has_stress:
            extra["stress"] = np.stack([np.full((3, 3), np.nan) if x.stress is None else np.asarray(x.stress, float)
                                        for x in f])
        if self.has_esp_charges:
            extra["esp_charges"] = _cat([np.full(len(x.elements), np.nan) if x.esp_charges is None else x.esp_charges
                                         for x in f], np.float32, (0,))
        return {**extra,
            "n_atoms": np.array([len(x.elements) for x in f], dtype=np.int64),
            "energy": np.array([x.energy for x in f], dtype=np.float64),
            "cell": cells,
            "periodic": np.array([x.cell is not None for x in f], dtype=bool),
            "elements": _cat([x.elements for x in f], np.int64, (0,)),
            "positions": _cat([x.positions for x in f], np.float32, (0, 3)),
            "forces": _cat([x.forces for x in f], np.float32, (0, 3)),
            "charges": _cat([x.charges for x in f], np.float32, (0,)),
            "molecule": _cat([x.molecule for x in f], np.int64, (0,)),
            "n_molecules": np.array([len(x.molecule_charges) for x in f], dtype=np.int64),
            "molecule_charges": _cat([x.molecule_charges for x in f], np.int64, (0,)),
        }

    def hash(self) -> str:
        """SHA-256 of the stored arrays: identifies the training set in a model header."""
        h = hashlib.sha256()
        for key, value in sorted(self.arrays().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()

    def save(self, path) -> Path:
        """Write the dataset; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise InputError(f"{path} exists; choose another name or remove it (qmml never overwrites data)")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "units": UNITS, **self.metadata}
        with open(path, "wb") as fh:
            np.savez_compressed(fh, metadata=np.array(json.dumps(meta)), **self.arrays())
        return path

    @classmethod
    def load(cls, path) -> "Dataset":
        """Read a dataset written by `save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise InputError(f"dataset {path} not found") from None
        except (OSError, ValueError) as err:
            raise InputError(f"{path} is not a qmml dataset (.npz): {err}") from None
        try:
            meta = json.loads(str(arrays.pop("metadata")))
        except KeyError:
            raise InputError(f"{path} has no 'metadata' entry; it was not written by qmml.ml.Dataset.save") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: dataset format {meta.get('format')!r} version {meta.get('format_version')!r}; "
                             f"this qmml reads {FORMAT!r} version {FORMAT_VERSION}")
        missing = [k for k in _ATOM_KEYS + _FRAME_KEYS + ("n_molecules", "molecule_charges") if k not in arrays]
        if missing:
            raise InputError(f"{path} lacks the arrays {missing}")
        frames = []
        a0 = m0 = 0
        stress, esp = arrays.get("stress"), arrays.get("esp_charges")
        for i, n in enumerate(arrays["n_atoms"]):
            a1, m1 = a0 + int(n), m0 + int(arrays["n_molecules"][i])
            q_esp = None if esp is None or not np.isfinite(esp[a0:a1]).all() else esp[a0:a1].astype(np.float64)
            frames.append(Frame(
                elements=arrays["elements"][a0:a1], positions=arrays["positions"][a0:a1].astype(np.float64),
                energy=float(arrays["energy"][i]), forces=arrays["forces"][a0:a1].astype(np.float64),
                charges=arrays["charges"][a0:a1].astype(np.float64), molecule=arrays["molecule"][a0:a1],
                molecule_charges=arrays["molecule_charges"][m0:m1].astype(np.float64),
                cell=arrays["cell"][i] if arrays["periodic"][i] else None,
                stress=stress[i] if stress is not None and np.isfinite(stress[i]).all() else None, esp_charges=q_esp))
            a0, m0 = a1, m1
        meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "units")}
        return cls(frames, meta)

    @classmethod
    def load_many(cls, paths, root=None) -> "Dataset":
        """One dataset of the frames of every file that ``paths`` name, in order.

        Parameters
        ----------
        paths : iterable of str or path
            Dataset files written by `save`, or glob patterns (``*``, ``?``, ``[...]``) such as the chunk
            files of a labelling campaign (``campaigns/NAME/labels/chunk_*.npz``), whose matches are read
            in sorted order.
        root : str or path, optional
            Folder that relative paths and patterns are taken from (default: the working directory).

        A path or pattern that names no file is an `InputError` naming it; so is an empty ``paths``.
        """
        root = Path(root) if root is not None else Path()
        files = []
        for p in paths:
            p = str(p)
            if any(c in p for c in "*?["):
                matches = sorted(Path(f) for f in glob.glob(str(root / p)))
                if not matches:
                    raise InputError(f"no file matches {p!r} (relative to {root.resolve()})")
                files += matches
            else:
                files.append(root / p)
        if not files:
            raise InputError("no dataset file named")
        parts = [cls.load(f) for f in files]
        return cls([f for part in parts for f in part.frames],
                   {k: v for part in reversed(parts) for k, v in part.metadata.items()})


def _cat(parts, dtype, empty_shape):
    return np.concatenate([np.asarray(p, dtype=dtype) for p in parts]) if parts else np.zeros(empty_shape, dtype)
