"""Azure's own examples through `mlrun validate` (issue 30): every YAML file under `cli/jobs`,
`cli/assets` and `cli/endpoints` of azureml-examples, each included unmodified through `file:` in
a one-entry lab spec of the section `mlrun import` maps it to, validated (and planned, for a
sample). Writes a table (file, section, result, first error line) and prints counts per folder.
Run by hand; it reads the mirrored repository and commits none of its files.

    python benchmarks/corpus.py                       # every file, a plan for every 10th valid one
    python benchmarks/corpus.py --out corpus.md       # the table's file (default:
                                                      # $TMPDIR/mlrun-corpus.md)
    python benchmarks/corpus.py --keep                # keep the extracted examples and specs
    python benchmarks/corpus.py pipelines automl      # files whose path contains a word
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner import importer  # noqa: E402
from runner.errors import UserError  # noqa: E402

MIRROR = Path("/work/.mirror/Azure+azureml-examples/repo")
FOLDERS = ("cli/jobs", "cli/assets", "cli/endpoints")
SECTIONS = {
    "job": "jobs",
    "component": "components",
    "environment": "environments",
    "data": "data",
    "datastore": "datastores",
    "model": "models",
    "endpoint": "endpoints",
    "deployment": "endpoints.*.deployments",
    "compute": "computes",
}
# a value the example's script fills in before the file is used (`<ATTACHED_SPARK_POOL_NAME>`)
PLACEHOLDER = re.compile(r"'<[A-Za-z_ -]+>'|\{\{[A-Z_]+\}\}")
MISSING_PATH = re.compile(
    r"(?:does not exist|not found|no such file|is not there|missing)[^']*'?([^'\s:]+)?", re.I
)
SETUP = re.compile(r"prepare|download|setup|deploy|run", re.I)  # named first, when several do
SCRIPTS = (".sh", ".py", ".ipynb")  # what the examples' setup runs
NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]")
ARC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/"
INSTANCES = re.compile(r"^\s*instance_count:\s*(\d+)", re.M)
# `compute: azureml:cpu-cluster`: a cluster the examples' workspace has (their CI makes it)
COMPUTE = re.compile(
    r"^\s*(?:default_)?compute:\s*['\"]?(?:azureml:)?([A-Za-z0-9][A-Za-z0-9_-]*)['\"]?\s*(?:#.*)?$",
    re.M,
)


@dataclass
class Row:
    file: str  # relative to the examples' root
    section: str
    result: str  # ok, warnings, error, skipped
    first: str  # the first error (or skip reason), one line
    note: str = ""  # what the script can tell by itself: in progress, needs downloaded data
    plan: str = ""


def extract(repo: Path, dest: Path) -> list[str]:
    """HEAD's `cli/` tree written under dest (what `git archive` gives, but it stops at the
    first blob the mirror lacks); the paths the mirror lacks."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "-z", "HEAD", "cli"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    entries = []
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        mode, _, sha = meta.split()
        entries.append((mode, sha, path))
    cat = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert cat.stdin is not None and cat.stdout is not None
    absent = []
    for mode, sha, path in entries:
        cat.stdin.write(sha.encode() + b"\n")
        cat.stdin.flush()
        head = cat.stdout.readline().split()
        if head[1] == b"missing":
            absent.append(path)
            continue
        data = cat.stdout.read(int(head[2]))
        cat.stdout.read(1)
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            os.symlink(data.decode(), target)
        else:
            target.write_bytes(data)
            if mode == "100755":
                target.chmod(0o755)
    cat.stdin.close()
    cat.wait()
    return absent


def endpoint_for(deployment: Path, name: str, root: Path) -> Path | None:
    """The endpoint file a deployment file goes with: one whose name is its endpoint_name, in its
    folder or a folder above it (up to cli/endpoints/KIND); else the nearest endpoint file."""
    nearest = None
    folder = deployment.parent
    top = root / "cli" / "endpoints"
    while folder != top and top in folder.parents:
        for candidate in sorted(folder.glob("*.y*ml")):
            try:
                data = importer.read_yaml(candidate)
                if importer.kind(data, candidate) != "endpoint":
                    continue
            except UserError:
                continue
            if data.get("name") == name:
                return candidate
            nearest = nearest or candidate
        folder = folder.parent
    return nearest


