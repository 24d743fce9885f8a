"""Preliminary condensed-phase water model: the shipped model's member 0, fine-tuned with the D3 term and stress."""
import sys, glob, json, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
import qmml
from qmml.ml import Dataset, TrainingOptions, train, evaluate, save_model
root = "/work/main/data"
files = sorted(glob.glob(f"{root}/campaigns/water/labels/chunk_[0-9][0-9][0-9].npz"))
test_files = [f for f in files if int(f[-7:-4]) >= 30]
train_files = [f for f in files if int(f[-7:-4]) < 30]
def load(fs):
    d = Dataset.load(fs[0])
    for f in fs[1:]:
        d = d + Dataset.load(f)
    return d
periodic = load(train_files)
clusters = Dataset.load(f"{root}/datasets/water_train.npz")
train_set = clusters + periodic
print(len(train_files), "chunks,", len(periodic), "periodic frames +", len(clusters), "cluster frames; test chunks", test_files, flush=True)
initial = qmml.load_model("water").select_members([0]).float()
opts = TrainingOptions(dispersion={}, stress_weight=float(sys.argv[2]) if len(sys.argv) > 2 else 10.0,
                       batch_size=8, max_epochs=60, patience=8, learning_rate=1e-3, max_minutes=float(sys.argv[3]) if len(sys.argv) > 3 else 20,
                       progress=False, seed=0)
t = time.time()
model = train(train_set, opts, initial=initial, history_path="/tmp/exp/history.csv")
print("trained in %.1f min" % ((time.time() - t) / 60), json.dumps(model.training_report["validation"]), flush=True)
save_model(model, "/tmp/exp/prelim.pt", reference="GFN2-xTB (tblite 0.8), Mulliken charges", training_set_hash=train_set.hash(), metrics={})
old = qmml.load_model("water").float()
for name, m in (("old shipped", old), ("prelim", model)):
    for tname, ds in (("64-water chunks", load(test_files) if test_files else None), ("periodic train", periodic),
                      ("water_test", Dataset.load(f"{root}/datasets/water_test.npz"))):
        if ds is None:
            continue
        r = evaluate(m, ds)
        print(name, tname, {k: round(v, 4) for k, v in r.items() if isinstance(v, float)}, flush=True)
