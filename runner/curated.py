"""Azure ML's curated environments: a dated table bundled with mlrun (curated.json).

A job may name a curated environment (`azureml:AzureML-sklearn-1.5@latest`,
`azureml://registries/azureml/environments/sklearn-1.5/labels/latest`, a retired one such as
`azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu@latest`). Locally mlrun builds it with uv from
its published definition, which this table holds: the Python version and the PyPI requirements of
each environment of Azure/azureml-assets, the current ones from its HEAD and the retired ones from
its history (the last commit where the folder existed).

Stdlib only, and the table is read on first use: `mlrun validate` and `mlrun plan` import this.

Regenerate the table from a local git directory of Azure/azureml-assets (bare or not):

    python -m runner.curated ASSETS_GIT_DIR [--examples DIR ...] [-o runner/curated.json]

`--examples` lists the curated names a repository of examples or labs uses (its HEAD, or the files
of a plain folder) and the entry each maps to, naming those the table does not have.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("curated.json")
TABLE_VARIABLE = "MLRUN_CURATED_TABLE"


@dataclass(frozen=True)
class Entry:
    """One curated environment, as the local target builds it."""

    name: str  # the registry name, e.g. "sklearn-1.5"
    aliases: tuple[str, ...]  # other names it is known by, e.g. ("AzureML-sklearn-1.5",)
    python: str  # "3.10" ("" when the definition does not say)
    requirements: tuple[str, ...]  # PyPI requirements as pip takes them ("mlflow" is unpinned)
    dropped: tuple[str, ...]  # conda-only packages left out (openmpi, cudatoolkit, ...)
    gpu: bool  # a CUDA image: its torch/tensorflow would be CPU wheels locally
    retired: bool  # only in the history of Azure/azureml-assets
    kind: str  # "training" or "inference"
    source: str  # "assets/training/general/environments/sklearn-1.5@<commit>"


AS_OF: str  # the table's date (that of the azureml-assets commit it was read from); read lazily
COMMIT: str  # that commit


def __getattr__(name: str) -> str:
    if name == "AS_OF":
        return _table()[0]
    if name == "COMMIT":
        return _table()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- references ----------------------------------------------------------------------------------

PREFIX = "azureml-"  # workspaces know curated environments as AzureML-<registry name>
# azureml://registries/REGISTRY/environments/NAME[/versions/N | /labels/L]
_REGISTRY = re.compile(
    r"^(?:azureml:)?azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/@:]+)"
    r"(?:/(?:versions|labels)(?:/[^/]*)?)?/?$",
    re.IGNORECASE,
)
# a workspace's own long form: azureml://(locations|subscriptions)/.../environments/NAME[/versions/N]
# and the ARM id (/subscriptions/.../environments/NAME/versions/N)
_LONG = re.compile(
    r"^(?:azureml:)?(?:azureml://|/)(?:locations|subscriptions)/.+/environments/(?P<name>[^/@:]+)"
    r"(?:/(?:versions|labels)(?:/[^/]*)?)?/?$",
    re.IGNORECASE,
)
# [azureml:]NAME[:VERSION | @LABEL]
_SHORT = re.compile(r"^(?:azureml:)?(?P<name>[A-Za-z0-9][\w.+-]*)(?:[:@][\w.-]*)?$", re.IGNORECASE)


def curated_name(ref: str) -> str | None:
    """The environment name in `ref`, as written, if `ref` looks like a curated environment (a name
    that starts with AzureML-, in any case, or anything in the `azureml` registry); else None. So a
    caller can tell "curated, and not in the table" from a reference to something else.

    `azureml:AzureML-sklearn-1.5@latest` -> "AzureML-sklearn-1.5";
    `azureml://registries/azureml/environments/sklearn-1.5/versions/17` -> "sklearn-1.5";
    `azureml:my-env:3`, `azureml://registries/my-registry/environments/x/labels/latest` -> None.
    """
    if not isinstance(ref, str):
        return None
    ref = ref.strip()
    m = _REGISTRY.match(ref)
    if m:
        return m["name"] if m["registry"].lower() == "azureml" else None
    m = _LONG.match(ref) or _SHORT.match(ref)
    if m and m["name"].lower().startswith(PREFIX) and len(m["name"]) > len(PREFIX):
        return m["name"]
    return None


def lookup(ref: str) -> Entry | None:
    """The table's entry for a curated reference, in any of its forms: `azureml:AzureML-NAME@latest`
    and `azureml:AzureML-NAME:N` (or without `azureml:`), `azureml://registries/azureml/environments/
    NAME/labels/latest` and `.../versions/N`, and the names an environment had before (its
    aliases); the name in any case. None for a reference that is not curated-looking or that the
    table does not have.

    The table holds one entry per name, its newest definition: every version (`:17`,
    `/versions/17`) and every label maps to that one entry, whatever the version was built from.
    """
    name = curated_name(ref)
    if name is None:
        return None
    return _table()[2].get(name.lower())


def entries() -> tuple[Entry, ...]:
    """Every entry of the table, current ones first, by name."""
    return _table()[3]


@lru_cache(maxsize=1)
def _table() -> tuple[str, str, dict[str, Entry], tuple[Entry, ...]]:
    path = Path(os.environ.get(TABLE_VARIABLE) or TABLE)  # another table: tests' tiny ones
    return _read(json.loads(path.read_text(encoding="utf-8")))


def _read(data: dict) -> tuple[str, str, dict[str, Entry], tuple[Entry, ...]]:
    """A table's date, commit, entries by lowercased name and alias, and entries."""
    found = tuple(_entry(e) for e in data["entries"])
    index: dict[str, Entry] = {}
    for entry in found:  # names first: an alias never hides another environment's own name
        index.setdefault(entry.name.lower(), entry)
    for entry in found:
        for alias in entry.aliases:
            index.setdefault(alias.lower(), entry)
    return data["as_of"], data["commit"], index, found