def spec_for(path: Path, what: str, data: dict, out: Path, root: Path) -> dict:
    """The one-entry lab spec for an az ml file, as `mlrun import` makes it (a deployment goes
    under the endpoint file it belongs to, keyed by its endpoint_name)."""
    if what != "deployment":
        doc, _ = importer.build([path], out, name="corpus")
        return with_computes(doc, [path])
    endpoint_name = str(data.get("endpoint_name") or "endpoint")
    endpoint = endpoint_for(path, endpoint_name, root)
    deployments = {str(data.get("name") or path.stem): {"file": os.path.relpath(path, out.parent)}}
    if endpoint is None:  # the example's script makes it: `az ml online-endpoint create -n ...`
        doc, _ = importer.build([], out, name="corpus")
        batch = "batch" in str(data.get("$schema", "")).lower()
        key = endpoint_name if NAME.fullmatch(endpoint_name) else "endpoint"
        doc["endpoints"] = {
            key: {**({"type": "batch"} if batch else {}), "deployments": deployments}
        }
        return with_computes(doc, [path])
    doc, _ = importer.build([endpoint], out, name="corpus")
    ((_, block),) = doc["endpoints"].items()
    doc["endpoints"] = {endpoint_name: {**block, "deployments": deployments}}
    return with_computes(doc, [path, endpoint])


def with_computes(doc: dict, paths: list[Path]) -> dict:
    """The clusters the files name (`compute: azureml:cpu-cluster`), declared in the spec: the
    examples run in a workspace that has them."""
    texts = [p.read_text(errors="replace") for p in paths]
    names = sorted({n for t in texts for n in COMPUTE.findall(t)} - {"serverless"})
    if not names:
        return doc
    most = max([2] + [int(n) for t in texts for n in INSTANCES.findall(t)])
    # a Kubernetes online endpoint's compute: an attached cluster (its script attaches it)
    kube = {n for t in texts if "kubernetesonlineendpoint" in t.lower() for n in COMPUTE.findall(t)}
    computes = {
        n: {
            "type": "amlcompute",
            "size": "STANDARD_NC6S_V3" if "gpu" in n or "a100" in n else "STANDARD_DS3_V2",
            "min_instances": 0,
            "max_instances": most,
        }
        if n not in kube
        else {"type": "kubernetes", "resource_id": ARC + n, "namespace": "default"}
        for n in names
    }
    head = {k: v for k, v in doc.items() if k in ("name", "description", "variables", "workspace")}
    rest = {k: v for k, v in doc.items() if k not in head}
    return {**head, "computes": computes, **rest}


def first_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if ": error:" in line or "error:" in line.lower():
            return line.strip()
    return lines[0].strip() if lines else ""


def downloaded(first: str, path: Path, root: Path) -> str:
    """'needs downloaded data (SCRIPT)' when the error is a missing local path that a script of
    the example's folder (or the two above it) names; '' otherwise."""
    found = MISSING_PATH.search(first)
    if found is None:
        return ""
    words = {Path(n).name for n in re.findall(r"'([^'$<>{}]+)'", first)} - {"", ".", ".."}
    if not words:
        return ""
    mentions = re.compile("|".join(rf"(?<![\w.-]){re.escape(w)}(?![\w-])" for w in words))
    folder = path.parent
    for _ in range(3):
        for script in sorted(folder.iterdir(), key=lambda f: (not SETUP.search(f.name), f.name)):
            if script.suffix in SCRIPTS and script.is_file():
                if mentions.search(script.read_text(errors="replace")):
                    return f"needs downloaded data ({script.relative_to(root / 'cli')})"
        if folder.parent == root / "cli":
            break
        folder = folder.parent
    return ""


def what_else(text: str) -> str:
    """What a file that is no az ml resource file is, when it says so."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if data is None and re.search(r"\{\{|<[A-Za-z_ -]+>", text):
        return "a template its example's script fills in (not YAML as checked out)"
    if data is None:
        return "empty: a placeholder its example's script writes"
    if not isinstance(data, dict):
        return "not an az ml file"
    schema = str(data.get("$schema", ""))
    if "ModelVersionPackage" in schema:
        return "a model package (az ml model package): no section of a lab spec"
    if re.search(r"Run\.schema|Flow\.schema", schema) or "nodes" in data:
        return "a prompt flow file (pfazure), not an az ml resource"
    if {"managed_network", "identity"} & set(data) and "type" not in data:
        return "a workspace update file (az ml workspace update: network, identity)"
    if "dependencies" in data or "build_dependencies" in data:
        return "a conda / python_env environment file (a resource's part, not a resource)"
    return "not an az ml resource file (a script's settings or inputs)"


def placeholder(text: str) -> str:
    """'a template' when the error names a value the example's script fills in."""
    found = PLACEHOLDER.search(text)
    return f"a template: its script fills in {found[0]}" if found else ""


def mlrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def check(path: Path, root: Path, scratch: Path, index: int, absent: list[str]) -> Row:
    shown = str(path.relative_to(root))
    try:
        data = importer.read_yaml(path)
        what = importer.kind(data, path)
    except UserError as e:
        first = str(e).replace(str(root) + "/", "")
        text = path.read_text(errors="replace")
        reason = what_else(text)
        return Row(shown, "-", "skipped", first.splitlines()[0], reason)
    spec = scratch / f"{index:03d}-{path.stem}.yaml"
    try:
        doc = spec_for(path, what, data, spec, root)
    except UserError as e:
        return Row(shown, SECTIONS.get(what, what), "error", f"import: {e}")
    importer.write(doc, spec, force=True)
    proc = mlrun("validate", str(spec), cwd=scratch)
    output = (proc.stdout + proc.stderr).replace(str(root) + "/", "")
    if proc.returncode == 0:
        result = "warnings" if "warning:" in output else "ok"
        first = next((line for line in output.splitlines() if "warning:" in line), "")
        return Row(shown, SECTIONS.get(what, what), result, first.strip())
    first = first_error(output)
    note = placeholder(first)
    if not note and any(a.startswith(str(path.parent.relative_to(root))) for a in absent):
        note = "a file the mirror lacks is in its folder"
    note = note or downloaded(first, path, root)
    if proc.returncode not in (0, 1):
        note = f"exit {proc.returncode} (internal error) " + note
    return Row(shown, SECTIONS.get(what, what), "error", first, note)


def plan(row: Row, scratch: Path, index: int, path: Path) -> str:
    spec = scratch / f"{index:03d}-{path.stem}.yaml"
    proc = mlrun("plan", str(spec), cwd=scratch)
    if proc.returncode == 0:
        lines = [line for line in proc.stdout.splitlines() if line.startswith("Plan:")]
        return "ok: " + (lines[-1] if lines else "")
    return f"exit {proc.returncode}: {first_error(proc.stdout + proc.stderr)}"


def table(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")[:300]

    lines = [
        "| file | section | result | first error line | note | plan |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {cell(r.file)} | {r.section} | {r.result} | {cell(r.first)} | {cell(r.note)} "
            f"| {cell(r.plan)} |"
        )
    return "\n".join(lines) + "\n"


def summary(rows: list[Row]) -> str:
    counts: dict[str, Counter] = {}
    for r in rows:
        folder = "/".join(r.file.split("/")[:3])
        counts.setdefault(folder, Counter())[r.result] += 1
    lines = [f"{'folder':48} {'files':>5} {'ok':>4} {'warn':>4} {'error':>5} {'skipped':>7}"]
    total: Counter = Counter()
    for folder in sorted(counts):
        c = counts[folder]
        total.update(c)
        lines.append(
            f"{folder:48} {sum(c.values()):5} {c['ok']:4} {c['warnings']:4} {c['error']:5} "
            f"{c['skipped']:7}"
        )
    lines.append(
        f"{'total':48} {sum(total.values()):5} {total['ok']:4} {total['warnings']:4} "
        f"{total['error']:5} {total['skipped']:7}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", help="only files whose path contains one of these")
    parser.add_argument("--repo", type=Path, default=MIRROR, help="azureml-examples' git dir")
    parser.add_argument("--out", type=Path, help="where the table goes")
    parser.add_argument("--plan-every", type=int, default=10, help="plan every Nth valid file")
    parser.add_argument("--keep", action="store_true", help="keep the examples and the specs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlrun-corpus-"))
    root, scratch = work / "examples", work / "specs"
    scratch.mkdir(parents=True)
    absent = extract(args.repo, root)
    files = sorted(
        p
        for folder in FOLDERS
        for p in (root / folder).rglob("*")
        if p.suffix in (".yml", ".yaml") and p.is_file()
    )
    if args.words:
        files = [p for p in files if any(w in str(p.relative_to(root)) for w in args.words)]
    rows, valid = [], 0
    for index, path in enumerate(files):
        row = check(path, root, scratch, index, absent)
        if row.result in ("ok", "warnings"):
            valid += 1
            if args.plan_every and valid % args.plan_every == 1:
                row.plan = plan(row, scratch, index, path)
        rows.append(row)
        print(f"{row.result:8} {row.file}  {row.first[:120]}", file=sys.stderr)
    out = args.out or Path(tempfile.gettempdir()) / "mlrun-corpus.md"
    out.write_text(table(rows), encoding="utf-8")
    print(summary(rows))
    if args.keep:
        print(f"the examples and the specs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"table: {out}; {len(absent)} files the mirror lacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
