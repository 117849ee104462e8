"""Generate a synthetic diabetes data set for the training lab.

The columns, ranges and class balance imitate the public diabetes data set
used by the Azure ML labs, but every value is drawn from simple
distributions with a fixed seed, so the output is byte-identical from run
to run.  ``Diabetic`` follows a logistic model of the features plus noise,
so that a logistic regression reaches an AUC of about 0.85.

Usage: python generate_data.py [--rows N] [--seed S] [-o PATH]
"""

import argparse
from pathlib import Path

import numpy as np

COLUMNS = [
    "PatientID",
    "Pregnancies",
    "PlasmaGlucose",
    "DiastolicBloodPressure",
    "TricepsThickness",
    "SerumInsulin",
    "BMI",
    "DiabetesPedigree",
    "Age",
    "Diabetic",
]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "data" / "diabetes.csv"

# Share of patients with 0, 1, ..., 14 pregnancies.
PREGNANCY_WEIGHTS = np.array([29, 19, 6, 8, 4.5, 4.5, 7, 6, 4.5, 6, 3, 1, 0.5, 0.5, 0.2])


def mixture(rng, n, share, first, second):
    """Draw n values: from first(k) with probability share, else second(k)."""
    pick = rng.random(n) < share
    out = np.empty(n)
    out[pick] = first(pick.sum())
    out[~pick] = second((~pick).sum())
    return out


def generate(rows, seed):
    """Return the data set as a dict of column name -> numpy array."""
    if not 0 < rows <= 1_000_000:
        raise ValueError("rows must be between 1 and 1,000,000")
    rng = np.random.default_rng(seed)
    data = {}
    data["PatientID"] = 1_000_000 + rng.choice(1_000_000, size=rows, replace=False)
    data["Pregnancies"] = rng.choice(
        len(PREGNANCY_WEIGHTS), size=rows, p=PREGNANCY_WEIGHTS / PREGNANCY_WEIGHTS.sum()
    )
    data["PlasmaGlucose"] = np.clip(rng.normal(108, 31, rows), 44, 192).round()
    data["DiastolicBloodPressure"] = np.clip(rng.normal(71, 17, rows), 24, 117).round()
    data["TricepsThickness"] = np.clip(
        mixture(rng, rows, 0.3, lambda k: rng.uniform(7, 20, k), lambda k: rng.normal(38, 10, k)),
        7,
        92,
    ).round()
    data["SerumInsulin"] = np.clip(rng.lognormal(np.log(85), 0.95, rows), 14, 796).round()
    data["BMI"] = np.clip(
        mixture(
            rng, rows, 0.4, lambda k: rng.uniform(18.2, 24, k), lambda k: rng.normal(38, 6.5, k)
        ),
        18.2,
        56.1,
    )
    data["DiabetesPedigree"] = np.clip(
        mixture(
            rng,
            rows,
            0.6,
            lambda k: rng.uniform(0.078, 0.25, k),
            lambda k: rng.lognormal(np.log(0.75), 0.4, k),
        ),
        0.078,
        2.3,
    )
    data["Age"] = np.clip(
        mixture(
            rng,
            rows,
            0.6,
            lambda k: 21 + rng.geometric(0.45, k) - 1,
            lambda k: rng.normal(40, 12, k),
        ),
        21,
        77,
    ).round()

    # Logistic model on standardised features, plus noise on the log-odds.
    weights = {
        "Pregnancies": 1.1,
        "PlasmaGlucose": 0.38,
        "DiastolicBloodPressure": 0.15,
        "TricepsThickness": 0.38,
        "SerumInsulin": 0.62,
        "BMI": 0.56,
        "DiabetesPedigree": 0.44,
        "Age": 0.94,
    }
    logit = np.full(rows, -1.05)
    for name, weight in weights.items():
        x = data[name]
        logit += weight * (x - x.mean()) / (x.std() or 1.0)
    logit += rng.normal(0, 0.3, rows)
    data["Diabetic"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return data


def write_csv(data, path):
    """Write the columns in COLUMNS order with fixed float formatting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    floats = {"BMI": "{:.8f}", "DiabetesPedigree": "{:.9f}"}
    columns = [
        [floats[name].format(v) for v in data[name]]
        if name in floats
        else [str(int(v)) for v in data[name]]
        for name in COLUMNS
    ]
    with open(path, "w", newline="\n", encoding="ascii") as f:
        f.write(",".join(COLUMNS) + "\n")
        for row in zip(*columns, strict=True):  # every column has one value per row
            f.write(",".join(row) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    data = generate(args.rows, args.seed)
    write_csv(data, args.output)
    share = data["Diabetic"].mean()
    print(f"Wrote {args.rows} rows ({share:.1%} diabetic) to {args.output}")


if __name__ == "__main__":
    main()