def _entry(e: dict) -> Entry:
    return Entry(
        name=e["name"],
        aliases=tuple(e["aliases"]),
        python=e["python"],
        requirements=tuple(e["requirements"]),
        dropped=tuple(e["dropped"]),
        gpu=e["gpu"],
        retired=e["retired"],
        kind=e["kind"],
        source=e["source"],
    )


# --- the regenerator (not on the fast path: it may import PyYAML and runner.environments) ---------

# `{{latest-pypi-version}}` (or `{{latest-pypi-version:pre}}`): the latest release when the image
# was built, so here an unpinned requirement
LATEST_PYPI = re.compile(r"\s*(?:===?|~=|>=|<=|=)\s*\{\{\s*latest-pypi-version(?::[^}]*)?\s*\}\}")
_TEMPLATE = re.compile(r"\{\{.*?\}\}")
_GPU_IMAGE = re.compile(r"cuda|gpu|cudnn|-cu\d{2,3}\b|nvidia", re.IGNORECASE)
_PY_TAG = re.compile(r"(?<![a-z])py(3)(\d{1,2})(?!\d)", re.IGNORECASE)  # py38, py310
_PYTHON_PIN = re.compile(r"(?<![\w-])python\s*={1,2}\s*(3\.\d+)")  # conda create ... python=3.10
_FROM_PYTHON = re.compile(r"(?:^|/)python:(3\.\d+)")  # FROM python:3.11-slim
_VENV_PYTHON = re.compile(r"\bpython(3\.\d+)\s+-m\s+venv\b")  # python3.9 -m venv /venv
# pip options that take a value: skipped with it (-r and -c are read or dropped apart)
_PIP_VALUE_OPTIONS = frozenset(
    "-i --index-url --extra-index-url -f --find-links -t --target --prefix --root --src "
    "--platform --python-version --implementation --abi --progress-bar --cache-dir "
    "--trusted-host --config-settings -C --global-option --install-option --log".split()
)
_CONDA_VALUE_OPTIONS = frozenset(
    "-p --prefix -n --name -c --channel -f --file --override-channels --repodata-fn".split()
)
_OTHER_PYTHONS = re.compile(r"/opt/(?:mini)?conda/bin/|(?:^|\s)-n\s+base\b")


