"""Print the accuracy table of the shipped models (markdown) from their headers and test sets.

    python data/scripts/model_report.py
"""

from pathlib import Path

from qmml import load_model
from qmml.ml import Dataset, evaluate, read_header
from qmml.ml.io import SHIPPED_MODELS

DATASETS = Path(__file__).resolve().parents[1] / "datasets"

print("| model | elements | reference | test set | frames / atoms | energy MAE (meV/atom) | force MAE (eV/Å) "
      "| force RMSE (eV/Å) | charge MAE (e) | charge RMSE (e) | members | file size |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for path in sorted(SHIPPED_MODELS.glob("*.pt")):
    header = read_header(path)
    test = Dataset.load(DATASETS / f"{path.stem}_test.npz")
    m = evaluate(load_model(path, device="cpu"), test)
    print(f"| `{path.stem}` | {', '.join(header['elements'])} | {header['reference']} | "
          f"`data/datasets/{path.stem}_test.npz` | {m['frames']} / {m['atoms']} | "
          f"{1000 * m['energy_mae_eV_per_atom']:.2f} | {m['force_mae_eV_A']:.3f} | {m['force_rmse_eV_A']:.3f} | "
          f"{m['charge_mae_e']:.4f} | {m['charge_rmse_e']:.4f} | {header['architecture']['n_members']} | "
          f"{path.stat().st_size / 1024:.0f} KiB |")
