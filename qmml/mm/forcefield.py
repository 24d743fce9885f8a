"""A classical force field through OpenMM: the structure's OpenMM ``System`` and its energy and forces.

`MMForceField` parameterizes a whole structure once (amber14 ff14SB + TIP3P by default, or the user's
force-field files, or an AMBER PRMTOP).  Residues the force field has no template for get a *ghost*
template: zero charge, zero Lennard-Jones, no bonded terms.  They are legal only inside the QM region
(`MMForceField.check_parameterized`), which is how a ligand in the QM region needs no ligand force field.

`MMForceField.context(qm_atoms, inner_regions)` gives an `MMContext`: the same System with

* the QM atoms' charges and Lennard-Jones well depths set to zero (QM-MM electrostatics are the QM
  embedding; QM-MM repulsion and dispersion are the Hamiltonian's van der Waals term), and every
  1-4 exception that involves a QM atom zeroed;
* every interaction inside one region removed (the QM atoms are always a region; ``inner_regions`` adds
  others, such as the ML shell, or the QM atoms and the shell together): bonded terms whose atoms all
  lie in one region get zero force constants and every pair inside a region becomes an exclusion.

Its energy is therefore E_MM(all) - sum_R E_MM(R), the subtractive coupling of an ML shell to the MM
layer (`qmml.environments.layered`): MM-MM, shell-MM and the bonded terms that cross a region's
boundary.  A bonded term that joins two regions (the QM region and the shell, when they are separate
regions) stays: the force field then holds the bond the QM/ML cut leaves to no one else.

Units: the public API is in Å, eV and e; OpenMM's nm and kJ/mol stay inside this module.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
from dataclasses import dataclass

import numpy as np

from .. import units
from ..elements import MASSES_AMU
from ..errors import InputError
from ..system import System, normalize_box

#: amber14: ff14SB protein, TIP3P water and its Joung-Cheatham ions.
DEFAULT_FORCEFIELD = ("amber14-all.xml", "amber14/tip3p.xml")
#: Real-space cutoff of PME (periodic structures), Å.
DEFAULT_CUTOFF_A = 10.0
NM_A = units.NM_A
_ENERGY_EV = units.KJ_PER_MOL_EV
_FORCE_EV_A = units.KJ_PER_MOL_EV / NM_A
#: Bonded forces and the parameters set to zero inside the inner region (the rest are kept).
_BONDED = {"HarmonicBondForce": ("Bond", 2, (3,)), "HarmonicAngleForce": ("Angle", 3, (4,)),
           "PeriodicTorsionForce": ("Torsion", 4, (6,))}
_IGNORED = ("CMMotionRemover",)


def _openmm():
    try:
        import openmm
        import openmm.app as app
    except ImportError:
        raise InputError("the MM layer needs OpenMM: pip install 'qmml[mm]' (or pip install openmm)") from None
    return openmm, app


@dataclass(frozen=True)
class GhostResidue:
    """A residue the force field has no template for, given zero parameters.

    Attributes
    ----------
    label : str
        Residue name and number as in the structure file.
    atoms : ndarray of int
        Its atoms (0-based, system-wide).
    """

    label: str
    atoms: np.ndarray


class MMForceField:
    """A structure parameterized by a classical force field (OpenMM).

    Build with `MMForceField.from_pdb` or `MMForceField.from_amber`.

    Attributes
    ----------
    system : qmml.System
        The structure as OpenMM reads it: elements, positions (Å), masses, box, every bond of the
        force-field topology, residues, names and the force field's charges (e).
    openmm_system : openmm.System
        The parameterized System (no constraints, flexible water, no centre-of-mass motion remover).
    ghosts : tuple of GhostResidue
        Residues without parameters (they must lie in the QM region).
    source : str
        Where the parameters came from, for messages.
    """

    def __init__(self, system: System, openmm_system, ghosts=(), source: str = ""):
        self.system = system
        self.openmm_system = openmm_system
        self.ghosts = tuple(ghosts)
        self.source = source
        for force in openmm_system.getForces():
            name = force.__class__.__name__
            if name not in _BONDED and name != "NonbondedForce" and name not in _IGNORED:
                raise InputError(f"{source}: the force field has a {name}, which qmml's MM layer does not handle "
                                 f"(supported: NonbondedForce, {', '.join(_BONDED)}); choose another force field")

    def __repr__(self) -> str:
        return f"MMForceField({self.system.n_atoms} atoms, {self.source})"

    @property
    def charges(self) -> np.ndarray:
        """The force field's charge of every atom, e (0 on ghost residues)."""
        return self.system.charges

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_pdb(cls, path, forcefield=DEFAULT_FORCEFIELD, *, cutoff_A: float = DEFAULT_CUTOFF_A,
                 ewald_tolerance: float = 5e-4) -> "MMForceField":
        """Parameterize a PDB file (hydrogens included) with OpenMM force-field files.

        Parameters
        ----------
        path : str or path
            PDB (or PDBx/mmCIF, by extension ``.cif``) with every hydrogen; a CRYST1 record makes it
            periodic (PME).  Non-standard residues need CONECT records for their bonds.
        forcefield : sequence of str
            OpenMM force-field XML files (OpenMM's own names or paths); default amber14 ff14SB + TIP3P.
        cutoff_A : float
            Real-space cutoff of PME, Å (periodic structures; open ones use no cutoff).
        ewald_tolerance : float
            OpenMM's ``ewaldErrorTolerance``.
        """
        openmm, app = _openmm()
        path = os.fspath(path)
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file; check mm.structure / the path")
        try:
            structure = app.PDBxFile(path) if path.endswith((".cif", ".pdbx")) else app.PDBFile(path)
        except Exception as err:
            raise InputError(f"{path}: OpenMM could not read it ({err}); check the file") from None
        files = [forcefield] if isinstance(forcefield, str) else list(forcefield)
        try:
            ff = app.ForceField(*files)
        except Exception as err:
            raise InputError(f"force field {files}: OpenMM could not load it ({err}); give OpenMM's names "
                             "(e.g. amber14-all.xml) or existing XML paths") from None
        topology = structure.topology
        ghosts = _register_ghost_templates(ff, topology, path)
        options = _system_options(app, topology.getPeriodicBoxVectors() is not None, cutoff_A, ewald_tolerance)
        try:
            omm_system = ff.createSystem(topology, **options)
        except Exception as err:
            raise InputError(f"{path}: the force field {files} cannot parameterize it ({err})") from None
        positions = np.asarray(structure.getPositions(asNumpy=True)._value, dtype=np.float64) * NM_A
        return cls(_system_from_topology(topology, positions, omm_system, path), omm_system, ghosts,
                   source=f"{path} with {', '.join(files)}")

    @classmethod
    def from_amber(cls, prmtop, inpcrd, *, cutoff_A: float = DEFAULT_CUTOFF_A,
                   ewald_tolerance: float = 5e-4) -> "MMForceField":
        """Parameterize from an AMBER topology (PRMTOP) and coordinates (INPCRD/RST7, or a PDB in the same order).

        Parameters
        ----------
        prmtop, inpcrd : str or path
            The topology with its parameters and the coordinates (with a box for PME).
        cutoff_A, ewald_tolerance : float
            As in `from_pdb`.
        """
        openmm, app = _openmm()
        for path in (prmtop, inpcrd):
            if not os.path.exists(path):
                raise InputError(f"{os.fspath(path)}: no such file; check the path")
        try:
            top = app.AmberPrmtopFile(os.fspath(prmtop))
            pdb = os.fspath(inpcrd).lower().endswith(".pdb")
            crd = app.PDBFile(os.fspath(inpcrd)) if pdb else app.AmberInpcrdFile(os.fspath(inpcrd))
        except Exception as err:
            raise InputError(f"{os.fspath(prmtop)} + {os.fspath(inpcrd)}: OpenMM could not read them ({err})") from None
        box = crd.topology.getPeriodicBoxVectors() if pdb else crd.boxVectors
        if box is not None:
            top.topology.setPeriodicBoxVectors(box)
        try:
            omm_system = top.createSystem(**_system_options(app, box is not None, cutoff_A, ewald_tolerance))
        except Exception as err:
            raise InputError(f"{os.fspath(prmtop)}: OpenMM cannot build its System ({err})") from None
        positions = np.asarray(crd.getPositions(asNumpy=True)._value, dtype=np.float64) * NM_A
        return cls(_system_from_topology(top.topology, positions, omm_system, os.fspath(prmtop)), omm_system,
                   source=os.fspath(prmtop))

    # -- checks and contexts ---------------------------------------------------------------
    def check_parameterized(self, qm_atoms) -> None:
        """Every ghost residue must lie whole in the QM region; else one error naming it."""
        qm = set(np.asarray(qm_atoms, dtype=int).tolist())
        for ghost in self.ghosts:
            outside = [int(a) for a in ghost.atoms if int(a) not in qm]
            if outside:
                raise InputError(f"residue {ghost.label} (atoms {int(ghost.atoms[0])}-{int(ghost.atoms[-1])}) has no "
                                 f"parameters in {self.source}, and its atom {outside[0]} "
                                 f"({self.system.names[outside[0]]}) is not in the QM region: put the whole residue "
                                 "in the QM region, or add its force-field XML file to mm.forcefield")

    def context(self, qm_atoms=(), inner_regions=(), *, platform: str = "CPU",
                threads: int | None = None) -> "MMContext":
        """The energy E_MM(all) - sum_R E_MM(R) with QM atoms as ghosts (module docstring) on one OpenMM platform.

        Parameters
        ----------
        qm_atoms : array_like of int
            Atoms without MM charge or Lennard-Jones (system-wide indices); they are a region of their own.
        inner_regions : sequence of array_like of int
            Regions whose internal interactions another layer describes (system-wide indices), e.g.
            ``[shell]`` or ``[union(qm, shell)]``.
        platform : {"CPU", "Reference", "CUDA", "OpenCL"}
            OpenMM platform: "CPU" (mixed precision, fast) or "Reference" (double precision, slow).
        threads : int, optional
            Threads of the CPU platform (default: OpenMM's choice).
        """
        qm_atoms = np.asarray(qm_atoms, dtype=int)
        self.check_parameterized(qm_atoms)
        return MMContext(without_inner(self.openmm_system, qm_atoms, inner_regions), platform=platform,
                         threads=threads)


