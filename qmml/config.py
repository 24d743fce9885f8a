"""YAML job configuration, validated with pydantic (unknown keys are errors, not ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QMConfig(_Strict):
    selection: str | list[int] = Field(description="MDAnalysis selection string or atom indices")
    charge: int = 0
    multiplicity: int = Field(1, ge=1)
    method: str = "b3lyp"
    basis: str = "6-31g*"
    density_fit: bool = False
    conv_tol: float = Field(1e-9, gt=0)
    link: str | float = "scaled"
    boundary: Literal["none", "z1", "z2", "z3", "rc", "rcd", "shift"] = "rcd"
    buffer_A: float | None = Field(None, ge=0)
    complete: Literal["residue", "molecule"] | None = None
    allow_polar_cuts: bool = False
    allow_multiple_bond_cuts: bool = False
    allow_multiple_links: bool = False


class EnvironmentConfig(_Strict):
    type: Literal["fixed_charges"] = "fixed_charges"
    charge_radii_A: float | dict[str, float] | None = None


class JobConfig(_Strict):
    """A qmml job: what to read, how to partition it, and what to compute."""

    structure: list[str] = Field(description="topology and/or coordinate files, relative to the config file")
    guess_bonds: bool = False
    qm: QMConfig
    environment: EnvironmentConfig = EnvironmentConfig()
    vdw: Literal["lj"] | None = "lj"
    task: Literal["single_point"] = "single_point"
    output: str | None = Field(None, description="extended XYZ file for positions and forces (never overwritten)")

    @field_validator("structure", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return [value] if isinstance(value, str) else value


def load_config(path) -> tuple[JobConfig, Path]:
    """Read and validate a job file; returns the config and the folder relative paths refer to.

    Raises
    ------
    InputError
        One line naming the file, the key and the fix.
    """
    return _load(path, JobConfig)


def _load(path, schema):
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a YAML job file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise InputError(f"{path}:{line} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of keys (structure:, qm:, ...) at the top level")
    try:
        config = schema.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(k) for k in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            fix = "remove it or check its spelling"
        elif first["type"] == "missing":
            fix = "add it"
        else:
            fix = f"got {first.get('input')!r}"
        raise InputError(f"{path}: key '{key}': {first['msg']}; {fix}") from None
    return config, path.resolve().parent


class ModelArchitectureConfig(_Strict):
    cutoff: float = Field(5.0, gt=0, description="descriptor cutoff, Å")
    n_radial: int = Field(12, ge=2)
    n_channels: int = Field(10, ge=1)
    hidden: list[int] = [64, 64]
    n_members: int = Field(1, ge=1, description="committee size")
    coulomb_cutoff: float | None = Field(None, gt=0, description="explicit Coulomb between groups, cutoff Å")
    charge_groups: Literal["molecule", "structure"] = Field(
        "molecule", description="conserve charge per molecule, or per structure (charge transfer allowed)")


class TrainingLoopConfig(_Strict):
    energy_weight: float = Field(10.0, ge=0)
    force_weight: float = Field(1.0, ge=0)
    charge_weight: float = Field(100.0, ge=0)
    learning_rate: float = Field(2e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    max_epochs: int = Field(200, ge=1)
    patience: int = Field(25, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    max_minutes: float | None = Field(None, gt=0, description="wall-time budget for all members")


class TrainConfig(_Strict):
    """``qmml train``: datasets in, a model file (plus header, history and learning curve) out."""

    train: list[str] = Field(description="training dataset(s) (.npz from qmml.ml.Dataset.save)")
    validation: list[str] | None = None
    test: list[str] | None = Field(None, description="held-out set(s) evaluated once at the end")
    output: str = Field(description="model file to write (.pt; never overwritten)")
    description: str = ""
    model: ModelArchitectureConfig = ModelArchitectureConfig()
    training: TrainingLoopConfig = TrainingLoopConfig()

    @field_validator("train", "validation", "test", mode="before")
    @classmethod
    def _paths(cls, value):
        return [value] if isinstance(value, str) else value


def load_train_config(path) -> tuple[TrainConfig, Path]:
    """Read and validate a ``qmml train`` file (same error style as `load_config`)."""
    return _load(path, TrainConfig)