class _Git:
    """Reads a git directory (bare or not): commands, and blobs through one `cat-file --batch`."""

    def __init__(self, where: Path):
        import subprocess

        self._subprocess = subprocess
        self.base = ["git", "-C", str(where)]
        self._batch: Any = None

    def run(self, *args: str) -> str:
        out = self._subprocess.run(
            self.base + list(args), check=True, capture_output=True, text=True
        )
        return out.stdout

    def read(self, commit: str, path: str) -> str | None:
        """The text of `path` at `commit`, or None if it is not there (or not a file)."""
        if self._batch is None:
            self._batch = self._subprocess.Popen(
                self.base + ["cat-file", "--batch"],
                stdin=self._subprocess.PIPE,
                stdout=self._subprocess.PIPE,
            )
        stdin, stdout = self._batch.stdin, self._batch.stdout
        stdin.write(f"{commit}:{path}\n".encode())
        stdin.flush()
        header = stdout.readline().decode().split()
        if len(header) != 3:  # "<object> missing" / "ambiguous"
            return None
        data = stdout.read(int(header[2]))
        stdout.read(1)
        return data.decode("utf-8", "replace") if header[1] == "blob" else None

    def close(self) -> None:
        if self._batch is not None:
            self._batch.stdin.close()
            self._batch.wait()
            self._batch = None


def _yaml(text: str | None) -> Any:
    import yaml

    if text is None:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _is_test_path(path: str) -> bool:
    return any(part in ("test", "tests") for part in path.split("/")[:-1])


def _environment_asset(text: str | None) -> dict | None:
    data = _mapping(_yaml(text))
    name = data.get("name")
    if data.get("type") != "environment" or not isinstance(name, str) or "{{" in name:
        return None
    return data


def registry_name(asset_name: str) -> str:
    """An asset's name as the registry knows it (early assets carried the AzureML- prefix)."""
    name = asset_name.strip()
    return name[len(PREFIX) :] if name.lower().startswith(PREFIX) else name