class MMContext:
    """One OpenMM System on one platform: energy (eV), forces (eV/Å) and the strain derivative.

    Parameters
    ----------
    openmm_system : openmm.System
    platform : str
        OpenMM platform name.
    threads : int, optional
        Threads of the CPU platform.
    """

    def __init__(self, openmm_system, *, platform: str = "CPU", threads: int | None = None):
        openmm, _ = _openmm()
        try:
            chosen = openmm.Platform.getPlatformByName(platform)
        except Exception:
            names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
            raise InputError(f"OpenMM has no platform {platform!r}; available: {', '.join(names)}") from None
        properties = {"Threads": str(int(threads))} if threads and platform == "CPU" else {}
        self.openmm_system = openmm_system
        self.periodic = openmm_system.usesPeriodicBoundaryConditions()
        self._context = openmm.Context(openmm_system, openmm.VerletIntegrator(1e-3), chosen, properties)
        self.platform = platform

    def compute(self, positions, cell=None, *, forces: bool = True):
        """Energy (eV) and forces (n_atoms, 3), eV/Å (None when ``forces`` is False) at ``positions`` (Å);
        ``cell`` (3x3 rows, Å) is the periodic box (required for a periodic System)."""
        rotation = self._set(positions, cell)
        state = self._context.getState(getEnergy=True, getForces=forces)
        energy = state.getPotentialEnergy()._value * _ENERGY_EV
        if not forces:
            return energy, None
        forces = np.asarray(state.getForces(asNumpy=True)._value, dtype=np.float64) * _FORCE_EV_A
        return energy, forces if rotation is None else forces @ rotation.T  # back from OpenMM's reduced frame

    def strain_derivative(self, positions, cell, step: float = 1e-4) -> np.ndarray:
        """dE/d(strain) (3, 3), eV, for a homogeneous symmetric strain of positions and cell, by central
        differences of the energy (OpenMM gives no virial): 12 energy evaluations."""
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64)
        out = np.zeros((3, 3))
        for a in range(3):
            for b in range(a, 3):
                values = []
                for sign in (1.0, -1.0):
                    strain = np.eye(3)
                    strain[a, b] += 0.5 * sign * step
                    strain[b, a] += 0.5 * sign * step
                    values.append(self.compute(positions @ strain.T, cell @ strain.T, forces=False)[0])
                out[a, b] = out[b, a] = (values[0] - values[1]) / (2.0 * step)
        return out

    def _set(self, positions, cell):
        """Positions and box into the context; returns the rotation into OpenMM's reduced frame (None if none)."""
        positions = np.asarray(positions, dtype=np.float64)
        rotation = None
        if self.periodic:
            if cell is None:
                raise InputError("this MM System is periodic (PME): give the cell")
            reduced, rotation = _reduced_cell(np.asarray(cell, dtype=np.float64))
            self._context.setPeriodicBoxVectors(*(reduced / NM_A))
            positions = positions @ rotation
        self._context.setPositions(positions / NM_A)
        return rotation


