"""Every unit conversion constant of qmml (CODATA 2018).

The public API speaks Å, eV, fs, amu, e and K.  Hartree and Bohr appear only
inside the PySCF and i-PI adapters, which convert with the constants below.
"""

#: 1 Hartree in eV (CODATA 2018).
HARTREE_EV = 27.211386245988
#: 1 Bohr in Å (CODATA 2018).
BOHR_A = 0.529177210903
#: Å -> Bohr.
ANGSTROM_BOHR = 1.0 / BOHR_A
#: Hartree/Bohr -> eV/Å.
HARTREE_PER_BOHR_EV_PER_A = HARTREE_EV / BOHR_A

#: Elementary charge in C (exact since 2019).
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: Avogadro constant in 1/mol (exact).
AVOGADRO = 6.02214076e23
#: Boltzmann constant in eV/K (exact).
BOLTZMANN_EV_PER_K = 8.617333262e-5
#: 1 kcal/mol in eV.
KCAL_PER_MOL_EV = 4184.0 / (ELEMENTARY_CHARGE_C * AVOGADRO)
#: 1 kJ/mol in eV.
KJ_PER_MOL_EV = 1000.0 / (ELEMENTARY_CHARGE_C * AVOGADRO)
#: Å per nm (OpenMM's length unit, inside `qmml.mm` only).
NM_A = 10.0
#: Coulomb constant e^2/(4 pi eps0) in eV*Å: the energy of two unit charges 1 Å apart.
COULOMB_EV_A = HARTREE_EV * BOHR_A
#: Atomic mass unit in kg (CODATA 2018).
AMU_KG = 1.66053906660e-27
#: amu*Å^2/fs^2 -> eV (kinetic energy with masses in amu, velocities in Å/fs).
AMU_A2_PER_FS2_EV = AMU_KG * 1e-20 / 1e-30 / ELEMENTARY_CHARGE_C
#: 1 Debye in e*Å (dipole moments).
DEBYE_E_A = 0.20819434

#: Femtoseconds in a picosecond (rates given per ps, time steps in fs).
FS_PER_PS = 1000.0

#: e^2 / (eV Å fs) -> S/m: Green-Kubo conductivity from currents in e Å/fs, volumes in Å^3 and k_B T in eV.
CONDUCTIVITY_S_PER_M = ELEMENTARY_CHARGE_C * 1e25
#: Å^2/fs -> cm^2/s (diffusion coefficients).
A2_PER_FS_CM2_PER_S = 1e-16 / 1e-15

#: Planck constant h in eV*s (exact since 2019).
PLANCK_EV_S = 6.62607015e-34 / ELEMENTARY_CHARGE_C
#: Reduced Planck constant hbar in eV*fs (ring-polymer spring frequencies, quantum kinetic energies).
HBAR_EV_FS = PLANCK_EV_S * 1e15 / (2.0 * 3.141592653589793)
#: Speed of light in cm/fs (exact).
SPEED_OF_LIGHT_CM_PER_FS = 2.99792458e-5
#: 1 cm^-1 (wavenumber) -> eV: h*c.
INVERSE_CM_EV = PLANCK_EV_S * SPEED_OF_LIGHT_CM_PER_FS * 1e15

#: Pressure/stress: 1 eV/Å^3 in GPa.
EV_PER_A3_GPA = ELEMENTARY_CHARGE_C * 1e30 / 1e9
#: 1 bar in eV/Å^3.
BAR_EV_PER_A3 = 1e5 / (ELEMENTARY_CHARGE_C * 1e30)
#: Density: 1 amu/Å^3 in g/cm^3 (1 g = 1e-3 kg, 1 cm^3 = 1e24 Å^3).
AMU_PER_A3_G_PER_CM3 = AMU_KG * 1e3 * 1e24
