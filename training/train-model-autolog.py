"""Train a diabetes classifier with MLflow autologging.

Same data handling and model as train-model-mlflow.py, but nothing is logged
by hand: mlflow.autolog() records the model's parameters, training metrics
and the model itself into the run the runner set up through
MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID and MLFLOW_RUN_ID.

Usage: python train-model-autolog.py --training_data PATH [--reg_rate R]
PATH is a CSV file or a folder of CSV files.
"""

import argparse
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

FEATURES = [
    "Pregnancies",
    "PlasmaGlucose",
    "DiastolicBloodPressure",
    "TricepsThickness",
    "SerumInsulin",
    "BMI",
    "DiabetesPedigree",
    "Age",
]
LABEL = "Diabetic"


def read_data(path):
    """Read a CSV file, or concatenate every *.csv in a folder."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"No CSV files in {path}")
    return pd.concat((pd.read_csv(f) for f in files), ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training_data", required=True)
    parser.add_argument("--reg_rate", type=float, default=0.01)
    args = parser.parse_args()

    data = read_data(args.training_data)
    print(f"Read {len(data)} rows from {args.training_data}")
    X_train, X_test, y_train, y_test = train_test_split(
        data[FEATURES].values, data[LABEL].values, test_size=0.30, random_state=0
    )

    mlflow.autolog()
    with mlflow.start_run():
        model = LogisticRegression(C=1 / args.reg_rate, solver="liblinear")
        model.fit(X_train, y_train)
        accuracy = model.score(X_test, y_test)
        auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
        print(f"Accuracy: {accuracy:.4f}")
        print(f"AUC: {auc:.4f}")


if __name__ == "__main__":
    main()
