"""Machine-learned environment models: the committee model, datasets, labelling, training.

Folder map: `model` (descriptor, networks, charges, predictions),
`dispersion` (the explicit D3(BJ) dispersion term of a model), `baseline` (Morse X-H bonds and
contact walls under the networks),
`dataset` (storage), `labelling` (PySCF and GFN2-xTB reference data), `train`, `io` (model files),
`committee` (per-structure committee spread and error), `uncertainty` (committee spread of a running
simulation), `cutout` (capped clusters around flagged atoms), `active` (active learning during
dynamics), `adversarial` (uncertainty-maximizing displacements, and the softest path to instability).  Neighbour lists live in
`qmml.periodic.neighbours`.
"""

from .active import ActiveLearning, Thresholds
from .adversarial import AdversarialResult, EnergyAscent, adversarial_attack, energy_ascent
from .baseline import BondBaseline
from .committee import committee_spread, predict_frames
from .cutout import Cluster, cut_out
from .dataset import Dataset, Frame
from .dispersion import D3Dispersion
from .io import ModelFileError, load_model, read_header, save_model
from .labelling import Label, LabellerSpec, label_structures, PySCFLabeller, XTBLabeller, esp_grid, molecules_from_distances, resp_charges
from .model import EnvironmentModel, Prediction
from ..periodic.neighbours import neighbour_list
from ..potential import PotentialResult
from .potential import MLPotential
from .train import TrainingOptions, evaluate, train
from .uncertainty import Uncertainty, committee_uncertainty

__all__ = ["Dataset", "Frame", "D3Dispersion", "BondBaseline", "EnvironmentModel", "Prediction", "MLPotential", "PotentialResult", "neighbour_list", "load_model", "save_model",
           "read_header", "ModelFileError", "Label", "PySCFLabeller", "XTBLabeller", "esp_grid", "resp_charges",
           "molecules_from_distances", "TrainingOptions", "train", "evaluate", "committee_spread", "predict_frames",
           "ActiveLearning", "Thresholds", "LabellerSpec", "label_structures", "Cluster", "cut_out",
           "Uncertainty", "committee_uncertainty", "AdversarialResult", "adversarial_attack",
           "EnergyAscent", "energy_ascent"]