class _Reader:
    """Reads one environment folder at one commit into a table entry (a dict)."""

    def __init__(self, git: _Git):
        self.git = git
        self.read_files: set[str] = set()  # the requirements files read for the current entry

    def entry(self, folder: str, commit: str, asset: dict, retired: bool) -> dict:
        from .conda import conda_requirements

        name = registry_name(asset["name"])
        self.read_files.clear()
        prefix = f"{folder}/" if folder else ""
        config = _mapping(_yaml(self.git.read(commit, prefix + str(asset.get("extra_config")))))
        image = _mapping(config.get("image"))
        context = _mapping(image.get("context"))
        context_dir = f"{prefix}{context.get('dir') or 'context'}".rstrip("/")
        dockerfile = self.git.read(
            commit, f"{context_dir}/{context.get('dockerfile') or 'Dockerfile'}"
        )
        files = self.git.run("ls-tree", "--name-only", commit, f"{context_dir}/").split("\n")
        files = [f for f in files if f]
        python: str | None = None
        requirements: list[str] = []
        dropped: list[str] = []

        conda_text = None
        for candidate in sorted(files, key=lambda f: not f.endswith("/conda_dependencies.yaml")):
            if candidate.endswith((".yaml", ".yml")):
                text = self.git.read(commit, candidate)
                if text and "dependencies" in _mapping(_yaml(LATEST_PYPI.sub("", text))):
                    conda_text = text
                    break
        if conda_text is not None:
            data = _mapping(_yaml(LATEST_PYPI.sub("", conda_text)))
            found, reqs, problems = conda_requirements(data, Path(context_dir))
            python = found[0] if found else None
            requirements += self.expand(commit, reqs)
            dropped += self.conda_only(data.get("dependencies"), problems)
        else:  # what the Dockerfile installs, and the context's requirements.txt
            reqs, conda_deps = self.dockerfile_installs(commit, context_dir, dockerfile or "")
            found, converted, problems = conda_requirements(
                {"dependencies": conda_deps}, Path(context_dir)
            )
            python = found[0] if found else None
            requirements += converted + reqs
            dropped += self.conda_only(conda_deps, problems)
            listed = f"{context_dir}/requirements.txt"
            if listed in files and listed not in self.read_files:
                requirements += self.requirements_file(commit, listed)

        # the image built FROM, or for a prebuilt environment the image it names
        base = _from_image(dockerfile or "") or str(image.get("name") or "")
        spec = _mapping(_yaml(self.git.read(commit, prefix + str(asset.get("spec")))))
        runtime = _mapping(
            _mapping(_mapping(config.get("environment")).get("metadata")).get("Runtime")
        )
        for guess in (
            python,
            _match(_PYTHON_PIN, dockerfile or ""),
            _match(_VENV_PYTHON, dockerfile or ""),
            str(runtime.get("version") or "") if runtime.get("name") == "Python" else None,
            _version(_mapping(spec.get("tags")).get("Python")),
            _match(_FROM_PYTHON, base),
            _py_tag(base),
            _py_tag(name),
        ):
            if guess and re.fullmatch(r"3\.\d+", guess):
                python = guess
                break
        else:
            python = None
        kind = (
            "inference"
            if "inference" in name.lower() or "/inference/" in f"/{folder}/"
            else "training"
        )
        gpu = bool(
            _GPU_IMAGE.search(base)
            or _GPU_IMAGE.search(name)
            or any(d.startswith(("cuda", "cudnn", "nccl")) for d in dropped)
        )
        return {
            "name": name,
            "aliases": [],
            "python": python or "",
            "requirements": _last_of_each(requirements),
            "dropped": _unique(dropped),
            "gpu": gpu,
            "retired": retired,
            "kind": kind,
            "source": f"{folder}@{commit}",
        }

    @staticmethod
    def conda_only(deps: Any, problems: list) -> list[str]:
        """The names of the conda dependencies the conversion left out as conda-only."""
        from .conda import requirement_name

        out = []
        for path, _message, severity, local_only in problems:
            if severity == "error" and local_only and isinstance(deps, list):
                dep = deps[path[1]] if len(path) == 2 and path[1] < len(deps) else None
                if isinstance(dep, str):
                    out.append(requirement_name(dep.split("::")[-1]))
        return out

    def expand(self, commit: str, reqs: list[str]) -> list[str]:
        """Requirements with `-r FILE` read in from the repository, `-c FILE` and local paths
        (which name nothing outside the image's build context) left out, templates resolved."""
        out: list[str] = []
        for req in reqs:
            req = LATEST_PYPI.sub("", req).strip()
            for flag in ("-r ", "--requirement "):
                if req.startswith(flag):
                    out += self.requirements_file(commit, req[len(flag) :].strip())
                    break
            else:
                if req.startswith(("-c ", "--constraint ", "/", ".")) or _TEMPLATE.search(req):
                    continue
                out.append(req)
        return out

    def requirements_file(self, commit: str, path: str, depth: int = 0) -> list[str]:
        """A requirements file's requirements (`-r` files read in, `-c` files, local paths and
        editable installs left out)."""
        path = _normal(path)
        text = self.git.read(commit, path)
        if text is None or depth > 3:
            return []
        self.read_files.add(path)
        lines = []
        for line in LATEST_PYPI.sub("", text).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if not line:
                continue
            for flag in ("-r ", "--requirement "):
                if line.startswith(flag):
                    folder = path.rsplit("/", 1)[0] if "/" in path else ""
                    sub = line[len(flag) :].strip()
                    lines += self.requirements_file(commit, f"{folder}/{sub}", depth + 1)
                    break
            else:
                if line.startswith(("-c ", "--constraint ", "/", ".", "-e ")):
                    continue
                if not _TEMPLATE.search(line):
                    lines.append(line)
        return lines

    def dockerfile_installs(
        self, commit: str, context_dir: str, text: str
    ) -> tuple[list[str], list[str]]:
        """The packages a Dockerfile installs into the job's environment: `pip install` arguments
        (those of `--upgrade` security overrides and of other interpreters left out) and `conda
        create/install` specs (`python=` among them)."""
        import shlex

        pips: list[str] = []
        conda: list[str] = []
        for run in _run_instructions(LATEST_PYPI.sub("", text)):
            for segment in re.split(r"&&|\|\||;|\|", run):
                if _OTHER_PYTHONS.search(segment):
                    continue
                try:
                    tokens = shlex.split(segment, comments=True)
                except ValueError:
                    continue
                pip = _after(tokens, ("pip", "pip3"), "install")
                if pip is not None:
                    if "--upgrade" in pip or "-U" in pip:
                        continue
                    skip = False
                    for i, token in enumerate(pip):
                        if skip:
                            skip = False
                        elif token in ("-r", "--requirement") and i + 1 < len(pip):
                            pips += self.requirements_file(commit, f"{context_dir}/{pip[i + 1]}")
                            skip = True
                        elif token in _PIP_VALUE_OPTIONS or token in ("-c", "--constraint"):
                            skip = True
                        elif not token.startswith(("-", ".")) and not re.search(r"[$/{}]", token):
                            pips.append(token)
                    continue
                deps = _after(tokens, ("conda", "mamba", "micromamba"), "create", "install")
                if deps is not None:
                    skip = False
                    for token in deps:
                        if skip:
                            skip = False
                        elif token in _CONDA_VALUE_OPTIONS:
                            skip = True
                        elif not token.startswith("-") and not re.search(r"[$/{}]", token):
                            conda.append(token)
        return pips, conda


