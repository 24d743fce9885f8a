"""`PySCFEngine`: an SCF calculation of the QM region in the field of embedding charges.

Public inputs and outputs are in Å, eV and e; Bohr and Hartree live only inside `compute`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np
from pyscf import gto, lib, scf

from .. import units
from ..errors import InputError, SCFConvergenceError, check_range
from .embedding import SiteIntegrals, nuclear_terms
from .field import (SERIES_ENERGY_TOLERANCE, SERIES_GRADIENT_TOLERANCE, ExternalField,
                    series_radius)
from .gpu import GPUSiteIntegrals, resolve_device, to_device, to_host
from .guess import DensityHistory

#: Distant sites from which on the exact series replace their integrals (`PySCFEngine(series_min_sites=)`): the
#: break-even of glycine HF/6-31G* MD steps (2 threads), where the series' fixed work over the primitive products
#: (~0.4 s) equals the integrals of ~500 sites: with the series for every distant site the step took 2.79 s
#: against 2.78 s at 1,000 charges and 2.84 s against 3.36 s at 3,000.
SERIES_MIN_SITES = 1000
#: The forces' bound per unit of the energy's, 1/Bohr.
SERIES_GRADIENT_PER_ENERGY = SERIES_GRADIENT_TOLERANCE / SERIES_ENERGY_TOLERANCE

log = logging.getLogger(__name__)

_HF_NAMES = {"hf", "rhf", "uhf"}


@dataclass(frozen=True)
class QMResult:
    """Output of one embedded SCF.

    Attributes
    ----------
    energy : float
        SCF energy plus the interaction of the QM nuclei with the site charges, eV.
    forces : ndarray (n_qm, 3) or None
        Forces on the QM centres (atoms and link atoms), eV/Å; None when not asked for.
    site_forces : ndarray (n_sites, 3) or None
        Forces on the embedding sites, eV/Å; None when not asked for.
    site_potential : ndarray (n_sites,)
        Electrostatic potential of the QM nuclei and electrons at each site, V (= eV/e);
        the derivative of `energy` with respect to each site charge.
    scf_cycles : int
    converged_with : str
        The SCF strategy that converged ("diis", "damping", "level shift", "second order").
    probe_potential : ndarray (n_probes,) or None
        Electrostatic potential of the QM nuclei and electrons at the probe points, V; None without probes.
    far_field : dict or None
        With ``far_field_A``: ``n_exact`` and ``n_expanded`` sites, and the expansion's
        ``error_estimate_eV`` (first neglected term) and ``error_bound_eV`` (see `qmml.qm.far_field`).
    series : dict or None
        Where distant sites took the exact series (``embedding="exact"``): the orders used (``energy_order``,
        ``response_order`` and the range of the single-centre ones) and rigorous bounds of what they leave out
        at the converged density (`qmml.qm.truncation`): ``energy_bound_eV``, ``site_force_bound_eV_A`` (the
        largest on one site), ``site_potential_bound_V`` (the largest error of ``site_potential``, eV/e) and
        ``qm_force_bound_eV_A`` (summed over the QM atoms).
    strain_derivative : ndarray (3, 3) or None
        In a periodic box, with forces: dE/d(strain) of this energy, eV, for a homogeneous strain of the
        QM centres, the sites and the cell ([a, b] = sum_i dE/dR_ia R_ib + explicit cell terms).
    density : ndarray or None
        The converged density matrix in the AO basis (atomic units; (2, nao, nao) for open shells): the
        ``dm0`` of the next SCF along a trajectory (see `qmml.qm.guess.DensityHistory`).
    timings_s : dict
        Wall time of the parts, s: ``embedding_operator`` (the sites' one-electron operator), ``scf``,
        ``gradient`` (the SCF nuclear gradient) and ``embedding_response`` (site potentials and forces).
    """

    energy: float
    forces: np.ndarray | None
    site_forces: np.ndarray | None
    site_potential: np.ndarray
    scf_cycles: int
    converged_with: str
    probe_potential: np.ndarray | None = None
    far_field: dict | None = None
    series: dict | None = None
    strain_derivative: np.ndarray | None = None
    density: np.ndarray | None = None
    timings_s: dict = dataclass_field(default_factory=dict)


def series_report(series: dict) -> dict:
    """`ExternalField.series_bounds` (atomic units) in eV and eV/Å."""
    force = units.HARTREE_PER_BOHR_EV_PER_A
    names = {"energy": ("energy_bound_eV", units.HARTREE_EV), "site_gradient": ("site_force_bound_eV_A", force),
             "qm_gradient": ("qm_force_bound_eV_A", force), "site_potential": ("site_potential_bound_V", units.HARTREE_EV)}
    return {names[key][0] if key in names else key: value * names[key][1] if key in names else value
            for key, value in series.items()}


class PySCFEngine:
    """Embedded HF or Kohn-Sham DFT with PySCF.

    Parameters
    ----------
    method : str
        "hf" or any PySCF exchange-correlation functional ("b3lyp", "pbe0", "wb97x", ...).
        Closed shells use RHF/RKS, open shells UHF/UKS.
    basis : str or dict
        Any PySCF basis.
    density_fit : bool or str
        Density fitting for the Coulomb/exchange terms; a string names the auxiliary basis.
    conv_tol : float
        SCF energy convergence threshold, Hartree.  On the CPU the converged SCF ends with one more
        diagonalization of its last Fock matrix, as PySCF's ``conv_check`` does, but without PySCF's extra
        Fock build (``conv_check=True`` restores PySCF's way).
    max_cycle : int
        SCF iterations per attempt.
    grid_response : bool
        Include the movement of the DFT integration grid in the forces, so forces are the exact
        derivative of the energy (needed for energy conservation in NVE).
    guess : {"extrapolate", "fit", "previous", "default"}
        Initial density of each SCF: a polynomial extrapolation of the last ``guess_order`` converged
        densities (`qmml.qm.guess`), the same densities weighted by a least-squares fit of their
        geometries to the new one ("fit": 7.2 instead of 8.3 cycles at the 2 fs outer step of
        `qmml.MultipleTimeStep`), the last density, or PySCF's default guess.  The SCF is converged to
        ``conv_tol`` either way; the guess only changes the cycle count.
    guess_order : int
        Densities the extrapolation uses.
    embedding : {"exact", "integrals"}
        How sites act on the electrons when ``far_field_A`` is None.  "exact" (default): sites farther than
        `qmml.qm.field.series_radius` (8 Å or more) from every QM atom enter through exact Hermite-multipole series
        about the QM atoms (`qmml.qm.hermite`, at orders whose rigorous remainder bounds meet ``series_tolerance``), the rest
        through integrals, once at least ``series_min_sites`` sites are that far (with fewer, integrals for
        every site cost about as much).  "integrals": integrals for every site (pyscf.qmmm's way).  On the GPU
        every site takes integrals either way (gpu4pyscf's are cheaper than the series on the host).
    series_min_sites : int
        Distant sites needed before "exact" uses the series (0: always).
    series_tolerance : float
        What the series may leave out of the energy, Hartree (like ``conv_tol``): the orders are the lowest whose
        rigorous remainder bound (`qmml.qm.truncation`) is no larger, and the forces' bound is 1000 times it per
        Bohr (1e-8 Hartree/Bohr by default).  Each result reports the orders and bounds (``series``).
    far_field_A : float, optional
        Sites farther than this from the QM centre (the mean of the QM positions) act on the QM
        electrons through atom-centred multipole expansions of the density, up to each atom's
        quadrupole (`qmml.qm.far_field`), so distant sites cost no integrals.  The nuclei always see
        every site exactly.  None (default) computes exact integrals for every site.  For glycine in
        1e5 water charges 15 Å gave energy errors of 1-4e-6 Eh and 20 Å 4-7e-7 Eh; each result
        reports the error estimate and bound.
    far_field_width_A : float
        Distance inside ``far_field_A`` over which the exact and expanded treatments are blended, so
        the energy stays smooth when sites cross the cutoff, Å.
    near_field_A : float
        In a periodic box (``compute(..., cell=...)``): site images within this distance of the QM
        centre act on the electrons through exact integrals; all others, and the QM region's own
        periodic images, through Ewald sums coupled to the atoms' multipoles (`qmml.qm.periodic`).
    near_field_width_A : float
        Blending width inside ``near_field_A``, Å; 0 is a hard cut (pyscf.qmmm.pbc's convention).
    ewald_accuracy : float
        Relative size of the neglected Ewald terms (`qmml.qm.periodic.ewald_parameters`).
    device : {"cpu", "gpu", "auto"}
        Where the SCF, gradient and embedding integrals run: "gpu" needs CUDA and gpu4pyscf
        (`qmml.qm.gpu`), "auto" takes the GPU when both are there.  Results agree to the SCF
        convergence threshold either way.
    memory_MB : float
        Memory PySCF may use for integrals and intermediates, MB, on top of what the process already holds
        when the molecule is built.  PySCF counts the whole process against its own limit (4000 MB by
        default), and a large environment holds gigabytes of its own (OpenMM and the model: 1.4-2 GB for a
        43,000-atom enzyme), past which the density-fitting tensors would go to a file on disk and be read
        back in every Fock build.
    **scf_options
        Set as attributes on the PySCF SCF object (e.g. ``grids_level=4`` for ``mf.grids.level``
        is spelled ``grids_level``; anything else such as ``init_guess="atom"`` directly).

    Examples
    --------
    >>> engine = PySCFEngine("b3lyp", "6-31g*")
    >>> result = engine.compute(["O", "H", "H"], xyz_A, charge=0, multiplicity=1,
    ...                         site_positions=sites_A, site_charges=q)   # doctest: +SKIP
    """

    def __init__(self, method: str = "b3lyp", basis="6-31g*", *, density_fit=False, conv_tol: float = 1e-9,
                 max_cycle: int = 100, grid_response: bool = True, guess: str = "extrapolate", guess_order: int = 5,
                 embedding: str = "exact", series_min_sites: int = SERIES_MIN_SITES,
                 series_tolerance: float = SERIES_ENERGY_TOLERANCE,
                 far_field_A: float | None = None, far_field_width_A: float = 2.0, near_field_A: float = 9.0,
                 near_field_width_A: float = 2.0, ewald_accuracy: float = 1e-10, device: str = "cpu",
                 memory_MB: float = 4000.0, **scf_options):
        self.method = str(method).lower()
        self.basis = basis
        self.density_fit = density_fit
        self.conv_tol = check_range("conv_tol", conv_tol, low=0, low_open=True, high=1e-3, unit="Hartree")
        self.max_cycle = int(check_range("max_cycle", max_cycle, low=1, high=10**5))
        self.grid_response = grid_response
        self.scf_options = scf_options
        self.memory_MB = check_range("memory_MB", memory_MB, low=0, low_open=True, unit="MB")
        DensityHistory(guess, guess_order)  # checks the options
        self.guess, self.guess_order = guess, guess_order
        for name, value in (("far_field_width_A", far_field_width_A), ("near_field_A", near_field_A),
                            ("near_field_width_A", near_field_width_A)) + ((("far_field_A", far_field_A),)
                                                                           if far_field_A is not None else ()):
            check_range(name, value, low=0, unit="Å")
        if far_field_A is not None and not far_field_A > far_field_width_A >= 0:
            raise InputError(f"far_field_A={far_field_A} Å and far_field_width_A={far_field_width_A} Å: need "
                             "far_field_A > far_field_width_A >= 0")
        self.far_field_A = far_field_A
        if not near_field_A > near_field_width_A >= 0:
            raise InputError(f"near_field_A={near_field_A} Å and near_field_width_A={near_field_width_A} Å: need "
                             "near_field_A > near_field_width_A >= 0")
        if not 0 < ewald_accuracy < 1e-3:
            raise InputError(f"ewald_accuracy={ewald_accuracy}: give a small positive number such as 1e-10")
        self.near_field_A, self.near_field_width_A = float(near_field_A), float(near_field_width_A)
        self.ewald_accuracy = float(ewald_accuracy)
        self.device = resolve_device(device)
        self.far_field_width_A = far_field_width_A
        if embedding not in ("exact", "integrals"):
            raise InputError(f"embedding={embedding!r}: use 'exact' (series for distant sites) or 'integrals'")
        self.embedding = embedding
        self.series_min_sites = int(check_range("series_min_sites", series_min_sites, low=0, high=10**9))
        self.series_tolerance = check_range("series_tolerance", series_tolerance, low=0, low_open=True, high=1e-3,
                                            unit="Hartree")
        if not self.is_hf:
            from pyscf import dft

            try:
                dft.libxc.parse_xc(self.method)
            except Exception:
                raise InputError(f"method={method!r} is neither 'hf' nor an exchange-correlation functional "
                                 "PySCF knows (e.g. 'b3lyp', 'pbe', 'wb97x')") from None

    @property
    def is_hf(self) -> bool:
        return self.method in _HF_NAMES

    def __repr__(self) -> str:
        device = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"PySCFEngine({self.method!r}, {self.basis!r}, density_fit={self.density_fit!r}{device})"

    # -- building ----------------------------------------------------------------------
    def build_molecule(self, elements, positions_A, charge: int, multiplicity: int) -> gto.Mole:
        atoms = [(e, tuple(p)) for e, p in zip(elements, np.asarray(positions_A) * units.ANGSTROM_BOHR)]
        try:
            return gto.M(atom=atoms, unit="Bohr", basis=self.basis, charge=int(charge), spin=int(multiplicity) - 1,
                         verbose=0, max_memory=lib.current_memory()[0] + self.memory_MB)
        except (RuntimeError, KeyError) as err:
            raise InputError(f"PySCF could not build the QM molecule ({err}); check the elements, charge={charge}, "
                             f"multiplicity={multiplicity} and basis={self.basis!r}") from None

    def check_electrons(self, elements, positions_A, charge: int, multiplicity: int) -> None:
        """`InputError` unless the basis holds the electrons of this molecule (checked before any SCF)."""
        mol = self.build_molecule(elements, positions_A, charge, multiplicity)
        n_alpha, n_beta = mol.nelec
        if mol.nelectron < 1 or n_alpha > mol.nao_nr():
            raise InputError(f"the QM region has {mol.nelectron} electrons ({n_alpha} alpha) at charge={charge:+d}, "
                             f"but basis={self.basis!r} has {mol.nao_nr()} orbitals; change the charge or choose a "
                             "larger basis")

    def make_scf(self, mol: gto.Mole):
        """The PySCF mean-field object for ``mol`` (no embedding)."""
        restricted = mol.spin == 0
        if self.is_hf:
            mf = scf.RHF(mol) if restricted else scf.UHF(mol)
        else:
            from pyscf import dft

            mf = dft.RKS(mol) if restricted else dft.UKS(mol)
            mf.xc = self.method
        if self.density_fit:
            mf = mf.density_fit(auxbasis=None if self.density_fit is True else self.density_fit)
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        # PySCF's extra cycle after convergence diagonalizes the last Fock matrix once more (the orbitals the
        # gradient takes: forces 1.3-3x closer to converged ones), then builds one more Fock matrix only to
        # re-test, 10x looser, what the loop has just passed; `_converge` does the first without the second:
        # 5.4 instead of 6.3 Fock builds per B3LYP MD step (benchmarks/scf_fock_builds.py).  The GPU keeps
        # PySCF's way.
        mf.conv_check = self.device != "cpu"
        for key, value in self.scf_options.items():
            target, name = (mf.grids, key[len("grids_"):]) if key.startswith("grids_") else (mf, key)
            if not hasattr(target, name):
                raise InputError(f"PySCFEngine: {type(mf).__name__} has no option {key!r}; check its spelling "
                                 "against the PySCF documentation")
            setattr(target, name, value)
        return mf.to_gpu() if self.device == "gpu" else mf

    # -- computing ---------------------------------------------------------------------
    def compute(self, elements, positions_A, *, charge: int = 0, multiplicity: int = 1, site_positions=None,
                site_charges=None, site_radii_A=None, forces: bool = True, probe_positions=None,
                cell=None, dm0=None) -> QMResult:
        """Energy, forces and site potential of the QM region in the field of the sites.

        Parameters
        ----------
        elements : sequence of str
            QM centres (atoms and link atoms).
        positions_A : array_like (n_qm, 3)
            Their coordinates, Å.
        charge, multiplicity : int
        site_positions : array_like (n_sites, 3), optional
            Embedding charge positions, Å.
        site_charges : array_like (n_sites,), optional
            Embedding charges, e.
        site_radii_A : array_like (n_sites,), optional
            Gaussian radii (Å) of smeared charges; None for point charges.
        forces : bool
            False skips the nuclear gradient (energy and site potential only, about half the cost).
        probe_positions : array_like (n_probes, 3), optional
            Points (Å) where the potential of the converged QM charge density is wanted without
            placing a charge there (ESP charge fitting).
        cell : array_like (3, 3), optional
            Lattice vectors as rows, Å: the sites (at any image) and the QM region repeat periodically
            (Ewald embedding, `qmml.qm.periodic`); the result then carries ``strain_derivative``.
        dm0 : ndarray, optional
            Initial density matrix (atomic units), e.g. `DensityHistory.predict` of the previous steps'
            ``result.density``; None starts from PySCF's default guess.  The engine keeps no state between
            calls: whoever follows a trajectory owns its history (`Hamiltonian`, `QMPotential`).
        """
        mol = self.build_molecule(elements, positions_A, charge, multiplicity)
        coords = np.zeros((0, 3)) if site_positions is None else np.asarray(site_positions, float) * units.ANGSTROM_BOHR
        q = np.zeros(0) if site_charges is None else np.asarray(site_charges, dtype=float).ravel()
        if len(q) != len(coords):
            raise InputError(f"{len(q)} site charges for {len(coords)} site positions")
        zetas = None
        if site_radii_A is not None:
            radii = np.broadcast_to(np.asarray(site_radii_A, dtype=float), q.shape) * units.ANGSTROM_BOHR
            if np.any(radii <= 0):
                raise InputError("Gaussian charge radii must be positive (Å)")
            zetas = 1.0 / radii**2

        clock = time.perf_counter()
        timings = {}
        field = self._field(mol, coords, q, zetas, cell)
        if probe_positions is not None and cell is not None:
            raise InputError("probe_positions are for open boundaries; a periodic calculation has no probes")
        mf = first = self.make_scf(mol)
        if field is not None:
            h_core = to_host(mf.get_hcore(mol)) + field.operator(density=dm0)
            if self.device == "gpu":
                h_core = to_device(h_core)
            mf.get_hcore = lambda *args, **kwargs: h_core  # PySCF's documented way to change the Hamiltonian
            if field.periodic:
                _add_image_potential(mf, field)
        timings["embedding_operator"], clock = time.perf_counter() - clock, time.perf_counter()
        mf, strategy = self._converge(mf, mol, dm0)
        timings["scf"], clock = time.perf_counter() - clock, time.perf_counter()
        dm = to_host(mf.make_rdm1())
        dm_total = dm if dm.ndim == 2 else dm[0] + dm[1]

        energy = mf.e_tot
        g_scf = np.zeros((mol.natm, 3))
        if forces:
            grad = mf.nuc_grad_method()
            if not self.is_hf and hasattr(grad, "grid_response"):
                grad.grid_response = self.grid_response
            grad.verbose = 0
            g_scf = to_host(grad.kernel())  # SCF gradient at the embedded density, QM-QM nuclear repulsion included
        timings["gradient"], clock = time.perf_counter() - clock, time.perf_counter()
        grad_qm, grad_sites, phi = g_scf, np.zeros((len(q), 3)), np.zeros(len(q))
        far_info = strain = series = None
        if field is not None:
            response = field.response(dm_total, deriv=forces)
            energy += response.nuclear_energy + field.constant_energy
            phi = response.potential
            if forces:
                grad_qm = g_scf + response.grad_qm
                grad_sites = response.grad_sites
                if response.strain_derivative is not None:
                    strain = (response.strain_derivative + g_scf.T @ mol.atom_coords()) * units.HARTREE_EV
            if response.series is not None:
                series = series_report(response.series)
            if response.far_field is not None:
                far_info = {(f"{key}_eV" if key.startswith("error") else key):
                            (value * units.HARTREE_EV if key.startswith("error") else value)
                            for key, value in response.far_field.items()}
        timings["embedding_response"] = time.perf_counter() - clock
        probe_potential = None
        if probe_positions is not None:
            probes = np.asarray(probe_positions, dtype=float).reshape(-1, 3) * units.ANGSTROM_BOHR
            zeros = np.zeros(len(probes))
            phi_nuc = nuclear_terms(mol.atom_coords(), mol.atom_charges().astype(float), probes, zeros)[3]
            integrals = GPUSiteIntegrals if self.device == "gpu" else SiteIntegrals
            probe_potential = (phi_nuc + integrals(mol, probes).potential(dm_total)) * units.HARTREE_EV
        force_unit = units.HARTREE_PER_BOHR_EV_PER_A
        _release(first, mf)
        return QMResult(
            energy=float(energy) * units.HARTREE_EV,
            forces=-np.asarray(grad_qm) * force_unit if forces else None,
            site_forces=-np.asarray(grad_sites) * force_unit if forces else None,
            site_potential=np.asarray(phi) * units.HARTREE_EV,
            scf_cycles=int(getattr(mf, "cycles", -1)),
            converged_with=strategy,
            probe_potential=probe_potential,
            far_field=far_info,
            series=series,
            strain_derivative=strain,
            density=dm,
            timings_s=timings,
        )

    def _field(self, mol, coords, q, zetas, cell):
        """The embedding sites as the SCF sees them: none, an `ExternalField` (open boundaries) or a
        `PeriodicField` (every image of the sites and of the QM region itself, in ``cell``)."""
        if cell is None:
            if not len(q):
                return None
            far = None if self.far_field_A is None else self.far_field_A * units.ANGSTROM_BOHR
            return ExternalField(mol, coords, q, zetas, far_field=far, width=self.far_field_width_A * units.ANGSTROM_BOHR,
                                 series_beyond=self._series_beyond(mol), series_min_sites=self.series_min_sites,
                                 tolerance=(self.series_tolerance, SERIES_GRADIENT_PER_ENERGY * self.series_tolerance),
                                 integrals=GPUSiteIntegrals if self.device == "gpu" else SiteIntegrals)
        from .periodic import PeriodicField

        cell_A = np.asarray(cell, float)
        if self.device == "gpu":
            raise InputError("periodic embedding runs on the CPU only; use device='cpu'")
        if self.far_field_A is not None:
            raise InputError("far_field_A does not apply in a periodic box (distant images always enter through "
                             "the multipole Ewald sums); set far_field_A=None and choose near_field_A")
        if cell_A.shape != (3, 3) or abs(np.linalg.det(cell_A)) < 1e-6:
            raise InputError(f"cell must be three independent lattice vectors (3x3 rows, Å), got {cell_A.tolist()}")
        a = units.ANGSTROM_BOHR
        return PeriodicField(mol, coords, q, zetas, cell_A * a, near=self.near_field_A * a,
                             width=self.near_field_width_A * a, accuracy=self.ewald_accuracy)

    def _series_beyond(self, mol):
        """The distance (Bohr) beyond which sites enter through the exact series, or None for integrals only."""
        # on a GPU every site takes integrals: a whole HF step in 1e5 charges took 0.71 s on an H100
        # (benchmarks/RESULTS.md), less than the series' host work alone
        if self.embedding != "exact" or self.far_field_A is not None or self.device == "gpu":
            return None
        return series_radius(mol)

    def guess_history(self) -> DensityHistory:
        """A new, empty history of converged densities with this engine's ``guess`` and ``guess_order``:
        one per trajectory (a Hamiltonian, a path-integral bead, an ASE calculator)."""
        return DensityHistory(self.guess, self.guess_order)

    def guess_key(self, elements, charge: int, multiplicity: int) -> str:
        """What a density can be reused for: the same elements, charge, spin and basis."""
        return repr((tuple(str(e) for e in elements), int(charge), int(multiplicity) - 1, str(self.basis)))

    def _converge(self, mf, mol, dm0=None):
        """Run the SCF from ``dm0``; on failure retry with damping, a level shift, then second-order SCF."""
        if dm0 is not None and self.device == "gpu":
            dm0 = to_device(dm0)
        tried = []

        def damping(m):
            m.damp, m.diis_start_cycle = 0.5, 8
            return m

        def level_shift(m):
            m.level_shift, m.conv_check = 0.5, True  # PySCF's extra cycle diagonalizes the unshifted Fock matrix
            return m

        strategies = [("diis", lambda m: m), ("damping", damping), ("level shift", level_shift),
                      ("second order", lambda m: m.newton())]
        last_dm = dm0
        final_diagonalization = mf.callback is None and not mf.conv_check  # see make_scf
        for name, prepare in strategies:
            attempt = prepare(mf.copy() if name != "diis" else mf)
            last_cycle = {}
            if final_diagonalization:
                # PySCF hands each cycle's variables to its callback; the level shift keeps PySCF's own extra cycle
                attempt.callback = last_cycle.update if name in ("diis", "damping") else None
            attempt.kernel(dm0=last_dm)
            fock, s1e = last_cycle.get("fock"), last_cycle.get("s1e")
            # the callback's dictionary holds the SCF's locals, the SCF itself among them: a reference cycle
            attempt.callback = None
            last_cycle.clear()
            if attempt.converged:
                if fock is not None:
                    _final_orbitals(attempt, fock, s1e)
                if name != "diis":
                    log.warning("SCF converged only with %s (after %s failed)", name, ", ".join(tried))
                if getattr(attempt, "level_shift", 0):
                    # the level shift changes virtual energies only; converged orbitals are unaffected
                    attempt.level_shift = 0
                return attempt, name
            tried.append(name)
            last_dm = attempt.make_rdm1()
        raise SCFConvergenceError(
            f"SCF of the QM region ({mol.natm} atoms, {self.method}/{self.basis}, charge {mol.charge}, "
            f"multiplicity {mol.spin + 1}) did not converge to {self.conv_tol:g} Eh in {self.max_cycle} cycles "
            f"with any of: {', '.join(tried)}; check the geometry, charge and multiplicity, or raise max_cycle")


def _release(*scf_objects) -> None:
    """Drop the image potential's get_veff, a closure over its SCF object (a reference cycle): without it the
    SCF, its density-fitting tensors and a periodic field over every site are freed when the last reference
    goes, not whenever the cyclic collector next runs (in a 43,000-atom box that had held gigabytes)."""
    for obj in scf_objects:
        obj.__dict__.pop("get_veff", None)


def _final_orbitals(mf, fock, overlap) -> None:
    """Orbitals and orbital energies of the converged density's own Fock matrix (no DIIS), which is what
    the nuclear gradient's energy-weighted density needs; PySCF's ``conv_check`` does the same."""
    mf.mo_energy, mf.mo_coeff = mf.eig(fock, overlap)
    mf.mo_occ = mf.get_occ(mf.mo_energy, mf.mo_coeff)


def _add_image_potential(mf, field) -> None:
    """Add the QM density's interaction with its own periodic images to the SCF's effective potential.

    The term is quadratic in the density, so it belongs in get_veff (as PySCF's documented way of
    changing the Hamiltonian, an instance attribute): its energy 1/2 tr(D v) is what RHF/UHF's
    energy_elec takes from the potential, and is added to the Coulomb tag RKS/UKS take their energy from.
    The previous potential handed back for incremental Fock builds is stripped of the term first.  The
    closure refers to ``mf`` (a reference cycle); `_release` removes it once the calculation is done.
    """
    from pyscf import lib

    base = mf.get_veff

    def get_veff(mol=None, dm=None, dm_last=0, vhf_last=0, hermi=1):
        if dm is None:
            dm = mf.make_rdm1()
        if isinstance(vhf_last, np.ndarray) and getattr(vhf_last, "image_potential", None) is not None:
            tags = {k: v for k, v in vhf_last.__dict__.items() if k != "image_potential"}
            vhf_last = lib.tag_array(np.asarray(vhf_last) - vhf_last.image_potential, **tags)
        vhf = base(mol, dm, dm_last, vhf_last, hermi)
        dm_total = dm if np.asarray(dm).ndim == 2 else dm[0] + dm[1]
        v, energy = field.image_potential(np.asarray(dm_total))
        v = np.broadcast_to(v, np.shape(vhf)).copy()
        tags = dict(getattr(vhf, "__dict__", {}))
        if "ecoul" in tags:
            tags["ecoul"] = tags["ecoul"] + energy
        return lib.tag_array(np.asarray(vhf) + v, image_potential=v, **tags)

    mf.get_veff = get_veff
