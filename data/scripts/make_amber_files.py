"""Write an AMBER PRMTOP + INPCRD of the shipped peptide in water (amber14 ff14SB + TIP3P through OpenMM, converted
by ParmEd), the test input of `qmml.mm.MMForceField.from_amber`.

    python data/scripts/make_amber_files.py      # writes data/structures/peptide_water_amber.{prmtop,inpcrd}
"""

from pathlib import Path

import openmm.app as app
import parmed

ROOT = Path(__file__).resolve().parents[2]
STRUCTURES = ROOT / "data" / "structures"


def main() -> None:
    pdb = app.PDBFile(str(STRUCTURES / "peptide_water.pdb"))
    system = app.ForceField("amber14-all.xml", "amber14/tip3p.xml").createSystem(
        pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    structure = parmed.openmm.load_topology(pdb.topology, system, xyz=pdb.positions)
    for suffix in ("prmtop", "inpcrd"):
        structure.save(str(STRUCTURES / f"peptide_water_amber.{suffix}"), overwrite=True)


if __name__ == "__main__":
    main()
