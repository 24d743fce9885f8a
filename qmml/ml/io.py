"""Model files: a state dict plus a JSON header, readable with ``torch.load(weights_only=True)``.

The header states what a user must know before trusting a model: elements, cutoff, units, reference
level of theory, the SHA-256 of the training set, test-set errors and the qmml version that wrote it.
A copy of the header is written next to the model as ``<name>.json`` for reading without torch.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from .._version import __version__
from ..elements import SYMBOLS
from ..errors import InputError
from .baseline import BondBaseline
from .dispersion import D3Dispersion
from .model import EnvironmentModel

FORMAT = "qmml-environment-model"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "forces": "eV/Angstrom", "charges": "e", "positions": "Angstrom",
         "potential": "V", "cutoff": "Angstrom"}
#: Folder of the models shipped with qmml.
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "data" / "models"


class ModelFileError(InputError):
    """A model file that cannot be used: corrupted, from another program or version, or inconsistent."""


def save_model(model: EnvironmentModel, path, *, reference: str, training_set_hash: str = "", metrics=None,
               description: str = "", overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` (and its header to ``path`` with suffix .json).

    Parameters
    ----------
    description : str
        Free text stored in the header.
    overwrite : bool
        Replace an existing file (default: refuse).
    model : EnvironmentModel
    path : str or path
        The ``.pt`` file to write; never overwritten unless ``overwrite``.
    reference : str
        Level of theory of the labels, e.g. "GFN2-xTB (tblite 0.8), Mulliken charges".
    training_set_hash : str
        `qmml.ml.Dataset.hash` of the training set.
    metrics : dict, optional
        Test-set errors to record (units in the key names).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; choose another name or pass overwrite=True")
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "qmml_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elements": [SYMBOLS[z - 1] for z in model.elements], "cutoff_A": model.cutoff,
        "units": UNITS, "reference": reference, "training_set_sha256": training_set_hash,
        "dtype": str(model.dtype).replace("torch.", ""), "architecture": model.config(),
        "metrics": metrics or {}, "description": description,
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "header": json.dumps(header),
                "state_dict": state}, path)
    path.with_suffix(".json").write_text(json.dumps(header, indent=2) + "\n")
    return path


def read_header(name_or_path) -> dict:
    """The header of a shipped model (by name) or a model file (no model is built).

    Parameters
    ----------
    name_or_path : str or path
        A shipped model's name or a ``.pt`` file.
    """
    return _read(_resolve(name_or_path))[0]


def model_path(name_or_path) -> Path:
    """The file of a shipped model (by name) or of a model path; `InputError` when there is none."""
    return _resolve(name_or_path)


def _resolve(name_or_path) -> Path:
    path = Path(name_or_path)
    if path.suffix == "" and not path.exists():
        shipped = SHIPPED_MODELS / f"{name_or_path}.pt"
        if shipped.exists():
            return shipped
        available = sorted(p.stem for p in SHIPPED_MODELS.glob("*.pt"))
        raise InputError(f"no shipped model {str(name_or_path)!r} (available: {', '.join(available) or 'none'}); "
                         "give a name from that list or the path of a .pt file")
    if not path.exists():
        raise InputError(f"model file {path} not found")
    return path


def _read(path: Path):
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path} is not a readable qmml model file ({first[:160]}); it is corrupted or "
                             "was written by another program: regenerate it with `qmml train`") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a torch file but not a qmml environment model (no {FORMAT!r} marker); "
                             "save models with qmml.ml.save_model or `qmml train`")
    if blob.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format version {blob.get('format_version')!r}; this qmml "
                             f"({__version__}) reads version {FORMAT_VERSION}: retrain it or use the matching qmml")
    try:
        header = json.loads(blob["header"])
        state = blob["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: damaged header ({err}); regenerate the model with `qmml train`") from None
    return header, state


def load_model(name_or_path, *, dtype=torch.float64, device=None, elements=None) -> EnvironmentModel:
    """A shipped model by name (``"water"``, ``"organic"``) or a model file by path.

    Parameters
    ----------
    name_or_path : str or path
        A shipped model's name (``qmml model-info`` lists them) or a ``.pt`` file written by `save_model`.
    dtype : torch.dtype
        float64 (default; exact finite-difference forces) or float32 (faster).
    device : str or torch.device, optional
        "cpu" or "cuda"; default CUDA when available, else CPU.
    elements : iterable of str or int, optional
        Elements the caller needs; a model that lacks any of them is refused here rather than at
        the first evaluation.
    """
    path = _resolve(name_or_path)
    header, state = _read(path)
    arch = dict(header.get("architecture", {}))
    try:
        symbols = header["elements"]
        numbers = [SYMBOLS.index(s) + 1 for s in symbols]
        if arch.get("elements") != numbers:
            raise ModelFileError(f"{path}: header elements {symbols} do not match the architecture's "
                                 f"{arch.get('elements')}; the file was edited or damaged: regenerate it")
        if arch.get("dispersion") is not None:
            try:
                D3Dispersion.from_dict(arch["dispersion"])
            except InputError as err:
                raise ModelFileError(f"{path}: its dispersion term cannot be read ({err})") from None
        if arch.get("baseline") is not None:
            try:
                BondBaseline.from_dict(arch["baseline"])
            except InputError as err:
                raise ModelFileError(f"{path}: its baseline term cannot be read ({err})") from None
        # files written before these options have no "dispersion"/"baseline" key: None, no such term
        broken = [key for key, value in state.items()
                  if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
        if broken:
            raise ModelFileError(f"{path}: weights {', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''} are not "
                                 "finite (NaN or inf; training diverged or the file was damaged); retrain the model or "
                                 "use another")
        model = EnvironmentModel(**arch)
        model.load_state_dict(state, strict=True)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ModelFileError(f"{path}: weights do not fit the header's architecture ({first[:200]}); "
                             "the file is damaged or mixes two models: regenerate it with `qmml train`") from None
    if elements is not None:
        from ..elements import ATOMIC_NUMBERS, normalize_symbol

        want = {int(e) if not isinstance(e, str) else ATOMIC_NUMBERS[normalize_symbol(e)] for e in elements}
        missing = sorted(want - set(numbers))
        if missing:
            raise ModelFileError(f"{path} covers {symbols}, not {[SYMBOLS[z - 1] for z in missing]}; "
                                 "choose a model trained on every element of the environment")
    model.header = header
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device=device, dtype=dtype).eval()
