"""Datastores (the spec's `datastores:`, az ml datastore create) and the
`azureml://datastores/NAME/paths/PATH` URIs that name them: read, checked, and where each is on
the local target (a folder). Credentials are kept in memory only: never in what a plan, the state
or a report holds (attrs() says which kind a datastore has, not its value). Stdlib only: validate
reads them."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .refs import mapping, relative_to, unresolved

if TYPE_CHECKING:
    from .yamldoc import Doc

BUILTIN = ("workspaceblobstore", "workspaceartifactstore")  # every workspace has them
# type -> the field that names what it holds (required), and whether it names an account
TYPES = {
    "azure_blob": ("container_name", True),
    "azure_data_lake_gen2": ("filesystem", True),
    "azure_file": ("file_share_name", True),
    "azure_data_lake_gen1": ("store_name", False),
}
# the credential forms each type takes, as azure-ai-ml's datastore schemas have them
CREDENTIALS = {
    "azure_blob": ("account_key", "sas_token"),
    "azure_file": ("account_key", "sas_token"),
    "azure_data_lake_gen2": ("service_principal",),
    "azure_data_lake_gen1": ("service_principal",),
}
PRINCIPAL = ("tenant_id", "client_id", "client_secret")
SECRETS = ("account_key", "sas_token", "client_secret")  # credential fields whose value is secret
FIELDS: tuple[str, ...] = ("account_name", "container_name", "filesystem", "file_share_name")
FIELDS += ("store_name", "protocol", "endpoint", "description", "tags")
URI = re.compile(r"^azureml://datastores/(?P<name>[^/]+)/paths/(?P<path>.*)$")


@dataclass(frozen=True)
class Datastore:
    name: str
    type: str  # azure_blob, ...; a workspace's own stores are azure_blob
    fields: dict  # the CLI v2 fields (FIELDS), credentials left out
    credentials: dict = field(default_factory=dict, repr=False)  # in memory only
    local: Path | None = None  # its folder, on a target that runs here
    builtin: bool = False  # workspaceblobstore, workspaceartifactstore: never made nor deleted

    @property
    def credential_kind(self) -> str:
        """account_key, sas_token, service_principal, or none (identity-based)."""
        for kind in ("account_key", "sas_token"):
            if kind in self.credentials:
                return kind
        return "service_principal" if "client_id" in self.credentials else "none"

    def attrs(self) -> dict:
        """What a plan compares and the state keeps: the fields, the kind of credential (not its
        value), and the local folder where there is one."""
        out = {k: self.fields[k] for k in FIELDS if self.fields.get(k) is not None}
        out["type"] = self.type
        out["credentials"] = self.credential_kind
        if self.local is not None:
            out["folder"] = str(self.local)
        return out

    def path(self, rel: str) -> Path | None:
        """Where `rel` (a URI's PATH) is in the local folder; None if not local."""
        if self.local is None:
            return None
        parts = [p for p in PurePosixPath(rel).parts if p not in ("/", ".")]
        return self.local.joinpath(*parts) if parts else self.local


def parse(uri: Any) -> tuple[str, str] | None:
    """`azureml://datastores/NAME/paths/PATH` -> (NAME, PATH); anything else -> None."""
    m = URI.match(uri) if isinstance(uri, str) else None
    return (m["name"], m["path"]) if m else None


def credential_path(path: tuple) -> bool:
    """Whether `path` is a datastore's credential (datastores.NAME.credentials.FIELD)."""
    return len(path) == 4 and path[0] == "datastores" and path[2] == "credentials"


def secret_path(path: tuple) -> bool:
    """Whether `path` is a datastore credential whose value is secret: where secrets may go."""
    return credential_path(path) and path[3] in SECRETS


def _workspace_folder(doc: Doc, data: dict) -> Path | None:
    """The local workspace's folder, as the local backend has it (.mlrun/local/WORKSPACE beside
    the spec)."""
    ws = mapping(data.get("workspace")).get("name")
    if not isinstance(ws, str) or unresolved(ws):
        return None
    return Path(doc.file).resolve().parent / ".mlrun" / "local" / ws


def mapped(data: Any) -> dict:
    """targets.local.datastores: datastore names mapped to local folders."""
    return mapping(mapping(mapping(mapping(data).get("targets")).get("local")).get("datastores"))


def read(doc: Doc, data: dict, local: bool) -> dict[str, Datastore]:
    """The spec's datastores and the workspace's own; with `local` (the target runs here), each
    with its folder."""
    root = _workspace_folder(doc, data) if local else None
    folders = mapped(data) if local else {}

    def folder(name: str) -> Path | None:
        at = ("targets", "local", "datastores", name)
        if isinstance(folders.get(name), str) and not unresolved(folders[name]):
            return relative_to(doc, at, folders[name])
        return root / "datastores" / name if root is not None else None

    stores = {n: Datastore(n, "azure_blob", {}, local=folder(n), builtin=True) for n in BUILTIN}
    for name, block in mapping(data.get("datastores")).items():
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            continue  # the schema check says what is wrong
        stores[name] = Datastore(
            name,
            block["type"],
            {k: block[k] for k in FIELDS if k in block},
            {k: str(v) for k, v in mapping(block.get("credentials")).items()},
            folder(name),
        )
    return stores


def declared(stores: dict[str, Datastore]) -> dict[str, Datastore]:
    """The datastores the spec makes (not the workspace's own)."""
    return {n: s for n, s in stores.items() if not s.builtin}


# --- checks --------------------------------------------------------------------------------------


def check(doc: Doc, data: dict, stores: dict[str, Datastore]) -> None:
    """Each datastore's fields for its type and its credentials; each datastore URI in jobs,
    pipeline steps, data assets and models names a datastore there is; a mapped name is one."""
    for name, block in mapping(data.get("datastores")).items():
        if name in BUILTIN:
            doc.problem(
                ("datastores", name),
                f"{name} is the workspace's own datastore: it exists without being declared "
                "(map it to a folder in targets.local.datastores)",
                key=True,
            )
        elif isinstance(block, dict) and ("datastores", name) not in doc.broken:
            _check_store(doc, name, block)
    for name in mapped(data):
        if name not in stores:
            doc.problem(
                ("targets", "local", "datastores", name),
                _unknown(name, stores, "this spec"),
                key=True,
            )
    for at, uri in uris(data):
        found = parse(resolved(data, at, uri))
        if found is None or unresolved(uri):
            continue
        name, rel = found
        if name not in stores:
            doc.problem(at, _unknown(name, stores, f"'{uri}': this spec"))
        elif ".." in PurePosixPath(rel).parts:
            doc.problem(at, f"'{uri}': a datastore path cannot go up ('..')")


def _unknown(name: str, stores: dict, what: str) -> str:
    """`WHAT has no datastore 'NAME' (did you mean 'x'? defined: ...)`."""
    close = difflib.get_close_matches(name, list(stores), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{what} has no datastore '{name}' ({hint}defined: {', '.join(sorted(stores))})"


def _check_store(doc: Doc, name: str, block: dict) -> None:
    at = ("datastores", name)
    kind = block.get("type")
    if kind not in TYPES:
        return  # the schema check says so
    holds, account = TYPES[kind]
    for key in [holds] + (["account_name"] if account else []):
        if key not in block:
            doc.problem(
                at, f"missing required key '{key}' (an {kind} datastore needs it)", key=True
            )
    for key in FIELDS[:5]:
        if key in block and key != holds and (key != "account_name" or not account):
            doc.problem(
                at + (key,),
                f"an {kind} datastore has no {key} (it names {holds})",
                key=True,
            )
    creds = block.get("credentials")
    if not isinstance(creds, dict):
        return
    forms = CREDENTIALS[kind]
    given = [k for k in ("account_key", "sas_token") if k in creds]
    principal = [k for k in PRINCIPAL if k in creds]
    if len(given) > 1:
        doc.problem(at + ("credentials",), "give one credential: account_key or sas_token")
    for key in given if "service_principal" in forms else ():
        doc.problem(
            at + ("credentials", key),
            f"an {kind} datastore takes a service principal (tenant_id, client_id, "
            f"client_secret), not {key}",
            key=True,
        )
    if principal and "service_principal" not in forms:
        doc.problem(
            at + ("credentials", principal[0]),
            f"an {kind} datastore takes account_key or sas_token, not a service principal",
            key=True,
        )
    elif principal and not given:
        for key in PRINCIPAL:
            if key not in creds:
                doc.problem(
                    at + ("credentials",),
                    f"missing required key '{key}' (a service principal needs tenant_id, "
                    "client_id and client_secret)",
                    key=True,
                )


def clear_text(doc: Doc, kept: set) -> None:
    """Each datastore credential marked secret (so that no message, plan or file shows it); one
    written in the spec itself (not in `kept`: those from ${{env.X}} or a secret variable) is
    warned of."""
    for name, block in mapping(mapping(doc.data).get("datastores")).items():
        for key, value in mapping(mapping(block).get("credentials")).items():
            where = ("datastores", name, "credentials", key)
            if key not in SECRETS or value is None:
                continue
            doc.secret[where] = value
            if where not in kept and not unresolved(value):
                doc.problem(
                    where,
                    f"{key} is written in clear text: give it as ${{{{env.NAME}}}} (or a secret "
                    "variable), so that the spec does not hold it",
                    severity="warning",
                )


def uris(data: dict) -> list[tuple[tuple, str]]:
    """Every path in the spec that may name a datastore: (where, the value)."""
    found: list[tuple[tuple, str]] = []

    def ports(at: tuple, block: Any) -> None:
        for section in ("inputs", "outputs"):
            for key, value in mapping(mapping(block).get(section)).items():
                if isinstance(value, dict) and isinstance(value.get("path"), str):
                    found.append((at + (section, key, "path"), value["path"]))

    for name, job in mapping(data.get("jobs")).items():
        ports(("jobs", name), job)
        for step, block in mapping(mapping(job).get("jobs")).items():
            ports(("jobs", name, "jobs", step), block)
    for section in ("data", "models"):
        for name, block in mapping(data.get(section)).items():
            if isinstance(mapping(block).get("path"), str):
                found.append(((section, name, "path"), block["path"]))
    return found


DEFAULT = re.compile(r"\$\{\{\s*default_datastore\s*\}\}")


def default_of(job: Any) -> str:
    """A pipeline's default datastore: its settings.default_datastore, else the workspace's."""
    named = mapping(mapping(job).get("settings")).get("default_datastore")
    return named.removeprefix("azureml:") if isinstance(named, str) and named else BUILTIN[0]


def with_default(path: str, job: Any) -> str:
    """`${{default_datastore}}` in a path of `job`'s: its default datastore."""
    return DEFAULT.sub(default_of(job), path)


def resolved(data: dict, at: tuple, uri: str) -> str:
    """A path found at `at` (uris()) with `${{default_datastore}}` its job's default datastore."""
    return with_default(uri, mapping(data.get("jobs")).get(at[1])) if at[0] == "jobs" else uri


def local_path(stores: dict[str, Datastore], uri: Any) -> Path | None:
    """The local file or folder a datastore URI is, where its datastore has a folder here."""
    found = parse(uri)
    if found is None or found[0] not in stores:
        return None
    return stores[found[0]].path(found[1])


def deliver(stores: dict[str, Datastore], outputs: dict, run_dir: Path, run_id: str) -> None:
    """A completed local run's outputs declared on datastore paths copied into their datastores'
    folders (as Azure ML uploads them), `${{name}}` in a path being the run's id. The run keeps
    its own copy in outputs/NAME (its artifacts, what a model registers from)."""
    for name, decl in outputs.items():
        uri = mapping(decl).get("path")
        if not isinstance(uri, str):
            continue
        uri = named(uri, run_id)
        target = None if "${{" in uri else local_path(stores, uri)
        source = run_dir / "outputs" / name
        if target is None or not source.is_dir():
            continue
        if mapping(decl).get("type") == "uri_file":
            files = [f for f in source.iterdir() if f.is_file()]
            if files:
                copy(files[0], target)
        else:
            copy(source, target)


def named(path: str, run_id: str) -> str:
    """`${{name}}` in an output's path: the run's id (Azure ML's job name)."""
    return re.sub(r"\$\{\{\s*name\s*\}\}", run_id, path)


def copy(source: Path, target: Path) -> bool:
    """An output, a file or a folder, copied to its place in a datastore's folder (False: the
    job left nothing there)."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    else:
        return False
    return True


def describe(a: dict) -> str:
    """`azure_blob mystorageacct/training-data, account key; locally the folder F`."""
    holds = next((a[k] for k in FIELDS[1:5] if a.get(k)), "")
    where = "/".join(str(p) for p in (a.get("account_name"), holds) if p)
    cred = {"none": "no credential (identity)"}.get(
        a.get("credentials") or "none", str(a.get("credentials")).replace("_", " ")
    )
    text = f"{a.get('type')} {where}, {cred}"
    return f"{text}; folder {a['folder']}" if a.get("folder") else text


def assets_on(assets: dict, stores: dict[str, Datastore]) -> dict:
    """The data assets, those on a datastore path with the local folder they read (where the
    datastore has one)."""
    out = {}
    for name, asset in assets.items():
        path = local_path(stores, asset.path) if asset.local is None else None
        out[name] = asset if path is None else dataclasses.replace(asset, local=path)
    return out


def links(jobs: dict) -> dict[str, dict[str, str]]:
    """Reader job -> {input: writer job}: a job's input on a datastore path that another job of
    the spec writes as an output (the same path, or one inside the other). The reader runs after
    the writer in one apply, and its fingerprint takes the writer's for that input."""
    outs = []
    for job in jobs.values():
        decls = list(job.outputs.values())
        for step in mapping(job.fields.get("jobs")).values():  # a pipeline's steps' own
            decls += list(mapping(mapping(step).get("outputs")).values())
        for decl in decls:
            path = mapping(decl).get("path")
            path = with_default(path, job.fields) if isinstance(path, str) else path
            if (found := parse(path)) is not None:
                outs.append((found[0], _parts(found[1]), job.name))
    found_links: dict[str, dict[str, str]] = {}
    for job in jobs.values():
        for name, inp in job.inputs.items():
            if (read := parse(inp.value)) is None:
                continue
            want = _parts(read[1])
            for store, parts, writer in outs:
                n = min(len(parts), len(want))
                if store == read[0] and writer != job.name and parts[:n] == want[:n]:
                    found_links.setdefault(job.name, {})[name] = writer
    return found_links


def ordered(names: list[str], after: dict[str, set[str]]) -> list[str]:
    """`names` with each job after the jobs it reads from (else in the given order; a cycle is
    left as it is)."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple) -> None:
        if name in seen or name in path:
            return
        for writer in sorted(after.get(name, ())):
            if writer in names:
                visit(writer, path + (name,))
        seen.add(name)
        out.append(name)

    for name in names:
        visit(name, ())
    return out


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(path).parts if p not in ("/", "."))


def check_local(doc: Doc, data: dict, stores: dict[str, Datastore], runs: bool) -> None:
    """On a target that runs here: an input or data asset on a datastore path that is not in the
    datastore's folder, and that no job of the spec writes, is said (an error for a run, else a
    warning: the spec may be meant for Azure)."""
    written = []
    for at, uri in uris(data):
        if at[-3] == "outputs" and (found := parse(resolved(data, at, uri))) is not None:
            written.append((found[0], _parts(found[1])))
    stand_ins = mapping(mapping(mapping(data.get("targets")).get("local")).get("inputs"))
    for at, uri in uris(data):
        found = parse(resolved(data, at, uri))
        if found is None or at[-3] == "outputs" or at[0] == "models" or uri in stand_ins:
            continue
        if at[0] == "data" and "source" in mapping(mapping(data.get("data")).get(at[1])):
            continue  # a data import writes it, on Azure
        store, want = stores.get(found[0]), _parts(found[1])
        if store is None or store.local is None or ".." in want:
            continue  # check says so, or not a folder here
        if store.local.joinpath(*want).exists():
            continue
        if any(s == found[0] and p[: len(want)] == want[: len(p)] for s, p in written):
            continue  # a job of the spec writes it
        shown = os.path.relpath(store.local, Path(doc.file).resolve().parent)
        doc.problem(
            at,
            f"'{uri}' is not in datastore {found[0]}, which is the folder {shown} here "
            f"(put it there, or map {found[0]} to a folder in targets.local.datastores)",
            severity="error" if runs else "warning",
        )