def without_inner(openmm_system, qm_atoms, inner_regions=()):
    """A copy of ``openmm_system`` with the QM atoms as ghosts and the interactions inside each region (the QM
    atoms and each of ``inner_regions``) removed (module docstring)."""
    system = copy.deepcopy(openmm_system)
    n = system.getNumParticles()
    qm = np.zeros(n, dtype=bool)
    qm[np.asarray(qm_atoms, dtype=int)] = True
    inner_regions = [np.asarray(atoms, dtype=int) for atoms in inner_regions]
    if any(atoms.ndim != 1 for atoms in inner_regions):
        raise InputError("without_inner: give inner_regions as a list of atom-index arrays, e.g. [shell_atoms]")
    region = np.full(n, -1)  # each atom's region, -1 for none
    for k, atoms in enumerate(inner_regions):
        taken = atoms[region[atoms] >= 0]
        if taken.size:
            raise InputError(f"without_inner: atom {int(taken[0])} is in inner regions {int(region[taken[0]])} and {k}; "
                             "give each atom to one region")
        region[atoms] = k
    region[qm & (region < 0)] = len(inner_regions)  # QM atoms outside every given region are one of their own
    for force in system.getForces():
        name = force.__class__.__name__
        if name in _BONDED:
            kind, n_atoms, zero = _BONDED[name]
            get, set_ = getattr(force, f"get{kind}Parameters"), getattr(force, f"set{kind}Parameters")
            for k in range(getattr(force, f"getNum{kind}s")()):
                parameters = list(get(k))
                home = region[parameters[:n_atoms]]
                if home[0] >= 0 and (home == home[0]).all():
                    for z in zero:
                        parameters[z] = 0.0
                    set_(k, *parameters)
        elif name == "NonbondedForce":
            _nonbonded_without_inner(force, qm, region)
    return system


