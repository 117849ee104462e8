"""The benchmark script runs (its short mode); timings are judged in benchmarks/RESULTS.md, not
here."""

import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e


# the quick run in groups, each a test of its own, so that xdist runs them side by side
SLOW = ["endpoint", "batch", "curated", "emulator"]


def quick(*words: str, skip: tuple[str, ...] = ()) -> list[str]:
    """`run.py --quick [WORDS] [--skip ...]`: its rows (a line ending in ok or MISSED)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", *words]
        + (["--skip", *skip] if skip else []),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["case", "mlrun", "baseline", "ratio", "target"]
    return [line for line in lines if line.endswith((" ok", " MISSED"))]


def test_benchmarks_run_in_quick_mode():
    rows = quick(skip=tuple(SLOW))
    # twelve cases, the pipeline re-apply, five scale rows (issue 18's four, issue 26's jobs
    # without a compute), the state's bytes per job, three environment costs, the tracking
    # server's two
    assert len(rows) == 24, rows
    assert any(line.startswith("first apply (empty home) vs the same, warm ") for line in rows)
    assert any(line.startswith("2-step pipeline, an output on vs one job ") for line in rows)
    assert any(line.startswith("state bytes written per job ") for line in rows)
    assert any(line.startswith("3-step pipeline re-applied, nothing changed ") for line in rows)
    assert any(line.startswith("pipeline of ") for line in rows)
    assert any(line.startswith("sweep of ") for line in rows)
    assert any(" trivial jobs, no compute vs bare loop " in line for line in rows)
    assert any(line.startswith("  mlrun own CPU per job ") for line in rows)
    assert any(line.startswith("re-apply of 20 unchanged jobs vs validate ") for line in rows)
    assert any(line.startswith("  layer over mlrun's packages ") for line in rows)
    assert any(line.startswith("tracking server start ") for line in rows)
    assert any(line.startswith("job via tracking server vs direct store ") for line in rows)
    assert any(line.startswith("validate 10 heavy inputs vs the seed 10x ") for line in rows)


@pytest.mark.parametrize(
    "word,starts",
    [
        ("endpoint", ["  p50: router vs straight to scoring server ", "  p99: router vs straight"]),
        ("batch", ["batch scoring, 100 files, vs a plain loop "]),
        ("curated", ["seed, curated env built, vs its scripts (quick) "]),
        ("emulator", ["  wall ", "  requests "]),
    ],
)
def test_the_slower_benchmarks_run_in_quick_mode(word, starts):
    """The seed in its curated environment (issue 27), the emulator's wall and requests, the
    online endpoint's p50 and p99 and the batch endpoint's scoring (issue 29)."""
    assert word in SLOW
    rows = quick(word)
    assert len(rows) == len(starts), rows
    assert all(any(row.startswith(s) for row in rows) for s in starts), rows
