"""`StepGuard`: the physics checks `Simulation` makes after every step, so that a run that blows up stops
and says so instead of writing nonsense.

A step trips the guard when

* its energy, forces, stress, positions, velocities or cell are not finite;
* the kinetic temperature exceeds ``temperature_factor`` times the thermostat's target, or, without a
  thermostat, the larger of ``max_temperature_K`` and ``temperature_factor`` times the starting temperature;
* an atom moved more than ``max_displacement_A`` in one step;
* without a thermostat (NVE), the conserved energy moved more than ``energy_tolerance_eV_per_atom`` per
  atom from the run's first step;
* a covalent bond of the topology outside the QM region got longer than ``max_bond_factor`` times the sum of
  its atoms' covalent radii (1.46 Å for O-H at the default 1.5): an environment model that lets a proton
  leave its water, or a molecule fall apart, has left the region its training covers.  Bonds with a QM atom
  are not checked (breaking them is the QM region's chemistry), nor H-H "bonds" (CHARMM's TIP3P lists one);
* two atoms, bonded or not, came closer than ``min_contact_factor`` times the sum of their covalent radii
  (0.7: Na-Cl 1.88 Å, O-H 0.68 Å).  Real contacts stay above about 0.85 (a bond squeezed by a hot step, Na+ on
  a water oxygen at 2.2 Å, 0.95); below, a model without short-range repulsion is fusing atoms, as an ML
  environment did with Na+ and Cl- at 1.45 Å.

The tripped step is never reported or checkpointed: the checkpoint keeps the last good step and
`UnstableDynamicsError` names what tripped, the step and the atoms.  The checks are O(N) array
operations, negligible beside a force evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, UnstableDynamicsError


def _positive(name: str, value) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise InputError(f"StepGuard: {name}={value} must be a positive finite number")
    return value


@dataclass(frozen=True)
class StepGuard:
    """Limits of a sane MD step (job file: ``md.guard``).

    Parameters
    ----------
    temperature_factor : float
        Trip when the kinetic temperature exceeds this multiple of the thermostat's target (or of the
        starting temperature without a thermostat).
    max_temperature_K : float
        Without a thermostat: trip above this kinetic temperature (or ``temperature_factor`` times the
        starting temperature, whichever is higher), K.
    max_displacement_A : float
        Trip when an atom moves further than this in one step, Å.
    energy_tolerance_eV_per_atom : float
        Without a thermostat: trip when the conserved energy has changed by more than this per atom since
        the run's first step, eV.
    max_bond_factor : float or None
        Trip when a topology bond outside the QM region is longer than this multiple of its atoms' covalent
        radii (PySCF's table); None: no bond check.
    min_contact_factor : float or None
        Trip when two atoms are closer than this multiple of their covalent radii; None: no contact check.
    """

    temperature_factor: float = 5.0
    max_temperature_K: float = 3000.0
    max_displacement_A: float = 1.0
    energy_tolerance_eV_per_atom: float = 0.05
    max_bond_factor: float | None = 1.5
    min_contact_factor: float | None = 0.7

    def __post_init__(self):
        for name in ("temperature_factor", "max_temperature_K", "max_displacement_A", "energy_tolerance_eV_per_atom"):
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        if self.temperature_factor <= 1:
            raise InputError(f"StepGuard: temperature_factor={self.temperature_factor} must be above 1")
        if self.max_bond_factor is not None:
            object.__setattr__(self, "max_bond_factor", _positive("max_bond_factor", self.max_bond_factor))
            if self.max_bond_factor <= 1:
                raise InputError(f"StepGuard: max_bond_factor={self.max_bond_factor} must be above 1 (bonds at "
                                 "equilibrium are about 1x their covalent radii)")
        if self.min_contact_factor is not None:
            object.__setattr__(self, "min_contact_factor", _positive("min_contact_factor", self.min_contact_factor))
            if self.min_contact_factor >= 1:
                raise InputError(f"StepGuard: min_contact_factor={self.min_contact_factor} must be below 1 (bonded "
                                 "atoms sit at about 1x their covalent radii)")

    # -- checks -------------------------------------------------------------------------------
    def check_finite(self, state, system, what: str) -> None:
        """Every number of ``state`` is finite, else `UnstableDynamicsError` naming the atoms."""
        result = state.result
        per_atom = {"positions": state.positions, "velocities": state.velocities, "forces": state.forces}
        for name, values in per_atom.items():
            bad = np.nonzero(~np.isfinite(np.asarray(values, dtype=np.float64)).all(axis=1))[0]
            if len(bad):
                raise UnstableDynamicsError(f"{what}: the {name} of {_atoms(system, bad)} are not finite")
        extras = {"energy": state.potential_energy, "stress": state.stress, "cell": state.cell,
                  "energy_std": getattr(result, "energy_std", 0.0)}
        for name, value in extras.items():
            if value is not None and not np.all(np.isfinite(value)):
                raise UnstableDynamicsError(f"{what}: the {name} is not finite")

    def check_step(self, simulation, previous, state, reference_conserved: float | None) -> None:
        """Raise `UnstableDynamicsError` when the step ``previous`` -> ``state`` breaks a limit."""
        system = simulation.system
        what = f"step {state.step} ({state.time_fs:.1f} fs)"
        self.check_finite(state, system, what)
        target = simulation.integrator.temperature_K
        temperature = simulation.temperature(state)
        if target is not None and target > 0:
            limit, why = self.temperature_factor * target, f"{self.temperature_factor:g} x the thermostat's {target:g} K"
        else:
            start = simulation.start_temperature_K
            limit = max(self.max_temperature_K, self.temperature_factor * start)
            why = (f"max_temperature_K={self.max_temperature_K:g} K" if limit == self.max_temperature_K
                   else f"{self.temperature_factor:g} x the starting {start:.0f} K")
        if temperature > limit:
            kinetic = 0.5 * simulation.masses * np.sum(np.asarray(state.velocities) ** 2, axis=1)
            raise UnstableDynamicsError(f"{what}: kinetic temperature {temperature:.4g} K is above the limit {limit:.4g} K "
                                        f"({why}); fastest {_atoms(system, _largest(kinetic))}")
        moved = np.linalg.norm(np.asarray(state.positions) - np.asarray(previous.positions), axis=1)
        if moved.max() > self.max_displacement_A:
            raise UnstableDynamicsError(f"{what}: {_atoms(system, _largest(moved))} moved up to {moved.max():.3g} Å in "
                                        f"one step (limit max_displacement_A={self.max_displacement_A:g} Å)")
        self.check_bonds(simulation, state, what)
        if self.min_contact_factor is not None:
            cell = state.cell if state.cell is not None else system.cell
            contacts = close_contacts(system.atomic_numbers, state.positions, cell, self.min_contact_factor)
            if len(contacts):
                i, j, d = contacts[0]
                raise UnstableDynamicsError(
                    f"{what}: {system.atom_label(int(i))} and {system.atom_label(int(j))} are {d:.2f} Å apart, closer "
                    f"than min_contact_factor={self.min_contact_factor:g} x their covalent radii ({len(contacts)} "
                    "pair(s)): the potential lets atoms fuse (no short-range repulsion where it was not trained)")
        if (target is None) and reference_conserved is not None:
            change = simulation.integrator.conserved_energy(state, simulation.masses) - reference_conserved
            if abs(change) > self.energy_tolerance_eV_per_atom * system.n_atoms:
                force = np.linalg.norm(np.asarray(state.forces), axis=1)
                raise UnstableDynamicsError(
                    f"{what}: the conserved energy changed by {change:+.4g} eV since the run began, more than "
                    f"energy_tolerance_eV_per_atom={self.energy_tolerance_eV_per_atom:g} eV x {system.n_atoms} atoms; "
                    f"largest forces on {_atoms(system, _largest(force))}")


    def check_bonds(self, simulation, state, what: str) -> None:
        """`UnstableDynamicsError` when a topology bond outside the QM region is longer than ``max_bond_factor``
        times its atoms' covalent radii."""
        system = simulation.system
        bonds = system.bonds
        if self.max_bond_factor is None or bonds is None or len(bonds) == 0:
            return
        from ..elements import covalent_radius_A
        from ..periodic.cell import minimum_image

        partition = getattr(simulation.potential, "partition", None)
        if partition is not None and len(partition.qm_atoms):
            bonds = bonds[~np.isin(bonds, partition.qm_atoms).any(axis=1)]
        z = system.atomic_numbers
        bonds = bonds[(z[bonds] > 1).any(axis=1)]  # CHARMM's TIP3P lists H1-H2 (1.51 Å) as a bond for SHAKE
        x = np.asarray(state.positions)
        cell = state.cell if state.cell is not None else system.cell
        length = np.linalg.norm(minimum_image(x[bonds[:, 1]] - x[bonds[:, 0]], cell), axis=1)
        limit = self.max_bond_factor * covalent_radius_A(z[bonds]).sum(axis=1)
        over = np.flatnonzero(length > limit)
        if len(over):
            k = over[np.argmax(length[over] / limit[over])]
            raise UnstableDynamicsError(
                f"{what}: the bond {system.atom_label(int(bonds[k, 0]))} - {system.atom_label(int(bonds[k, 1]))} is "
                f"{length[k]:.2f} Å long, more than max_bond_factor="
                f"{self.max_bond_factor:g} x its covalent radii ({limit[k]:.2f} Å; {len(over)} bond(s) over): a molecule "
                "of the environment is breaking (a proton leaving its water?), which its model was not trained for")


def close_contacts(atomic_numbers, positions_A, cell, factor: float) -> np.ndarray:
    """Pairs of atoms closer than ``factor`` times the sum of their covalent radii (PySCF's table), as rows
    (i, j, distance in Å), i < j, the closest relative to its limit first; minimum image in a periodic ``cell``."""
    import torch

    from ..elements import covalent_radius_A
    from ..periodic.neighbours import neighbour_list

    radius = covalent_radius_A(atomic_numbers)
    x = torch.as_tensor(np.asarray(positions_A, dtype=np.float64))
    i, j, shift = neighbour_list(x, factor * 2 * float(radius.max()), cell)
    i, j = i.numpy(), j.numpy()
    d = np.linalg.norm((x[j] + shift - x[i]).numpy(), axis=1)
    ratio = d / (radius[i] + radius[j])
    close = np.flatnonzero((i < j) & (ratio < factor))
    close = close[np.argsort(ratio[close])]
    return np.column_stack([i[close], j[close], d[close]])


def _largest(values, n: int = 3) -> np.ndarray:
    return np.argsort(np.asarray(values))[::-1][:n]


def _atoms(system, indices) -> str:
    """'atom 3 (OW, WAT 2), atom 5 (...)': system-wide indices with their names."""
    indices = [int(i) for i in indices]
    more = f" and {len(indices) - 5} more" if len(indices) > 5 else ""
    return ", ".join(system.atom_label(i) for i in indices[:5]) + more
