"""Machine-learned environment models: neighbour lists, the committee model, datasets, labelling, training.

Folder map: `neighbours` (cell lists), `model` (descriptor, networks, charges, predictions),
`dataset` (storage), `labelling` (PySCF and GFN2-xTB reference data), `train`, `io` (model files),
`committee` (per-structure committee spread and error).
"""

from .committee import committee_spread, predict_frames
from .dataset import Dataset, Frame
from .io import ModelFileError, load_model, read_header, save_model
from .labelling import Label, PySCFLabeller, XTBLabeller, esp_grid, molecules_from_distances, resp_charges
from .model import EnvironmentModel, Prediction
from .neighbours import neighbour_list
from .potential import MLPotential, PotentialResult
from .train import TrainingOptions, evaluate, train

__all__ = ["Dataset", "Frame", "EnvironmentModel", "Prediction", "MLPotential", "PotentialResult", "neighbour_list", "load_model", "save_model",
           "read_header", "ModelFileError", "Label", "PySCFLabeller", "XTBLabeller", "esp_grid", "resp_charges",
           "molecules_from_distances", "TrainingOptions", "train", "evaluate", "committee_spread", "predict_frames"]
