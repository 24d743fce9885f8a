"""Condensed-phase labelling campaigns: periodic liquid boxes labelled with GFN2-xTB, chunk by chunk.

    python data/scripts/condensed_phase.py water                 # runs or continues the campaign
    python data/scripts/condensed_phase.py water --status        # what is done, what is left
    python data/scripts/condensed_phase.py water --max-minutes 60 --threads 1
    python data/scripts/condensed_phase.py water --evaluate water          # a model against all labels so far

    python data/scripts/condensed_phase.py ion_contacts          # ions pushed into contact (no dynamics)

    # teacher fidelity / active learning: relabel frames of a model's own run (extended XYZ with boxes)
    python data/scripts/condensed_phase.py water_npt_check --from-run npt_water_run --frames 40
    python data/scripts/condensed_phase.py water_npt_check --evaluate water

A campaign is a fixed plan of short trajectories (size, density, temperature, seed).  For each one,
in plan order:

1. *seed*: Langevin dynamics of the box at constant volume with the current shipped environment model
   (its first committee member; deuterium masses and 1 fs, which samples the same configurations), one frame every
   ``every`` steps after a burn-in, written to ``data/campaigns/NAME/seeds/traj_NNN.npz``;
2. *label*: every seed frame labelled by periodic GFN2-xTB (energy, forces, stress, Mulliken
   charges), written to ``data/campaigns/NAME/labels/chunk_NNN.npz``.

The ``ion_contacts`` plan runs no dynamics: its seeds are frames of other campaigns' seed files, each copied with
one ion moved into contact with another ion, a water or a solute (`compressed`), where the models had learned no
repulsion.

With ``--from-run``, the seeds are instead ``--frames`` frames spread evenly over the second half of
the run's ``trajectory.extxyz`` (the model's own configurations), in chunks of 10.

Each file is written to a temporary name and renamed, so an interrupted campaign loses at most the
chunk in progress; running the same command again resumes at the first chunk without a file.
Frames in which a molecule broke (bonds from covalent radii) end their trajectory and are not kept.
The labels are raw GFN2-xTB (dispersion included); `qmml.ml` subtracts the explicit dispersion when
a training set is assembled.  Costs (2 cores): ~6 s per 32-water frame, ~13 s per 64-water frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_datasets import langevin_frames  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGNS = ROOT / "data" / "campaigns"
#: as the shipped cluster datasets name it, so that both can train one model
REFERENCE = "GFN2-xTB (tblite {}), Mulliken charges".format(".".join(version("tblite").split(".")[:2]))


@dataclass(frozen=True)
class Trajectory:
    """One seed trajectory of the plan."""

    index: int
    n_waters: int
    density_g_cm3: float
    temperature_K: float
    seed: int
    frames: int
    every: int = 40
    burn_in: int = 1000
    run_frames: tuple = ()  # with --from-run: the run's trajectory frames this chunk takes
    solute: str = ""  # SMILES of one solute molecule at the box centre (rdkit + MMFF)
    ions: tuple = ()  # atomic numbers of monatomic ions (Na 11, Cl 17) placed at random
    stretch: bool = False  # every second frame also labelled with one X-H bond stretched to 1.05-1.6 Å
    seed_engine: str = "model"  # what drives the seed dynamics: the plan's shipped model, "classical", or
    # "contacts": no dynamics, copies of ``source``'s frames with one ion contact compressed (`compressed`)
    source: str = ""  # with seed_engine "contacts": a seed file of another campaign, relative to the campaigns folder


#: Formal charges of the monatomic ions the organic model knows.
ION_CHARGES = {11: 1, 17: -1}


def water_plan() -> list[Trajectory]:
    """Liquid water: 32-water boxes over 0.85-1.10 g/cm^3 and 280-400 K, and a few 64-water boxes."""
    plan = []
    for density in (0.85, 0.92, 0.97, 1.00, 1.03, 1.10):
        for temperature in (280.0, 300.0, 330.0, 360.0, 400.0):
            plan.append((32, density, temperature, 20))
    for density in (0.95, 1.00, 1.05):
        for temperature in (300.0, 350.0):
            plan.append((64, density, temperature, 10))
    return [Trajectory(k, n, d, t, 1000 + k, f) for k, (n, d, t, f) in enumerate(plan)]


def solutions_plan() -> list[Trajectory]:
    """Ions and the organic model's solutes in periodic water, ~1 g/cm^3, 300-360 K, with stretched X-H
    bonds in every second frame (the `organic` model must learn that a proton does not leave)."""
    from make_datasets import capped

    plan = []
    for density in (0.95, 1.00, 1.05):
        for temperature in (300.0, 330.0, 360.0):
            plan.append(dict(n=30, density=density, temperature=temperature, solute="", ions=(11, 17)))
    for temperature in (300.0, 330.0):
        plan.append(dict(n=60, density=1.0, temperature=temperature, solute="", ions=(11, 17, 11, 17)))
    solutes = [(capped("ALA"), ()), (capped("SER"), ()), (capped("ASP"), (11,)), (capped("LYS"), (17,)),
               (capped("HIS"), ()), (capped("MET"), ()), ("CNC(C)=O", ()), ("CC(=O)[O-]", (11,)),
               ("C[NH3+]", (17,)), ("CO", ()), ("c1ccccc1", ()), ("c1c[nH]cn1", ()), ("CS", ()), ("NC=O", ())]
    for smiles, ions in solutes:
        for temperature in (300.0, 350.0):
            plan.append(dict(n=32, density=1.0, temperature=temperature, solute=smiles, ions=ions))
    return [Trajectory(k, p["n"], p["density"], p["temperature"], 5000 + k, 10, every=40, burn_in=600,
                       solute=p["solute"], ions=tuple(p["ions"]), stretch=True, seed_engine="classical")
            for k, p in enumerate(plan)]


def ion_contacts_plan() -> list[Trajectory]:
    """Ions pushed into contact: every box of the `solutions` campaign that holds ions, and half the frames of
    the NaCl(aq) active-learning round `solutions_al5`, each frame copied once with one ion moved towards a
    partner (`compressed`).  The models learned no repulsion where two ions, or an ion and a water, come closer
    than in any frame of their training (Na+ and Cl- fused at 1.4-1.5 Å in 10 ps runs; docs/ml_environment.md)."""
    plan = [t for t in solutions_plan() if t.ions]
    chunks = [dict(source=f"solutions/seeds/traj_{t.index:03d}.npz", frames=t.frames, n=t.n_waters) for t in plan]
    chunks += [dict(source=f"solutions_al5/seeds/traj_{k:03d}.npz", frames=5, n=120) for k in (0, 1)]
    return [Trajectory(k, c["n"], 1.0, 300.0, 7000 + k, c["frames"], seed_engine="contacts", source=c["source"])
            for k, c in enumerate(chunks)]


PLANS = {"water": water_plan, "solutions": solutions_plan, "ion_contacts": ion_contacts_plan}
#: The shipped model that drives each planned campaign's seed dynamics.
SEED_MODELS = {"water": "water", "solutions": "organic", "ion_contacts": None}


def solvated_box(trajectory: Trajectory):
    """The trajectory's solute (at the centre), ions and waters at random positions and orientations in a
    cubic box of its density (all masses counted), no atom closer than 1.7 Å to an atom of another
    molecule (2.5 Å between heavy atoms, 3.0 Å from an ion), minimum image.

    Returns atomic numbers, positions (Å), cell (Å), molecule index and molecule charges (e); the
    solute is molecule 0 when there is one, ions and waters follow."""
    from make_datasets import embed, water

    from qmml import units
    from qmml.elements import MASSES_AMU, SYMBOLS
    from qmml.periodic.cell import minimum_image

    rng = np.random.default_rng(trajectory.seed)
    z_parts, x_parts, charges = [], [], []
    if trajectory.solute:
        z, x, q = embed(trajectory.solute, trajectory.seed)
        z_parts.append(z), x_parts.append(x), charges.append(q)
    n = trajectory.n_waters
    water_amu = MASSES_AMU["O"] + 2 * MASSES_AMU["H"]
    mass = water_amu * n + sum(MASSES_AMU[SYMBOLS[int(a) - 1]] for part in z_parts + [list(trajectory.ions)]
                            for a in part)
    length = (mass * units.AMU_PER_A3_G_PER_CM3 / trajectory.density_g_cm3) ** (1 / 3)
    cell = np.eye(3) * length
    placed_z = np.concatenate(z_parts) if z_parts else np.zeros(0, int)
    placed = np.concatenate(x_parts) + length / 2 if x_parts else np.zeros((0, 3))

    def fits(zc, xc):
        if not len(placed):
            return True
        d = minimum_image((xc[:, None, :] - placed[None, :, :]).reshape(-1, 3), cell).reshape(len(xc), -1, 3)
        r = np.linalg.norm(d, axis=-1)
        heavy = (zc[:, None] > 1) & (placed_z[None, :] > 1)
        ion = np.isin(zc, tuple(ION_CHARGES))[:, None] | np.isin(placed_z, tuple(ION_CHARGES))[None, :]
        return r.min() >= 1.7 and r[heavy].min(initial=9.0) >= 2.5 and r[ion].min(initial=9.0) >= 3.0

    tries = 0
    for zc in [np.array([ion]) for ion in trajectory.ions] + [np.array([8, 1, 1])] * n:
        while True:
            tries += 1
            if tries > 400000:
                raise RuntimeError(f"could not place the molecules of chunk {trajectory.index}; lower the density")
            centre = rng.uniform(0, length, 3)
            xc = water(rng, centre) if len(zc) == 3 else centre[None, :]
            if fits(zc, xc):
                break
        placed_z = np.concatenate([placed_z, zc])
        placed = np.concatenate([placed, xc])
        charges.append(ION_CHARGES[int(zc[0])] if len(zc) == 1 else 0)
    sizes = [len(p) for p in z_parts] + [1] * len(trajectory.ions) + [3] * n
    molecule = np.repeat(np.arange(len(sizes)), sizes)
    return placed_z, placed, cell, molecule, np.array(charges, dtype=float)


def stretched(frame, rng):
    """A copy of ``frame`` with one random X-H bond stretched to 1.05-1.6 Å along its direction."""
    from qmml.ml import Frame
    from qmml.ml.labelling import bonds_from_distances
    from qmml.periodic.cell import minimum_image

    z, x = frame.elements, frame.positions.copy()
    b = bonds_from_distances(z, x, frame.cell)
    b = b[(z[b[:, 0]] == 1) ^ (z[b[:, 1]] == 1)]
    i, j = b[rng.integers(len(b))]
    if z[i] == 1:
        i, j = j, i  # j is the hydrogen
    d = minimum_image(x[j] - x[i], frame.cell)
    x[j] = x[i] + d / np.linalg.norm(d) * rng.uniform(1.05, 1.6)
    return Frame(z, x, frame.energy, frame.forces, frame.charges, frame.molecule, frame.molecule_charges, frame.cell)


#: Distances (Å) an ion and its partner are set to in `compressed` frames, by pair of atomic numbers: from
#: where GFN2-xTB is strongly repulsive to about its minimum or first-shell distance (Na-Cl: minimum 2.4 Å,
#: +1.4 eV at 1.8 Å; Na+(H2O)6: Na-O 2.22 Å; Cl-(H2O)6: Cl-O 3.14 Å; data/scripts/ion_hydration_clusters.py).
CONTACT_RANGES_A = {(11, 17): (1.7, 2.8), (11, 11): (2.1, 3.4), (17, 17): (2.6, 3.8), (8, 11): (1.5, 2.3),
                    (1, 11): (1.8, 2.6), (1, 17): (1.4, 2.2), (8, 17): (2.4, 3.1), (6, 11): (2.0, 2.8),
                    (6, 17): (2.6, 3.4), (7, 11): (1.6, 2.4), (7, 17): (2.5, 3.2)}


def compressed(frame, rng):
    """A copy of ``frame`` with one random ion moved along its axis to a partner in another molecule, to a
    distance drawn uniformly from `CONTACT_RANGES_A`: half the time the nearest other ion (if there is one),
    otherwise one of the ion's three nearest atoms of other molecules.  A draw that puts the ion closer than 0.6 x
    the covalent radii to any third atom is drawn again.  Labels are not copied (NaN)."""
    from qmml.md.guard import close_contacts
    from qmml.ml import Frame

    for _ in range(20):
        x, (i, j) = _compress_one(frame, rng)
        close = close_contacts(frame.elements, x, frame.cell, 0.6)[:, :2].astype(int)
        third = np.any(close == i, axis=1) & ~np.all(np.isin(close, (i, j)), axis=1)
        if not third.any():
            break
    z = frame.elements
    return Frame(z, x, float("nan"), np.zeros_like(x), np.zeros(len(z)), frame.molecule, frame.molecule_charges,
                 frame.cell)


def _compress_one(frame, rng):
    from qmml.periodic.cell import minimum_image

    z, x = frame.elements, frame.positions.copy()
    ions = np.flatnonzero(np.isin(z, list(ION_CHARGES)))
    i = int(rng.choice(ions))
    d = minimum_image(x - x[i], frame.cell)
    r = np.linalg.norm(d, axis=1)
    other = np.flatnonzero(frame.molecule != frame.molecule[i])
    other_ions = np.intersect1d(other, ions)
    if len(other_ions) and rng.random() < 0.5:
        j = int(other_ions[np.argmin(r[other_ions])])
    else:
        near = [k for k in other[np.argsort(r[other])] if tuple(sorted((z[i], z[k]))) in CONTACT_RANGES_A]
        j = int(rng.choice(near[:3]))
    low, high = CONTACT_RANGES_A[tuple(sorted((int(z[i]), int(z[j]))))]
    x[i] = x[i] + d[j] * (1.0 - rng.uniform(low, high) / r[j])
    return x, (i, j)


#: Lennard-Jones sigma (Å) and epsilon (kcal/mol) of the classical seed force field: TIP3P water, Joung-Cheatham
#: (TIP3P) Na+ and Cl-, GAFF atom types for solutes (hc on C, hn/ho on N/O, c3, n, o, sh).
LJ_WATER = {8: (3.15061, 0.1521), 1: (0.0, 0.0)}
LJ_IONS = {11: (2.439, 0.0874), 17: (4.478, 0.0356)}
LJ_SOLUTE = {6: (3.40, 0.086), 7: (3.25, 0.17), 8: (2.96, 0.21), 16: (3.56, 0.25), 1: (2.65, 0.0157)}
LJ_POLAR_H = (1.07, 0.0157)
TIP3P_CHARGES = {8: -0.834, 1: 0.417}


class ClassicalForces:
    """A classical force field that drives seed dynamics where the shipped model cannot (returns a
    `qmml.ml.Label`): TIP3P charges and Lennard-Jones for water, Joung-Cheatham Na+/Cl-, MMFF94 charges
    and GAFF Lennard-Jones for a solute; Lorentz-Berthelot mixing; Coulomb (damped shifted force, the
    models' own form) and Lennard-Jones between molecules within ``cutoff_A``.  Each molecule keeps
    the shape of its starting structure through harmonic springs (``k`` eV/Å^2) on the distances of
    its 1-2 and 1-3 pairs (and 1-4 pairs of a solute, softer), so it stays whole by construction.

    Why: the shipped `organic` model pushes the protons of liquid water off with up to 35 eV/Å
    within 40-200 fs, even with walls (measured on the solutions plan's first boxes), and three
    waters collapse to O...H 1.3 Å; its seeds would be broken frames.  These seeds only choose
    configurations; GFN2-xTB labels them.
    """

    def __init__(self, elements, positions, cell, molecule, molecule_charges, solute: str = "", *,
                 cutoff_A: float = 9.0, k: float = 30.0):
        import networkx as nx

        from qmml import units
        from qmml.ml.labelling import bonds_from_distances

        z = np.asarray(elements)
        self.elements, self.cell, self.cutoff = z, cell, cutoff_A
        self.molecule = np.asarray(molecule)
        n = len(z)
        q, sigma, eps = np.zeros(n), np.zeros(n), np.zeros(n)
        solute_atoms = np.nonzero(self.molecule == 0)[0] if solute else np.zeros(0, int)
        if solute:
            q[solute_atoms] = mmff_charges(solute)
        bonds = bonds_from_distances(z, positions, cell)
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from(map(tuple, bonds))
        for a in range(n):
            if solute and self.molecule[a] == 0:
                polar = z[a] == 1 and any(z[b] in (7, 8) for b in graph.neighbors(a))
                sigma[a], eps[a] = LJ_POLAR_H if polar else LJ_SOLUTE[int(z[a])]
            elif z[a] in LJ_IONS:
                sigma[a], eps[a] = LJ_IONS[int(z[a])]
                q[a] = ION_CHARGES[int(z[a])]
            else:
                sigma[a], eps[a] = LJ_WATER[int(z[a])]
                q[a] = TIP3P_CHARGES[int(z[a])]
        self.q, self.sigma, self.eps = q, sigma, eps * units.KCAL_PER_MOL_EV
        springs, ks = [], []
        for a in range(n):
            depth = 3 if (solute and self.molecule[a] == 0) else 2
            for b, hops in nx.single_source_shortest_path_length(graph, a, cutoff=depth).items():
                if b > a and hops >= 1:
                    springs.append((a, b))
                    ks.append(k if hops < 3 else 0.2 * k)
        from qmml.periodic.cell import minimum_image

        self.springs = np.array(springs, dtype=int).reshape(-1, 2)
        self.k_springs = np.array(ks)
        self.lengths = np.linalg.norm(minimum_image(positions[self.springs[:, 1]] - positions[self.springs[:, 0]],
                                                    cell), axis=1)

    def __call__(self, positions):
        import torch

        from qmml.ml.labelling import Label
        from qmml.ml.model import dsf_coulomb_pairs
        from qmml.periodic.neighbours import neighbour_list
        from qmml.periodic.cell import minimum_image

        x = torch.as_tensor(positions, dtype=torch.float64).requires_grad_(True)
        i, j, s = neighbour_list(x.detach(), self.cutoff, self.cell)
        keep = torch.as_tensor(self.molecule)[i] != torch.as_tensor(self.molecule)[j]
        i, j, s = i[keep], j[keep], s[keep]
        r = torch.linalg.norm(x[j] + s - x[i], dim=1)
        q, sig, eps = (torch.as_tensor(v) for v in (self.q, self.sigma, self.eps))
        sij, eij = 0.5 * (sig[i] + sig[j]), torch.sqrt(eps[i] * eps[j])
        sr6 = (sij / r) ** 6
        sr6_c = (sij / self.cutoff) ** 6
        lj = 4 * eij * (sr6 * sr6 - sr6 - (sr6_c * sr6_c - sr6_c))
        energy = 0.5 * (lj + dsf_coulomb_pairs(q[i], q[j], r, self.cutoff)).sum()  # each pair twice
        a, b = self.springs.T
        d = torch.as_tensor(minimum_image(positions[b] - positions[a], self.cell))  # image choice, not a gradient
        d = d + (x[b] - x[a]) - (x[b] - x[a]).detach()
        stretch = torch.linalg.norm(d, dim=1) - torch.as_tensor(self.lengths)
        energy = energy + 0.5 * (torch.as_tensor(self.k_springs) * stretch ** 2).sum()
        (grad,) = torch.autograd.grad(energy, x)
        return Label(float(energy.detach()), -grad.numpy(), self.q.copy())


def mmff_charges(smiles: str) -> np.ndarray:
    """MMFF94 partial charges (e) of a molecule, in the atom order of `make_datasets.embed`."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    props = AllChem.MMFFGetMoleculeProperties(mol)
    return np.array([props.GetMMFFPartialCharge(k) for k in range(mol.GetNumAtoms())])


class ModelForces:
    """The shipped model as a force engine for `langevin_frames` (returns a `qmml.ml.Label`), with
    sampling-only walls that keep the molecules whole.

    The old models were trained on clusters whose atoms were never close to another molecule's: from
    random starting boxes they let two hydrogens of different waters collapse onto each other (0.7 Å)
    or a proton leave its water.  Frames like that are useless as seeds, so sampling adds flat-bottom
    walls: X-H bonds beyond ``bond_A``, and atoms of different molecules closer than ``contact_A``
    (2.3 Å for O-O), each with ``k`` eV/Å^2.  Labels never include them.
    """

    def __init__(self, model, elements, cell, molecule, molecule_charges, *, bond_A: float = 1.10,
                 contact_A: float = 1.45, k: float = 50.0):
        self.model, self.elements, self.cell, self.molecule = model, elements, cell, molecule
        self.molecule_charges = np.asarray(molecule_charges, float)
        self.total_charge = float(self.molecule_charges.sum())
        self.bond_A, self.contact_A, self.k = bond_A, contact_A, k
        self.bonds = None

    def _wall(self, forces, positions, i, j, distance, push_out: bool):
        from qmml.periodic.cell import minimum_image

        d = minimum_image(positions[j] - positions[i], self.cell)
        r = np.linalg.norm(d, axis=1)
        excess = np.clip(distance - r, 0.0, None) if push_out else -np.clip(r - distance, 0.0, None)
        f = (self.k * excess / r)[:, None] * d  # on j, along i -> j when pushed out
        np.add.at(forces, j, f)
        np.subtract.at(forces, i, f)

    def __call__(self, positions):
        import torch

        from qmml.ml.labelling import Label, bonds_from_distances
        from qmml.periodic.neighbours import neighbour_list

        z = self.elements
        if self.bonds is None:  # the X-H bonds of the starting (whole) structure
            b = bonds_from_distances(z, positions, self.cell)
            self.bonds = b[(z[b[:, 0]] == 1) | (z[b[:, 1]] == 1)]
        if self.model.charge_groups == "structure":  # the organic model: one group, Coulomb between molecules
            p = self.model.predict(z, positions, cell=self.cell, group_charges=[self.total_charge],
                                   molecules=self.molecule)
        else:
            p = self.model.predict(z, positions, cell=self.cell, groups=self.molecule,
                                   group_charges=self.molecule_charges)
        forces = p.forces.copy()
        self._wall(forces, positions, *self.bonds.T, self.bond_A, push_out=False)
        i, j, _ = neighbour_list(torch.as_tensor(positions), 2.3, self.cell)
        i, j = i.numpy(), j.numpy()
        keep = (self.molecule[i] != self.molecule[j]) & (i < j)
        i, j = i[keep], j[keep]
        contact = np.where((z[i] > 1) & (z[j] > 1), 2.3, self.contact_A)
        self._wall(forces, positions, i, j, contact, push_out=True)
        return Label(p.energy, forces, p.charges)


def whole(elements, positions, cell, molecule) -> bool:
    from qmml.ml.labelling import molecules_from_distances

    found = molecules_from_distances(elements, positions, cell)
    return len(np.unique(found)) == len(np.unique(molecule)) and \
        all(len(np.unique(found[molecule == m])) == 1 for m in np.unique(molecule))


def save_atomically(dataset, path: Path) -> None:
    tmp = path.with_name(path.stem + ".partial.npz")
    tmp.unlink(missing_ok=True)
    dataset.save(tmp)
    os.replace(tmp, path)


def seed(trajectory: Trajectory, path: Path, model_name: str):
    import qmml
    from qmml.ml import Dataset, Frame

    if trajectory.seed_engine == "contacts":
        source = Dataset.load(CAMPAIGNS / trajectory.source)
        rng = np.random.default_rng(trajectory.seed)
        data = Dataset(metadata={"reference": f"seed frames: {trajectory.source} with one ion contact compressed",
                                 "contact_ranges_A": {f"{a}-{b}": v for (a, b), v in CONTACT_RANGES_A.items()},
                                 "trajectory": asdict(trajectory)})
        for f in source.frames[:trajectory.frames]:
            data.append(compressed(f, rng))
        save_atomically(data, path)
        return data
    elements, x, cell, molecule, molecule_charges = solvated_box(trajectory)
    if trajectory.seed_engine == "classical":
        forces = ClassicalForces(elements, x, cell, molecule, molecule_charges, trajectory.solute)
        walls = {"engine": "classical: TIP3P, Joung-Cheatham ions, MMFF94 charges + GAFF LJ, shape springs"}
    else:
        model = qmml.load_model(model_name).select_members([0])  # one member: a third of the cost, same physics
        forces = ModelForces(model, elements, cell, molecule, molecule_charges)
        walls = {"bond_A": forces.bond_A, "contact_A": forces.contact_A, "O-O_A": 2.3, "k_eV_per_A2": forces.k}
    rng = np.random.default_rng(trajectory.seed)
    steps = trajectory.burn_in + trajectory.frames * trajectory.every
    engine = "classical force field" if trajectory.seed_engine == "classical" else \
        f"shipped '{model_name}' model (member 0)"
    data = Dataset(metadata={"reference": f"seed frames: {engine}, Langevin NVT", "walls": walls,
                             "trajectory": asdict(trajectory)})
    for positions, label in langevin_frames(forces, elements, x, temperature_K=trajectory.temperature_K,
                                            steps=steps, every=trajectory.every, burn_in=trajectory.burn_in,
                                            rng=rng):
        if not whole(elements, positions, cell, molecule):
            print(f"  trajectory {trajectory.index}: a molecule broke after {len(data)} frames; kept those",
                  flush=True)
            break
        data.append(Frame(elements, positions, label.energy, label.forces, label.charges, molecule,
                          molecule_charges, cell))
    if trajectory.stretch:  # the seed model's labels of these copies are meaningless; only GFN2's count
        for f in data.frames[1::2]:
            data.append(stretched(f, rng))
    save_atomically(data, path)
    return data


def label(seeds, trajectory: Trajectory, path: Path):
    from qmml.errors import QmmlError
    from qmml.ml import Dataset, Frame
    from qmml.ml.labelling import XTBLabeller

    data = Dataset(metadata={"reference": REFERENCE, "trajectory": asdict(trajectory)})
    labeller = None
    for k, f in enumerate(seeds.frames):
        if labeller is None:
            labeller = XTBLabeller(f.elements, charge=int(round(np.sum(f.molecule_charges))), cell=f.cell)
        try:
            lab = labeller(f.positions)
        except QmmlError as err:
            print(f"  chunk {trajectory.index} frame {k}: {err}; frame skipped", flush=True)
            labeller = None
            continue
        data.append(Frame(f.elements, f.positions, lab.energy, lab.forces, lab.charges, f.molecule,
                          f.molecule_charges, f.cell, lab.stress))
    save_atomically(data, path)
    return data


def run_plan(run_dir: Path, n_frames: int, chunk: int = 10) -> list[Trajectory]:
    """Chunks of frames taken evenly from the second half of a run's trajectory."""
    from ase.io import iread

    path = run_dir / "trajectory.extxyz"
    if not path.exists():
        sys.exit(f"{path} not found: give a run folder written with a TrajectoryWriter('trajectory.extxyz')")
    n_total = sum(1 for _ in iread(path, index=":"))
    picks = np.unique(np.linspace(n_total // 2, n_total - 1, n_frames).round().astype(int))
    parts = np.array_split(picks, max(1, -(-len(picks) // chunk)))
    return [Trajectory(k, 0, 0.0, 0.0, 0, len(part), run_frames=tuple(int(i) for i in part))
            for k, part in enumerate(parts)]


def run_seeds(run_dir: Path, trajectory: Trajectory, path: Path):
    """The chunk's frames of the run, unlabelled; molecules from covalent radii, charges from the run's."""
    from ase.io import iread

    from qmml.ml import Dataset, Frame
    from qmml.ml.labelling import molecules_from_distances

    data = Dataset(metadata={"reference": "unlabelled seed frames", "run": str(run_dir),
                             "trajectory": asdict(trajectory)})
    wanted = set(trajectory.run_frames)
    for i, atoms in enumerate(iread(run_dir / "trajectory.extxyz", index=":")):
        if i not in wanted:
            continue
        z, x = atoms.numbers, atoms.positions
        cell = np.asarray(atoms.cell) if atoms.pbc.all() else None  # an open droplet stays open
        molecule = molecules_from_distances(z, x, cell)
        charges = atoms.arrays.get("charges", np.zeros(len(z)))
        molecule_charges = np.round(np.bincount(molecule, weights=charges))
        data.append(Frame(z, x, float("nan"), np.zeros_like(x), np.zeros(len(z)), molecule, molecule_charges, cell))
    save_atomically(data, path)
    return data


def same_plan(old: dict, new: dict) -> bool:
    """Whether a plan file describes this plan (fields added to `Trajectory` since, at their defaults, do not
    count as a change)."""
    fields = Trajectory.__dataclass_fields__
    defaults = {k: f.default for k, f in fields.items() if f.default is not dataclasses.MISSING}

    def essential(chunk):
        return {k: v for k, v in chunk.items() if k not in defaults or json.dumps(v) != json.dumps(defaults[k])}

    return old.get("from_run") == new.get("from_run") and \
        [essential(c) for c in old["chunks"]] == [essential(c) for c in new["chunks"]]


def status(name: str, plan: list[Trajectory]) -> tuple[int, int]:
    folder = CAMPAIGNS / name
    done = [t for t in plan if (folder / "labels" / f"chunk_{t.index:03d}.npz").exists()]
    frames = sum(t.frames for t in done)
    return len(done), frames


def labelled(name: str):
    """Every labelled chunk of a campaign as one dataset."""
    from qmml.ml import Dataset

    files = sorted((CAMPAIGNS / name / "labels").glob("chunk_[0-9][0-9][0-9].npz"))
    if not files:
        sys.exit(f"campaign {name} has no labelled chunk yet")
    return Dataset.load_many(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaign", help=f"a planned campaign ({', '.join(sorted(PLANS))}) or, with --from-run, "
                                         "a new name for relabelling a run")
    parser.add_argument("--from-run", type=Path, default=None, help="run folder whose trajectory gives the seeds")
    parser.add_argument("--frames", type=int, default=40, help="frames taken from the run (--from-run)")
    parser.add_argument("--model", default=None, help="model that drives the seed dynamics (default: the plan's)")
    parser.add_argument("--threads", type=int, default=None, help="threads for tblite and torch")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the chunk that passes this")
    parser.add_argument("--status", action="store_true", help="print progress and exit")
    parser.add_argument("--campaigns-dir", type=Path, default=None,
                        help="where campaign folders live (default: data/campaigns of this checkout)")
    parser.add_argument("--evaluate", metavar="MODEL", default=None,
                        help="print a model's errors (forces, charges, stress, pressure) on every labelled frame")
    args = parser.parse_args(argv)
    global CAMPAIGNS
    if args.campaigns_dir is not None:
        CAMPAIGNS = args.campaigns_dir
    folder = CAMPAIGNS / args.campaign
    if args.evaluate:
        import qmml
        from qmml.ml import evaluate

        data = labelled(args.campaign)
        print(json.dumps(evaluate(qmml.load_model(args.evaluate), data), indent=1))
        return
    if args.from_run is None and args.campaign not in PLANS:
        sys.exit(f"unknown campaign {args.campaign!r}: choose one of {sorted(PLANS)} or give --from-run")
    plan_file = folder / "plan.json"
    if args.from_run is not None:
        plan = run_plan(args.from_run, args.frames)
    elif args.campaign in PLANS:
        plan = PLANS[args.campaign]()
    (folder / "seeds").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    text = json.dumps({"from_run": None if args.from_run is None else str(args.from_run),
                       "chunks": [asdict(t) for t in plan]}, indent=1)
    if plan_file.exists() and not same_plan(json.loads(plan_file.read_text()), json.loads(text)):
        sys.exit(f"{plan_file} differs from this plan; a changed plan needs a new campaign name")
    plan_file.write_text(text)
    n_done, n_frames = status(args.campaign, plan)
    print(f"campaign {args.campaign}: {n_done}/{len(plan)} chunks labelled (up to {n_frames} frames)", flush=True)
    if args.status:
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    from qmml.ml import Dataset

    start = time.time()
    for t in sorted(plan, key=lambda t: (t.seed % 5 if args.from_run is None else 0, t.index)):
        # planned chunks in five interleaved rounds, so that a partial campaign already spans the plan
        chunk = folder / "labels" / f"chunk_{t.index:03d}.npz"
        if chunk.exists():
            continue
        t0 = time.time()
        seed_file = folder / "seeds" / f"traj_{t.index:03d}.npz"
        if seed_file.exists():
            seeds = Dataset.load(seed_file)
        elif args.from_run is not None:
            seeds = run_seeds(args.from_run, t, seed_file)
        else:
            seeds = seed(t, seed_file, args.model or SEED_MODELS[args.campaign])
        t1 = time.time()
        data = label(seeds, t, chunk)
        what = f"frames {t.run_frames[0]}-{t.run_frames[-1]} of {args.from_run}" if args.from_run is not None else \
            f"{t.source} with ion contacts compressed" if t.source else \
            f"{t.solute + ' ' if t.solute else ''}{'ions ' + str(t.ions) + ' ' if t.ions else ''}" \
            f"{t.n_waters} waters, {t.density_g_cm3} g/cm^3, {t.temperature_K:.0f} K"
        print(f"chunk {t.index:03d}: {what}: {len(data)} frames (seed {t1 - t0:.0f} s, label {time.time() - t1:.0f} s)",
              flush=True)
        if args.max_minutes is not None and (time.time() - start) / 60 > args.max_minutes:
            print("time limit reached; run the same command to continue", flush=True)
            break
    n_done, n_frames = status(args.campaign, plan)
    print(f"campaign {args.campaign}: {n_done}/{len(plan)} chunks labelled", flush=True)


if __name__ == "__main__":
    main()