def _nonbonded_without_inner(force, qm, region) -> None:
    for i in np.nonzero(qm)[0]:
        _charge, sigma, _epsilon = force.getParticleParameters(int(i))
        force.setParticleParameters(int(i), 0.0, sigma, 0.0)
    done = set()
    for k in range(force.getNumExceptions()):
        i, j, _q, sigma, _eps = force.getExceptionParameters(k)
        inside = region[i] >= 0 and region[i] == region[j]
        if qm[i] or qm[j] or inside:
            force.setExceptionParameters(k, i, j, 0.0, sigma, 0.0)
        if inside:
            done.add((min(i, j), max(i, j)))
    for k in np.unique(region[region >= 0]):
        atoms = np.flatnonzero(region == k).tolist()
        for a, i in enumerate(atoms):
            for j in atoms[a + 1:]:
                if (i, j) not in done:
                    force.addException(i, j, 0.0, 1.0, 0.0)


def _system_options(app, periodic: bool, cutoff_A: float, ewald_tolerance: float) -> dict:
    """``createSystem`` keywords: flexible, unconstrained, no centre-of-mass remover; PME in a box, else no cutoff."""
    options = dict(constraints=None, rigidWater=False, removeCMMotion=False, nonbondedMethod=app.NoCutoff)
    if periodic:
        options.update(nonbondedMethod=app.PME, nonbondedCutoff=cutoff_A / NM_A, ewaldErrorTolerance=ewald_tolerance)
    return options


def _reduced_cell(cell):
    """OpenMM wants a = (ax, 0, 0), b = (bx, by, 0): the same cell rotated, and the rotation (rows)."""
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q, r = q * signs, (r.T * signs).T
    return r.T, q  # cell @ q = r.T (lower triangular)


