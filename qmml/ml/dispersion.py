"""`D3Dispersion`: an explicit two-body D3(BJ) dispersion energy with exact forces and strain derivative.

The environment model's networks see 5-6 Å; dispersion beyond that is missing from them (about
-2 kbar of pressure in liquid water, ~9 % of its density).  The dispersion energy is therefore
subtracted from the training labels and added back here, over a long range, as a term of
`EnvironmentModel.predict`:

    E = -1/2 sum_{i != j, images} sw(r_ij) sum_{n=6,8} s_n C_n,ij / (r_ij^n + R0_ij^n)  +  E_tail,
    R0_ij = a1 sqrt(C8,ij / C6,ij) + a2,

Becke-Johnson rational damping, two-body only (no Axilrod-Teller-Muto term), switched smoothly to zero
between ``cutoff_A - switch_width_A`` and ``cutoff_A`` (quintic switch, so forces and stress stay
continuous).  In a periodic box, E_tail adds what lies beyond the switch for a homogeneous fluid
(g(r) = 1 there): E_tail = 1/(2V) sum_ab N_a N_b T_ab with T_ab = int 4 pi r^2 (1 - sw) u_ab(r) dr,
which only depends on the volume, so it has no forces and its strain derivative is -E_tail I; this is
the standard long-range correction of Lennard-Jones liquids.

Coefficients.  C6 and C8 are Grimme's D3 values from simple-dftd3 (the ``dftd3`` package), taken once
for the coordination numbers of a reference structure (`D3Dispersion.fitted`, e.g. training frames)
and then held fixed per element pair: in liquid water they vary by 0.02 % over all pairs of a frame,
so the fixed table reproduces simple-dftd3's energy, while the sum runs on qmml's own cell list in
NumPy over vesin's neighbour list (closed-form derivatives), in time and memory linear in the number of atoms.  simple-dftd3 itself keeps N x N tables
(quadratic: 1 s for 3,072 atoms, 18 s and 1.7 GB for 10,368) and dftd4 needs 1.4-1.8 s for 384 atoms
(its EEQ charges); see benchmarks/RESULTS.md.

Units: Å and eV in the public API (C6 in eV Å^6, C8 in eV Å^8).  Bohr and Hartree appear only where
simple-dftd3 is called, with the constants of `qmml.units`; the damping parameter ``a2`` is, as in
every published D3/D4 parameter table, in Bohr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.integrate import trapezoid
from .. import units
from ..errors import InputError
from .fixed_terms import FixedTerm
from ..periodic.cell import check_cell, volume
from ..coupling.switching import switch
from ..periodic.neighbours import pairs

#: The only form so far; stored in model files so that another form can be told apart later.
FORM = "d3-bj-two-body-fixed-c6"
#: D3 has reference C6 coefficients for H..Lr only.
MAX_ATOMIC_NUMBER = 103
#: Pairs per chunk of the pair sum: memory stays bounded for any system size.
PAIR_CHUNK = 2_000_000


def _half_pairs(x, cell, cutoff):
    """Each pair (i, j) within ``cutoff`` once, and its lattice translation (Å)."""
    i, j, shifts = pairs(x, cutoff, cell, full=False)
    return i, j, shifts @ (np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64))


def simple_dftd3():
    """The simple-dftd3 Python API (``dftd3.interface``), or InputError naming the fix."""
    try:
        from dftd3 import interface
    except ImportError as err:
        raise InputError(f"D3 dispersion needs simple-dftd3 ({err}); install it with `pip install dftd3`") from None
    return interface


#: Centre distance (Å) of two structures put side by side to measure a pair of elements that never meet:
#: far enough that coordination numbers do not change (D3 counts neighbours within a few Å), near enough
#: that the pairs stay within simple-dftd3's 60 Bohr cutoff.
SIDE_BY_SIDE_A = 20.0
MEASURE_WITHIN_BOHR = 55.0


@dataclass(frozen=True)
class D3Dispersion(FixedTerm):
    """Two-body D3 dispersion with Becke-Johnson damping and fixed per-element-pair coefficients.

    The default damping numbers are GFN2-xTB's own D4 damping parameters (Bannwarth, Ehlert, Grimme,
    J. Chem. Theory Comput. 15, 1652 (2019): s8 = 2.7, a1 = 0.52, a2 = 5.0 Bohr), so that the term
    removed from GFN2-xTB labels resembles the dispersion GFN2-xTB itself contains.

    Parameters
    ----------
    s6, s8 : float
        Scaling of the C6 and C8 terms.
    a1 : float
        Damping radius factor (dimensionless).
    a2 : float
        Damping radius offset, **Bohr** (as tabulated for every D3/D4 parametrization).
    cutoff_A : float
        Pair cutoff, Å; pairs are switched off between ``cutoff_A - switch_width_A`` and ``cutoff_A``.
    switch_width_A : float
        Width of the switching region, Å (0: a hard cutoff, whose energy jumps as pairs cross it).
    tail : bool
        Add the homogeneous long-range correction beyond the switch in periodic boxes.
    coefficients : tuple of (Z_a, Z_b, C6, C8)
        Per element pair (Z_a <= Z_b), eV Å^6 and eV Å^8; build with `fitted`.

    Notes
    -----
    Measured on `data/structures/water_box.pdb` (128 waters, 15.65 Å, 1 g/cm^3), against the same
    sum with a 40 Å cutoff: see tests/test_ml_dispersion.py and docs/ml_environment.md.
    """

    FORM, KIND, TABLE = FORM, "dispersion", "coefficients"  # for FixedTerm (class attributes, not fields)

    s6: float = 1.0
    s8: float = 2.7
    a1: float = 0.52
    a2: float = 5.0
    cutoff_A: float = 10.0
    switch_width_A: float = 2.0
    tail: bool = True
    coefficients: tuple = ()

    def __post_init__(self):
        self._plain_numbers(("s6", "s8", "a1", "a2", "cutoff_A", "switch_width_A"), non_negative=False)
        if self.a1 < 0 or self.a2 < 0 or (self.a1 == 0 and self.a2 == 0):
            raise InputError(f"the damping radius a1 sqrt(C8/C6) + a2 must be positive (a1={self.a1}, "
                             f"a2={self.a2} Bohr); use e.g. GFN2-xTB's a1=0.52, a2=5.0")
        if self.cutoff_A <= 0 or not 0 <= self.switch_width_A < self.cutoff_A:
            raise InputError(f"need cutoff_A > 0 and 0 <= switch_width_A < cutoff_A, got {self.cutoff_A}, "
                             f"{self.switch_width_A} Å")
        table = []
        for za, zb, c6, c8 in self._table_rows((int, int, float, float), "(Z_a, Z_b, C6, C8)"):
            if not (c6 > 0 and c8 > 0 and math.isfinite(c6) and math.isfinite(c8)):
                raise InputError(f"dispersion coefficients of {za}-{zb} must be positive, got C6={c6}, C8={c8}")
            table.append((min(za, zb), max(za, zb), c6, c8))
        object.__setattr__(self, "tail", bool(self.tail))
        object.__setattr__(self, "coefficients", tuple(sorted(table)))

    # -- coefficients ----------------------------------------------------------------------
    @classmethod
    def fitted(cls, structures, **parameters) -> "D3Dispersion":
        """D3 C6 and C8 of every element pair, averaged over the pairs of reference structures.

        Parameters
        ----------
        structures : iterable of (elements, positions_A)
            Reference structures (clusters or periodic frames, treated as clusters): their coordination
            numbers select the D3 coefficients.  An element pair that never meets in one structure (a
            rare solute atom and an ion, say) is measured with a structure holding each element put side
            by side, their centres `SIDE_BY_SIDE_A` apart: each atom keeps its own coordination, so the
            coefficients are those of the two environments.
        **parameters
            The other fields (s6, s8, a1, a2, cutoff_A, ...).
        """
        known = {f.name for f in fields(cls)} - {"coefficients"}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise InputError(f"unknown dispersion parameters {unknown}; known: {sorted(known)}")
        interface = simple_dftd3()
        # s6 = 1 (or s8 = 1) with zero damping radius makes every pair energy -C6/(2 r^6) (-C8/(2 r^8))
        bare = [interface.RationalDampingParam(s6=1.0, s8=0.0, s9=0.0, a1=0.0, a2=0.0),
                interface.RationalDampingParam(s6=0.0, s8=1.0, s9=0.0, a1=0.0, a2=0.0)]
        sums: dict = {}

        def measure(z, x, only=None):
            """Add the C6, C8 of the atom pairs of one structure (Bohr) to ``sums`` (``only``: one pair)."""
            model = interface.DispersionModel(z, x)
            d = np.linalg.norm(x[:, None] - x[None, :], axis=-1)
            off = ~np.eye(len(z), dtype=bool) & (d < MEASURE_WITHIN_BOHR)  # simple-dftd3 cuts pairs at 60 Bohr
            c = [np.zeros_like(d), np.zeros_like(d)]
            for k, (param, n) in enumerate(zip(bare, (6, 8))):
                pair = model.get_pairwise_dispersion(param)["additive pairwise energy"]
                c[k][off] = -2.0 * pair[off] * d[off] ** n
            for a in np.unique(z):
                for b in np.unique(z):
                    if a > b or (only is not None and (int(a), int(b)) != only):
                        continue
                    mask = (z[:, None] == a) & (z[None, :] == b) & off
                    if mask.any():
                        s = sums.setdefault((int(a), int(b)), [0.0, 0.0, 0])
                        s[0] += c[0][mask].sum()
                        s[1] += c[1][mask].sum()
                        s[2] += int(mask.sum())

        holding: dict = {}  # element -> a structure (z, x in Bohr) holding it
        for elements, positions in structures:
            z = np.asarray(elements, dtype=np.int32)
            x = np.asarray(positions, dtype=np.float64) * units.ANGSTROM_BOHR
            for a in np.unique(z):
                holding.setdefault(int(a), (z, x))
            if len(z) >= 2:
                measure(z, x)
        kinds = sorted(holding)
        for i, a in enumerate(kinds):
            for b in kinds[i:]:
                if (a, b) not in sums:
                    (za, xa), (zb, xb) = holding[a], holding[b]
                    apart = xb - xb.mean(0) + xa.mean(0) + [SIDE_BY_SIDE_A * units.ANGSTROM_BOHR, 0.0, 0.0]
                    measure(np.concatenate([za, zb]), np.concatenate([xa, apart]), only=(a, b))
        if not sums:
            raise InputError("D3Dispersion.fitted needs at least one structure of two or more atoms")
        hartree_bohr = units.HARTREE_EV * units.BOHR_A ** 6, units.HARTREE_EV * units.BOHR_A ** 8
        mean = {k: (v[0] / v[2] * hartree_bohr[0], v[1] / v[2] * hartree_bohr[1]) for k, v in sums.items()}
        elements = sorted({a for pair in mean for a in pair})
        table = []
        for i, a in enumerate(elements):
            for b in elements[i:]:
                c6, c8 = mean[(a, b)]
                table.append((a, b, c6, c8))
        return cls(**{**parameters, "coefficients": tuple(table)})

    @property
    def elements(self) -> list[int]:
        return sorted({z for row in self.coefficients for z in row[:2]})


    def with_parameters(self, **changes) -> "D3Dispersion":
        """A copy with other damping or cutoff parameters and the same coefficients."""
        return replace(self, **changes)

    # -- evaluation ------------------------------------------------------------------------
    def _tables(self, z):
        """Species index per atom and the (species x species) C6, C8, R0 tables (eV Å^6, eV Å^8, Å)."""
        known = self.elements
        if not known:
            raise InputError("this D3Dispersion has no coefficients; build it with D3Dispersion.fitted(structures)")
        missing = sorted(set(np.unique(z).tolist()) - set(known))
        if missing:
            raise InputError(f"the dispersion term has coefficients for elements {known}, not {missing}; refit it "
                             "with D3Dispersion.fitted on structures that hold them")
        index = {a: k for k, a in enumerate(known)}
        n = len(known)
        c6, c8 = np.zeros((n, n)), np.zeros((n, n))
        for a, b, v6, v8 in self.coefficients:
            c6[index[a], index[b]] = c6[index[b], index[a]] = v6
            c8[index[a], index[b]] = c8[index[b], index[a]] = v8
        r0 = self.a1 * np.sqrt(c8 / c6) + self.a2 * units.BOHR_A
        species = np.array([index[int(a)] for a in z], dtype=np.int64)
        return species, c6, c8, r0

    def tail_energy(self, elements, cell) -> float:
        """The homogeneous correction beyond the switch for this composition and box, eV (0 if no tail)."""
        if not self.tail or cell is None:
            return 0.0
        species, integrals = self._tail_integrals(tuple(np.asarray(elements, dtype=int).tolist()))
        counts = np.bincount(species, minlength=len(integrals)).astype(float)
        return float(0.5 * (counts[:, None] * counts[None, :] * integrals).sum() / volume(cell))

    def _tail_integrals(self, elements: tuple):
        """Species of each atom and T_ab = int 4 pi r^2 (1 - sw) u_ab dr (eV Å^3), computed once per table."""
        cache = self.__dict__.setdefault("_tail_cache", {})
        species, c6, c8, r0 = self._tables(np.asarray(elements))
        if "T" not in cache:
            # numerically over the switch and beyond it to 4 cutoffs, analytically (u ~ -C/r^n) further out
            r_on, far = self.cutoff_A - self.switch_width_A, 4.0 * self.cutoff_A
            r = np.linspace(r_on, far, 20001)[:, None, None]
            u = -(self.s6 * c6 / (r ** 6 + r0 ** 6) + self.s8 * c8 / (r ** 8 + r0 ** 8))
            weight = 1.0 - switch(r, r_on, self.cutoff_A)[0]
            t = trapezoid(4 * np.pi * r ** 2 * weight * u, r[:, 0, 0], axis=0)
            cache["T"] = t - 4 * np.pi * (self.s6 * c6 / (3 * far ** 3) + self.s8 * c8 / (5 * far ** 5))
        return species, cache["T"]

    def compute(self, elements, positions_A, cell=None, molecules=None, *, forces: bool = True):
        """Dispersion energy, forces and strain derivative of one structure.

        Parameters
        ----------
        elements : array_like (n,) int
            Atomic numbers (those of the coefficient table).
        positions_A : array_like (n, 3)
            Cartesian positions, Å.
        cell : array_like (3, 3), optional
            Lattice vectors (rows, Å) of a periodic box; None for open boundaries.  A box thinner than
            the cutoff is fine: every lattice image within the cutoff is summed.
        molecules : array_like (n,) int, optional
            Ignored: dispersion acts between all pairs (the argument makes the signature that of every
            term in `EnvironmentModel.fixed_terms`).
        forces : bool
            False returns the energy only.  The last geometry's result is kept, so asking for the
            energy and then the forces of one structure (as a QM/ML step does) evaluates it once.

        Returns
        -------
        energy : float
            eV.
        forces : ndarray (n, 3) or None
            -dE/dR, eV/Å (None with ``forces=False``).
        strain_derivative : ndarray (3, 3) or None
            dE/d(strain) for a homogeneous strain of positions and cell, R -> R (I + ε)^T, eV: the
            convention of `Prediction.strain_derivative`; stress = strain_derivative / volume.
            None without a cell or with ``forces=False``.
        """
        z, x = self._check(elements, positions_A)
        h = None if cell is None else check_cell(cell, right_handed=False)
        # the QM/ML step asks for the energy and then for the forces of one geometry: evaluate it once
        key = (z.tobytes(), x.tobytes(), None if h is None else np.asarray(h, float).tobytes())
        cache = self.__dict__.setdefault("_last", {})
        if cache.get("key") != key:
            cache.clear()
            cache["value"] = self._evaluate(z, x, h)
            cache["key"] = key
        energy, grad, strain_derivative = cache["value"]
        if not forces:
            return energy, None, None
        return energy, -grad, None if h is None else strain_derivative.copy()

    def _evaluate(self, z, x, h):
        """Energy (eV), dE/dR (eV/Å) and dE/d(strain) (eV, periodic only) of one structure."""
        n = len(z)
        if n == 0:
            return 0.0, np.zeros((0, 3)), np.zeros((3, 3))
        species, c6, c8, r0 = self._tables(z)
        i_all, j_all, shift_all = _half_pairs(x, h, self.cutoff_A)
        grad = np.zeros((n, 3))
        strain_derivative = np.zeros((3, 3))
        energy = 0.0
        r_on = self.cutoff_A - self.switch_width_A
        for a in range(0, len(i_all), PAIR_CHUNK):  # bounded memory for any number of pairs
            i, j = i_all[a:a + PAIR_CHUNK], j_all[a:a + PAIR_CHUNK]
            vec = x[j] + shift_all[a:a + PAIR_CHUNK] - x[i]
            r = np.sqrt(np.einsum("pk,pk->p", vec, vec))
            if len(r) and r.min() < 0.1:
                k = int(np.argmin(r))
                raise InputError(f"atoms {int(i[k])} and {int(j[k])} are {r[k]:.3g} Å apart: overlapping atoms; "
                                 "check the positions (Å)")
            si, sj = species[i], species[j]
            p6, p8 = self.s6 * c6[si, sj], self.s8 * c8[si, sj]
            r2 = r * r
            r6, rr0 = r2 * r2 * r2, r0[si, sj]
            d6, d8 = r6 + rr0 ** 6, r6 * r2 + rr0 ** 8
            u = -(p6 / d6 + p8 / d8)
            sw, dsw = switch(r, r_on, self.cutoff_A)
            energy += float((u * sw).sum())  # each pair once
            du = (6.0 * p6 * r6 / (r * d6 * d6) + 8.0 * p8 * r6 * r / (d8 * d8)) * sw + u * dsw
            g = (du / r)[:, None] * vec  # dE/d(pair vector)
            for k in range(3):  # bincount: scatter-add many times faster than np.add.at
                grad[:, k] += np.bincount(j, g[:, k], minlength=n) - np.bincount(i, g[:, k], minlength=n)
            strain_derivative += g.T @ vec
        tail = self.tail_energy(z, h)
        # the tail depends on the volume only: E ~ 1/V, dE/d(strain) = -E_tail I
        return energy + tail, grad, strain_derivative - tail * np.eye(3)

    def energy(self, elements, positions_A, cell=None) -> float:
        """Dispersion energy only, eV (see `compute`)."""
        return self.compute(elements, positions_A, cell, forces=False)[0]

    @staticmethod
    def _check(elements, positions_A):
        try:
            z_in = np.asarray(elements)
            x = np.asarray(positions_A, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("elements must be atomic numbers and positions an (n, 3) array of Å") from None
        if z_in.ndim != 1 or (len(z_in) and not np.issubdtype(z_in.dtype, np.integer)):
            raise InputError(f"elements must be a 1-D array of atomic numbers (int), got {z_in.dtype} of shape "
                             f"{z_in.shape}")
        z = z_in.astype(np.int32)
        if x.shape != (len(z), 3):
            raise InputError(f"positions must have shape ({len(z)}, 3), got {x.shape}")
        bad = np.nonzero((z < 1) | (z > MAX_ATOMIC_NUMBER))[0]
        if len(bad):
            raise InputError(f"atom {int(bad[0])} has atomic number {int(z_in[bad[0]])}; D3 covers "
                             f"1-{MAX_ATOMIC_NUMBER} (H-Lr): remove the atom or use a model without a dispersion term")
        if not np.isfinite(x).all():
            raise InputError(f"position of atom {int(np.nonzero(~np.isfinite(x).all(1))[0][0])} is not finite; "
                             "check the structure or the integrator")
        return z, x