def _after(tokens: list[str], programs: tuple[str, ...], *verbs: str) -> list[str] | None:
    """The arguments after `PROGRAM VERB` (PROGRAM possibly a path, or `python -m PROGRAM`)."""
    for i, token in enumerate(tokens[:-1]):
        if token.rsplit("/", 1)[-1] in programs and tokens[i + 1] in verbs:
            return tokens[i + 2 :]
    return None


def _run_instructions(dockerfile: str) -> list[str]:
    """The RUN instructions of a Dockerfile, continuation lines joined, comment lines dropped."""
    out: list[str] = []
    current: list[str] | None = None
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if current is None:
            if not re.match(r"RUN\s", stripped, re.IGNORECASE):
                continue
            current = [stripped[3:].strip()]
        else:
            current.append(stripped)
        if current[-1].endswith("\\"):
            current[-1] = current[-1][:-1]
        else:
            out.append(" ".join(current))
            current = None
    if current:
        out.append(" ".join(current))
    return out


def _from_image(dockerfile: str) -> str:
    images = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", dockerfile, re.IGNORECASE | re.MULTILINE)
    return images[-1] if images else ""


def _match(pattern: re.Pattern, text: str) -> str | None:
    m = pattern.search(text)
    return m[1] if m else None


def _py_tag(text: str) -> str | None:
    m = _PY_TAG.search(text)
    return f"{m[1]}.{m[2]}" if m else None


def _version(value: Any) -> str | None:
    m = re.match(r"^\s*(3\.\d+)", str(value)) if value is not None else None
    return m[1] if m else None