def _register_ghost_templates(ff, topology, path) -> list[GhostResidue]:
    """Zero-parameter templates for the residues ``ff`` cannot match; returns them."""
    unmatched = ff.getUnmatchedResidues(topology)
    if not unmatched:
        return []
    atom_types, templates, ghosts, seen = {}, [], [], set()
    for residue in unmatched:
        atoms = list(residue.atoms())
        ghosts.append(GhostResidue(f"{residue.name} {residue.id} (chain {residue.chain.id})",
                                   np.array([a.index for a in atoms], dtype=int)))
        signature = (residue.name, tuple(a.name for a in atoms))
        if signature in seen:
            continue
        seen.add(signature)
        lines = [f'<Residue name="qmml-ghost-{len(templates)}">']
        for atom in atoms:
            if atom.element is None:
                raise InputError(f"{path}: atom {atom.index} ({atom.name}) of residue {residue.name} {residue.id} has "
                                 "no element; give the element column")
            symbol = atom.element.symbol
            atom_types[symbol] = atom.element.mass._value
            lines.append(f'<Atom name="{atom.name}" type="qmml-ghost-{symbol}"/>')
        index = {a.index: k for k, a in enumerate(atoms)}
        for bond in residue.internal_bonds():
            lines.append(f'<Bond from="{index[bond[0].index]}" to="{index[bond[1].index]}"/>')
        for bond in residue.external_bonds():
            inside = bond[0] if bond[0].index in index else bond[1]
            lines.append(f'<ExternalBond from="{index[inside.index]}"/>')
        lines.append("</Residue>")
        templates.append("\n".join(lines))
    nonbonded = [g for g in ff.getGenerators() if g.__class__.__name__ == "NonbondedGenerator"]
    scales = (f' coulomb14scale="{nonbonded[0].coulomb14scale!r}" lj14scale="{nonbonded[0].lj14scale!r}"'
              if nonbonded else ' coulomb14scale="0.833333" lj14scale="0.5"')
    xml = ["<ForceField>", "<AtomTypes>"]
    xml += [f'<Type name="qmml-ghost-{s}" class="qmml-ghost-{s}" element="{s}" mass="{m}"/>' for s, m in atom_types.items()]
    xml += ["</AtomTypes>", "<Residues>", *templates, "</Residues>", f"<NonbondedForce{scales}>"]
    xml += [f'<Atom type="qmml-ghost-{s}" charge="0" sigma="0.1" epsilon="0"/>' for s in atom_types]
    xml += ["</NonbondedForce>", "</ForceField>"]
    ff.loadFile(io.StringIO("\n".join(xml)))
    return ghosts


def _system_from_topology(topology, positions, omm_system, source) -> System:
    elements, masses, names, resids, resnames = [], [], [], [], []
    for atom in topology.atoms():
        if atom.element is None:
            raise InputError(f"{source}: atom {atom.index} ({atom.name}) has no element; give the element column")
        elements.append(atom.element.symbol)
        masses.append(omm_system.getParticleMass(atom.index)._value or MASSES_AMU.get(atom.element.symbol, 1.0))
        names.append(atom.name)
        resids.append(int(atom.residue.id) if str(atom.residue.id).lstrip("-").isdigit() else atom.residue.index + 1)
        resnames.append(atom.residue.name)
    charges = np.zeros(len(elements))
    for force in omm_system.getForces():
        if force.__class__.__name__ == "NonbondedForce":
            charges = np.array([force.getParticleParameters(i)[0]._value for i in range(len(elements))])
    bonds = np.array([[b[0].index, b[1].index] for b in topology.bonds()], dtype=int).reshape(-1, 2)
    vectors = topology.getPeriodicBoxVectors()
    box = None
    if vectors is not None:
        from MDAnalysis.lib.mdamath import triclinic_box

        box = normalize_box(triclinic_box(*(np.array([[v[i]._value for i in range(3)] for v in vectors]) * NM_A)))
    system = System.from_arrays(elements, positions, masses=np.array(masses), box=box, bonds=bonds,
                                residues=np.array(resids), resnames=np.array(resnames, dtype=object),
                                names=np.array(names, dtype=object), charges=charges)
    return dataclasses.replace(system, source=source)
