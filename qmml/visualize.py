"""3D views of a partition in notebooks: QM region, link atoms and environment charges (py3Dmol).

Needs ``pip install 'qmml[view]'`` (py3Dmol).  The QM atoms are drawn as balls and sticks by
element, link atoms as green balls, and the environment as sticks coloured by charge (red negative,
white neutral, blue positive, symmetric scale).  With three layers the ML shell is the environment drawn
that way and the MM layer thin grey lines; ``radius_A`` leaves out the environment residues far from the
QM region (a solvated enzyme has tens of thousands of atoms).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError


def partition_pdb(partition, positions=None, charges=None, radius_A: float | None = None) -> str:
    """PDB text of all atoms then the link atoms, charge (e) in the B-factor column and the
    region as the chain: ``Q`` (QM atoms), ``E`` (environment, the ML shell with three layers), ``M`` (the MM
    layer), ``L`` (link atoms).  ``radius_A`` keeps only the environment residues with an atom within that
    distance (Å) of a QM atom."""
    system = partition.system
    x = np.asarray(system.positions if positions is None else positions, dtype=np.float64)
    if x.shape != (system.n_atoms, 3):
        raise InputError(f"positions have shape {x.shape}, expected ({system.n_atoms}, 3)")
    q = np.zeros(system.n_atoms)
    if charges is not None:
        charges = np.asarray(charges, dtype=np.float64)
        if charges.shape == (len(partition.env_atoms),):
            q[partition.env_atoms] = charges
        elif charges.shape == (system.n_atoms,):
            q[:] = charges
        else:
            raise InputError(f"charges have shape {charges.shape}: give one per environment atom "
                             f"({len(partition.env_atoms)}) or one per atom ({system.n_atoms})")
    elif system.charges is not None:
        q[partition.env_atoms] = system.charges[partition.env_atoms]
    region = np.array(["E"] * system.n_atoms, dtype=object)
    if partition.shell is not None:
        region[partition.mm_atoms] = "M"
    region[partition.qm_atoms] = "Q"
    shown = np.arange(system.n_atoms)
    if radius_A is not None:
        from MDAnalysis.lib.distances import capped_distance

        near = capped_distance(x[partition.qm_atoms], x, float(radius_A), box=system.box, return_distances=False)[:, 1]
        shown = np.flatnonzero(np.isin(system.residue_index, system.residue_index[near]))
    centres = partition.qm_positions(x)[len(partition.qm_atoms):]
    rows = [(system.names[i], system.resnames[i], system.resids[i], x[i], q[i], region[i], system.elements[i])
            for i in shown]
    rows += [("HL", "LNK", 0, centres[k], 0.0, "L", link.element) for k, link in enumerate(partition.links)]
    lines = []
    for serial, (name, resname, resid, xyz, charge, chain, element) in enumerate(rows, start=1):
        lines.append(f"HETATM{serial % 100000:5d} {str(name)[:4]:<4s} {str(resname)[:3]:>3s} {chain}{int(resid) % 10000:4d}"
                     f"    {xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{1.0:6.2f}{charge:6.2f}          {str(element):>2s}")
    return "\n".join(lines + ["END"]) + "\n"


def view_partition(partition, positions=None, charges=None, *, charge_range: float | None = None,
                   width: int = 640, height: int = 420, label_links: bool = True, radius_A: float | None = None):
    """An interactive 3D view of a partition.

    Parameters
    ----------
    partition : Partition
    positions : array_like (n_atoms, 3), optional
        Å; default the system's positions.
    charges : array_like, optional
        Environment charges (e), one per environment atom (e.g. ``Result.env_charges``) or per atom;
        default the topology charges.
    charge_range : float, optional
        Charges of ``-charge_range`` and ``+charge_range`` (e) get the full red and blue; default the
        largest absolute environment charge.
    width, height : int
        Pixels.
    label_links : bool
        Put a "link" label on each link atom.
    radius_A : float, optional
        Draw only the environment residues within this distance (Å) of the QM region (default: all).

    Returns
    -------
    py3Dmol.view
        Shown when it is the last expression of a notebook cell.
    """
    try:
        import py3Dmol
    except ImportError:
        raise InputError("view_partition needs py3Dmol: pip install 'qmml[view]'") from None
    pdb = partition_pdb(partition, positions, charges, radius_A)
    q = np.array([float(line[60:66]) for line in pdb.splitlines() if line.startswith("HETATM")])
    span = float(charge_range) if charge_range else max(float(np.abs(q).max()), 1e-3)
    view = py3Dmol.view(width=width, height=height)
    view.addModel(pdb, "pdb")
    view.setStyle({"chain": "E"}, {"stick": {"radius": 0.08, "colorscheme": {"prop": "b", "gradient": "rwb",
                                                                             "min": -span, "max": span}}})
    view.setStyle({"chain": "M"}, {"line": {"color": "grey", "opacity": 0.6}})
    view.setStyle({"chain": "Q"}, {"stick": {"radius": 0.18}, "sphere": {"scale": 0.28}})
    view.setStyle({"chain": "L"}, {"sphere": {"scale": 0.32, "color": "lime"}, "stick": {"radius": 0.12}})
    if label_links:
        for line in pdb.splitlines():
            if line.startswith("HETATM") and line[21] == "L":
                view.addLabel("link", {"position": {"x": float(line[30:38]), "y": float(line[38:46]),
                                                    "z": float(line[46:54])},
                                       "fontSize": 11, "backgroundOpacity": 0.6})
    view.zoomTo({"chain": ["Q", "L"]})
    return view