def _normal(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/".join(parts)


def _unique(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def _last_of_each(requirements: list[str]) -> list[str]:
    """One requirement per package, the last one (a later `pip install` replaces what an earlier
    one installed), where the first one was; option lines and URLs as they are, once."""
    from .conda import requirement_name

    def key(requirement: str) -> str:
        name = requirement_name(requirement)
        return name if name and "://" not in requirement else requirement

    last = {key(r): r for r in requirements if r}
    return _unique(last[key(r)] for r in requirements if r)


# Workspace names of environments whose asset.yaml never carried them in HEAD's history, each with
# where it comes from (the table's aliases otherwise come from the asset.yaml files themselves)
KNOWN_ALIASES = {
    # azureml-examples best-practices/largescale-deep-learning/Environment/ACPT.md uses it; in
    # azureml-assets it is the folder azureml-acpt-pytorch-1.12-py39-cuda11.6-gpu of an unmerged
    # branch (commit 469a963891, "add pytorch 1.12 envs"): PyTorch 1.12, Python 3.9, CUDA 11.6
    "acpt-pytorch-1.12-py39-cuda11.6": ("AzureML-ACPT-pytorch-1.12-py39-cuda11.6-gpu",),
}


def build(where: Path) -> dict:
    """The table, read from a git directory of Azure/azureml-assets: every environment asset
    (an asset.yaml of `type: environment`, test resources left out) at HEAD, and every one that
    HEAD's history deleted, read at the last commit that had it. One entry per registry name:
    HEAD's, else the most recently deleted; the other names an asset.yaml had become aliases."""
    git = _Git(where)
    try:
        head = git.run("rev-parse", "HEAD").strip()
        as_of = git.run("log", "-1", "--format=%cs", head).strip()
        present = [
            p
            for p in git.run("ls-tree", "-r", "--name-only", head).split("\n")
            if p.rsplit("/", 1)[-1] == "asset.yaml" and not _is_test_path(p)
        ]
        # every change to an asset.yaml in HEAD's history, newest first
        log = git.run(
            "log",
            head,
            "--format=C\t%H\t%ct\t%P",
            "--name-status",
            "--no-renames",
            "--",
            "*asset.yaml",
        )
        # path -> [(status, commit, its first parent)], and when each commit was made
        events: dict[str, list[tuple[str, str, str]]] = {}
        when: dict[str, int] = {}
        commit = parent = ""
        for line in log.split("\n"):
            fields = line.split("\t")
            if fields[0] == "C":
                commit, when[commit] = fields[1], int(fields[2])
                parent = fields[3].split()[0] if len(fields) > 3 and fields[3] else ""
            elif len(fields) == 2 and fields[1].rsplit("/", 1)[-1] == "asset.yaml":
                if not _is_test_path(fields[1]):
                    events.setdefault(fields[1], []).append((fields[0][:1], commit, parent))

        # the names each asset.yaml had (an early name becomes an alias of the final one)
        names: dict[str, list[str]] = {}
        for path, changes in events.items():
            for status, at, before in changes:
                asset = _environment_asset(git.read(before if status == "D" else at, path))
                if asset:
                    names.setdefault(path, []).append(registry_name(asset["name"]))

        reader = _Reader(git)
        found: list[dict] = []  # current first, then retired by the date they were deleted
        for path in sorted(present):
            asset = _environment_asset(git.read(head, path))
            if asset:
                found.append(
                    dict(reader.entry(_folder(path), head, asset, retired=False), _path=path)
                )
        retired = []
        for path, changes in events.items():
            if path in present:
                continue
            status, at, before = changes[0]
            last = before if status == "D" else at
            asset = _environment_asset(git.read(last, path)) if last else None
            if asset is None and status == "D":  # a merge's first parent did not have it
                for _status, older, _before in changes[1:]:
                    asset = _environment_asset(git.read(older, path))
                    if asset:
                        last = older
                        break
            if asset:
                retired.append((-when[at], path, last, asset))
        for _date, path, last, asset in sorted(retired, key=lambda r: r[:2]):
            found.append(dict(reader.entry(_folder(path), last, asset, retired=True), _path=path))
    finally:
        git.close()

    table: list[dict] = []
    taken: set[str] = set()
    for entry in found:
        key = entry["name"].lower()
        if key in taken:
            continue
        taken.add(key)
        table.append(entry)
    for entry in table:  # aliases: the workspace name, then earlier names, none claimed twice
        wanted = ["AzureML-" + entry["name"], *KNOWN_ALIASES.get(entry["name"], ())]
        for old in names.get(entry.pop("_path"), []):
            if old.lower() != entry["name"].lower():
                wanted += [old, "AzureML-" + old]
        for alias in wanted:
            if alias.lower() not in taken:
                taken.add(alias.lower())
                entry["aliases"].append(alias)
    table.sort(key=lambda e: (e["retired"], e["name"].lower()))
    return {
        "as_of": as_of,
        "source": "https://github.com/Azure/azureml-assets",
        "commit": head,
        "entries": table,
    }


def _folder(asset_path: str) -> str:
    return asset_path.rsplit("/", 1)[0] if "/" in asset_path else ""


def dump(table: dict) -> str:
    """The table as curated.json: one entry a line, so that a regeneration's diff reads well."""
    head = {k: v for k, v in table.items() if k != "entries"}
    lines = [json.dumps(head, indent=1)[:-2] + ","]
    lines.append(' "entries": [')
    rows = [json.dumps(e, separators=(",", ":")) for e in table["entries"]]
    lines.append(",\n".join("  " + r for r in rows))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- the names a repository of examples or labs uses ---------------------------------------------

_USED = re.compile(
    r"(?:azureml:)?azureml://registries/azureml/environments/[\w.+-]+(?:/(?:labels|versions)/[\w.-]*)?"
    r"|(?:azureml:)?AzureML-[\w.+-]*[\w+](?:[:@][\w.-]+)?",
    re.IGNORECASE,
)
_USED_GIT = r"azureml://registries/azureml/environments/|AzureML-"


def used_names(where: Path) -> dict[str, int]:
    """The curated-looking references a repository uses (its HEAD if it is a git directory, else
    the files under it), with how many times each occurs. Only lines that speak of an environment
    count (`environment:`, `env_name =`, `/environments/`): an experiment named AzureML-... is not
    one. Python packages (azureml-core) are not references: the AzureML- prefix is matched as
    Azure writes it, a registry URI in any case."""
    import subprocess

    lines: list[str] = []
    probe = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--verify", "-q", "HEAD"],
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        out = subprocess.run(
            ["git", "-C", str(where), "grep", "-I", "-h", "-i", "-E", _USED_GIT, "HEAD"],
            capture_output=True,
            text=True,
        )
        lines = out.stdout.splitlines()
    else:
        for path in sorted(where.rglob("*")):
            if path.is_file() and ".git" not in path.parts:
                try:
                    lines += path.read_text(encoding="utf-8").splitlines()
                except (OSError, UnicodeDecodeError):
                    continue
    counts: dict[str, int] = {}
    for line in lines:
        if "env" not in line.lower():
            continue
        for m in _USED.finditer(line):
            ref = m[0]
            if "://" not in ref and "AzureML-" not in ref:
                continue  # azureml-core and the like: package names, not environments
            counts[ref] = counts.get(ref, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m runner.curated",
        description="Regenerate the table of Azure ML's curated environments from a local git "
        "directory of Azure/azureml-assets.",
    )
    parser.add_argument("assets", type=Path, help="a git directory of Azure/azureml-assets")
    parser.add_argument(
        "--examples",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        help="repositories (git directories or folders) whose curated names to check",
    )
    parser.add_argument("-o", "--output", type=Path, default=TABLE)
    args = parser.parse_args(argv)

    import subprocess

    try:
        table = build(args.assets)
    except (subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        print(
            f"{args.assets}: cannot read it as a git directory ({detail.strip()})", file=sys.stderr
        )
        return 2
    args.output.write_text(dump(table), encoding="utf-8")
    _table.cache_clear()  # the bundled table may be the one just written
    current = sum(1 for e in table["entries"] if not e["retired"])
    print(
        f"{args.output}: {len(table['entries'])} environments ({current} current, "
        f"{len(table['entries']) - current} retired), as of {table['as_of']} "
        f"(azureml-assets {table['commit'][:12]})"
    )
    unknown_python = [e["name"] for e in table["entries"] if not e["python"]]
    if unknown_python:
        print(f"no Python version found for: {', '.join(unknown_python)}")

    if args.examples:
        index = _read(table)[2]
        missing = 0
        for where in args.examples:
            print(f"\n{where}:")
            for ref, count in sorted(used_names(where).items(), key=lambda kv: kv[0].lower()):
                name = curated_name(ref)
                entry = index.get(name.lower()) if name else None
                shown = (
                    f"{entry.name}{' (retired)' if entry.retired else ''}"
                    if entry
                    else "NOT IN THE TABLE"
                )
                missing += entry is None
                print(f"  {ref}  x{count}  -> {shown}")
        print(
            f"\n{missing} reference(s) not in the table", file=sys.stderr if missing else sys.stdout
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
