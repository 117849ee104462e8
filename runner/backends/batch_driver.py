"""The scoring script of a batch deployment of an MLflow model without one (Azure ML writes its
own then: "no-code deployment"), run by a parallel job's workers in the model's environment (its
Python has MLflow and pandas; not necessarily mlrun).

The model is loaded from AZUREML_MODEL_DIR (the folder holding the model's folder, as on Azure)
when the script is imported. run(mini_batch) reads each file (CSV, TSV, Parquet, JSON lines),
predicts, and returns a line per row, `ROW,PREDICTION,FILE`: the rows Azure's MLflow batch
deployments append to `output_file_name`, which the DP-100 lab reads with
`pd.read_csv(path, index_col=0, names=["patient", "prediction", "file"])`.
"""

import glob
import json
import os
from typing import Any


def _load() -> Any:
    import mlflow.pyfunc

    root = os.environ["AZUREML_MODEL_DIR"]
    found = [p for p in sorted(glob.glob(os.path.join(root, "*"))) if os.path.isdir(p)]
    path = os.path.realpath(found[0] if len(found) == 1 else root)  # MLflow refuses a symlink
    return mlflow.pyfunc.load_model(path)


# loaded when the script is imported: a parallel job's workers are forked after that, so the
# model (and MLflow, pandas, its flavor's library) is loaded once for all of them
model: Any = _load()


def init():
    """Azure's driver loads the model here; this one has when it was imported."""


def _read(path):
    import pandas as pd

    lowered = path.lower()
    if lowered.endswith(".parquet"):
        return pd.read_parquet(path)
    if lowered.endswith(".tsv"):
        return pd.read_csv(path, sep="\t")
    if lowered.endswith((".json", ".jsonl")):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)


def _value(prediction):
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    return json.dumps(prediction) if isinstance(prediction, (list, dict)) else str(prediction)


def run(mini_batch):
    lines = []
    for path in mini_batch:
        data = _read(path)
        predictions = model.predict(data)
        if hasattr(predictions, "to_numpy"):  # a Series or a DataFrame
            predictions = predictions.to_numpy()
        name = os.path.basename(path)
        for row, prediction in zip(data.index, predictions, strict=True):
            lines.append(f"{row},{_value(prediction)},{name}")
    return lines
