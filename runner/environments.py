"""Job environments: what a job's `environment` refers to, and what it asks for on this machine.

A job's environment is a reference (`azureml:NAME:VERSION`, `azureml:NAME@latest`, a registry URI)
or an inline definition (CLI v2 environment fields: `image`, `conda_file`, `build`). A reference
resolves, in order, to a stand-in in `targets.local.environments` (local target), an environment of
the spec's `environments:` section, or else Azure's own (a curated or registered environment, which
the local target does not build: the job runs on mlrun's interpreter and packages).

A definition is read into an Environment: its content digest (the conda file read in, so that
editing the file reruns its jobs), and what the local target builds from it: a Python version and
PyPI requirements (a conda file's dependencies converted by conda.py). A curated environment
(`azureml:AzureML-sklearn-1.5@latest`) is read from the table curated.py bundles. Stdlib and PyYAML
only: validate and plan use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import yamldoc
from .conda import conda_requirements
from .errors import special_file
from .refs import mapping, parse_ref, relative_to, unresolved
from .yamldoc import Doc


@dataclass(frozen=True)
class Environment:
    """What a job runs in. `definition` is None for a reference to an environment this spec does
    not define (Azure's own): the local target then runs the job on mlrun's interpreter."""

    shown: str  # how plans name it
    definition: dict | None = None  # the fields, its conda file read in as a mapping
    python: str | None = None  # a conda file's python= ("3.11")
    requirements: tuple = ()  # PyPI requirements
    buildable: bool = True  # False: a Docker build context (a local run needs a stand-in)
    version: str | None = None  # an environment of the spec's environments: section
    ref: Any = None  # a reference as written (the fingerprint hashes it when nothing is defined)
    curated: str | None = None  # Azure ML's curated environment it is built as (curated.py)
    gpu: bool = False  # a GPU image's definition: PyTorch installs as CPU wheels here
    overlay: bool = False  # its packages sit over mlrun's own (a spark job's PySpark, spark.py)

    @property
    def built(self) -> bool:
        """Whether the local target builds it (else the job runs on mlrun's own environment)."""
        return self.definition is not None

    @property
    def digest(self) -> str:
        """The content hash the fingerprint uses: the definition with its conda file read in."""
        return _digest(self.definition if self.definition is not None else self.ref)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def shown(value: Any) -> str:
    """A reference as written; an inline definition in a few words (`inline image python +
    conda conda.yml`)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return "mlrun's own environment"
    parts = [f"image {value['image']}"] if value.get("image") else []
    if value.get("conda_file") is not None:
        parts.append(
            f"conda {value['conda_file']}"
            if isinstance(value["conda_file"], str)
            else "conda (inline)"
        )
    if value.get("build"):
        parts.append(f"build {mapping(value['build']).get('path')}")
    return "inline " + (" + ".join(parts) or "{}")


# --- references ----------------------------------------------------------------------------------


CURATED_MODES = ("build", "mlrun")
CURATED_VARIABLE = "MLRUN_CURATED_ENVIRONMENTS"


def curated_mode(data: Any) -> tuple[str, str]:
    """How the local target treats curated environments, and where that is set: `build` them
    from the bundled table (the default), or map them all to `mlrun`'s own interpreter
    (targets.local.curated_environments, else the MLRUN_CURATED_ENVIRONMENTS variable)."""
    local = mapping(mapping(mapping(data).get("targets")).get("local"))
    if local.get("curated_environments") in CURATED_MODES:
        return local["curated_environments"], "targets.local.curated_environments"
    if os.environ.get(CURATED_VARIABLE) in CURATED_MODES:
        return os.environ[CURATED_VARIABLE], CURATED_VARIABLE
    return "build", ""


def uv_downloads_python() -> bool:
    """Whether uv may download an interpreter that is not installed here (UV_PYTHON_DOWNLOADS,
    uv's own setting: automatic by default; manual and never forbid it for a build)."""
    return os.environ.get("UV_PYTHON_DOWNLOADS", "automatic").lower() not in (
        "never",
        "manual",
        "0",
        "false",
    )


def stand_ins(data: Any) -> dict:
    """targets.local.environments: references mapped to local stand-ins."""
    return mapping(mapping(mapping(mapping(data).get("targets")).get("local")).get("environments"))


class Reader:
    """Reads the environments of one spec: definitions with their conda files, references
    resolved. With `report`, what is wrong is added to the doc's problems, located in the spec or
    in the file that holds it."""

    def __init__(self, doc: Doc, local: bool = True, report: bool = True):
        self.doc, self.local, self.report = doc, local, report
        self._stand_ins: dict[str, Environment] = {}
        self.curated_mode = curated_mode(doc.data)[0] if local else "mlrun"

    def problem(
        self, path: tuple, message: str, severity: str = "error", at: tuple | None = None
    ) -> None:
        if self.report:
            self.doc.problem(path, message, severity=severity, at=at)

    # --- what a job names ---

    def job(self, at: tuple, value: Any, defined: dict, substitutes: dict | None) -> Environment:
        """The Environment a job's `environment` (at `at`) resolves to. `defined`: the spec's
        environments by name; `substitutes`: targets.local.environments (None off the local
        target)."""
        if isinstance(value, dict):
            return self.definition(at, value, shown(value))
        if not isinstance(value, str) or unresolved(value):
            return Environment(shown(value), ref=value)
        if value.startswith("file:"):  # an environment file (az ml environment create's)
            return self.from_file(at, value)
        if substitutes and value in substitutes:
            if value not in self._stand_ins:  # read once, however many jobs name it
                self._stand_ins[value] = self.stand_in(value, substitutes[value])
            return self._stand_ins[value]
        ref = parse_ref(value)
        if ref and ref[0] in defined:
            name, version = ref
            env = defined[name]
            if version is not None and env.version is not None and version != env.version:
                self.problem(
                    at, f"environment {name} has version {env.version} in this spec, not {version}"
                )
            return env
        return self.curated(at, value)

    def curated(self, at: tuple, value: str) -> Environment:
        """A reference to one of Azure ML's curated environments, built locally from the bundled
        table (unless curated environments map to mlrun's interpreter); any other reference, which
        only Azure has, runs on mlrun's interpreter."""
        from . import curated

        entry = curated.lookup(value) if self.curated_mode == "build" else None
        if entry is None:
            return Environment(value, ref=value)
        python = entry.python or None
        if python and find_python(python) is None and not uv_downloads_python():
            self.problem(
                at,
                f"environment {value} (curated {entry.name}) needs Python {python}: none is "
                f"installed here (installed: {', '.join(installed_pythons())}) and uv may not "
                "download one (UV_PYTHON_DOWNLOADS): install it, map the environment to a "
                "stand-in in targets.local.environments, or set "
                "targets.local.curated_environments: mlrun",
            )
        definition = {
            "curated": entry.name,
            "python": entry.python,
            "requirements": list(entry.requirements),
        }
        return Environment(
            value,
            definition,
            python,
            entry.requirements,
            ref=value,
            curated=entry.name,
            gpu=entry.gpu,
        )

    def stand_in(self, ref: str, value: Any) -> Environment:
        """A reference's local stand-in: an environment file, a conda file, or an inline
        definition."""
        at = ("targets", "local", "environments", ref)
        if isinstance(value, dict):
            return self.definition(at, value, f"{ref} (stand-in)")
        if not isinstance(value, str) or unresolved(value):
            return Environment(ref, ref=ref)
        path = relative_to(self.doc, at, value)
        sub = self.load(at, path, f"stand-in '{value}'")
        if sub is None:
            return Environment(ref, ref=ref)
        if "dependencies" in sub.data or "channels" in sub.data:  # a conda file itself
            return self.definition(at, {"conda_file": value}, f"{ref} (stand-in {value})")
        return self.definition(at, sub.data, f"{ref} (stand-in {value})", base=sub)

    def from_file(self, at: tuple, value: str) -> Environment:
        """`environment: file:PATH`: an environment YAML file, read as its definition."""
        ref = value[len("file:") :]
        sub = self.load(at, relative_to(self.doc, at, ref), f"environment file '{ref}'")
        if sub is None:
            return Environment(value, ref=value)
        return self.definition(at, sub.data, value, base=sub)

    # --- definitions ---

    def definition(
        self,
        at: tuple,
        fields: dict,
        name: str,
        base: Doc | None = None,
        version: str | None = None,
    ) -> Environment:
        """An environment's fields (at `at` in the spec, or in the file `base`) with its conda file
        read in and converted to PyPI requirements."""
        definition = {
            k: v
            for k, v in fields.items()
            if k in ("image", "conda_file", "build", "os_type", "inference_config")
        }
        python: str | None = None
        requirements: list[str] = []
        conda = fields.get("conda_file")
        if isinstance(conda, str) and not unresolved(conda):
            path = (
                (Path(base.file).parent / conda)
                if base
                else relative_to(self.doc, at + ("conda_file",), conda)
            )
            sub = self.load(at + ("conda_file",), path, f"conda file '{conda}'")
            if sub is not None:
                definition["conda_file"] = sub.data
                python, requirements = self.conda(
                    sub, (), sub.data, path.parent, at + ("conda_file",)
                )
        elif isinstance(conda, dict):
            python, requirements = self.conda(
                self.doc,
                at + ("conda_file",),
                conda,
                Path(self.doc.where(at)[0]).parent,
                at + ("conda_file",),
            )
        return Environment(
            name,
            definition,
            python,
            tuple(requirements),
            buildable=not fields.get("build"),
            version=version,
        )

    def load(self, at: tuple, path: Path, what: str) -> Doc | None:
        """A YAML file a definition names, parsed with positions (None, said, if it cannot be)."""
        try:
            if special_file(path):
                raise OSError("not a regular file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(at, f"{what} does not exist")
            return None
        except (OSError, ValueError) as e:
            self.problem(at, f"{what} cannot be read ({e})")
            return None
        sub = yamldoc.parse(text, str(path))
        for p in sub.problems:
            self.problem(at, p.message, p.severity, at=(p.file, p.line, p.col))
        if not isinstance(sub.data, dict):
            if not sub.problems:
                self.problem(at, f"{what} is not a mapping")
            return None
        return sub

    def conda(
        self, where: Doc, prefix: tuple, data: dict, folder: Path, shown_at: tuple
    ) -> tuple[str | None, list[str]]:
        """A conda file's python version and requirements; its problems located in `where` (the
        conda file, or the spec for an inline one) and named by the spec's path `shown_at`."""
        python, requirements, found = conda_requirements(data, folder)
        for path, message, severity, local_only in found:
            if self.local or not local_only:
                self.problem(shown_at + path, message, severity, at=where.where(prefix + path))
        if python is None:
            return None, requirements
        version, path = python
        if self.local and find_python(version) is None and not uv_downloads_python():
            self.problem(
                shown_at + path,
                f"python={version}: no Python {version} is installed here (installed: "
                f"{', '.join(installed_pythons())}) and uv may not download one "
                "(UV_PYTHON_DOWNLOADS); install it, or change the conda file",
                at=where.where(prefix + path),
            )
        return version, requirements


# --- interpreters --------------------------------------------------------------------------------


def find_python(version: str | None) -> tuple[str, str] | None:
    """An interpreter installed here for `version` ("3.11"; None: mlrun's own): (path, version as
    far as its location tells), or None. Looks at mlrun's own, pyenv's versions, then `python3.X`
    on PATH (not a shim). Runs nothing (validate and plan start no process) and never downloads
    one: uv checks the interpreter when it builds."""
    if version is None or version == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return getattr(sys, "_base_executable", sys.executable), sys.version.split()[0]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        for folder in sorted(pyenv.glob(f"{version}.*"), key=_version_key, reverse=True):
            if (folder / "bin" / f"python{version}").is_file():
                return str(folder / "bin" / f"python{version}"), folder.name
    found = shutil.which(f"python{version}")
    if found and "shims" not in Path(found).parts:
        return os.path.realpath(found), version
    return None


def _version_key(folder: Path) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in folder.name.split("."))


def installed_pythons() -> list[str]:
    """The Python versions (3.X) find_python finds here, for messages."""
    return [f"3.{minor}" for minor in range(6, 20) if find_python(f"3.{minor}")]
