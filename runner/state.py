"""The state file: what mlrun created and ran. Atomic writes, a backup, a lock naming its holder."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from .errors import UserError
from .records import JobEntry, Resource, Run, StateDoc

FORMAT_VERSION = 1
KEEP_RUNS = 20


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_path(spec_path: Path, name: str, target: str) -> Path:
    return Path(spec_path).resolve().parent / ".mlrun" / f"{name}.{target}.json"


def _empty(name: str, target: str) -> StateDoc:
    return {
        "format_version": FORMAT_VERSION,
        "lineage": "",
        "serial": 0,
        "name": name,
        "target": target,
        "variables": {},
        "resources": {},
        "jobs": {},
    }


def _check_shape(data) -> None:
    """What every command relies on; anything else wrong is damage (ValueError), not a crash."""
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError("not an mlrun state of format_version 1")
    for key in ("resources", "jobs", "variables"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"'{key}' is missing or not a mapping")
    for address, record in data["resources"].items():
        if not isinstance(record, dict):
            raise ValueError(f"'resources.{address}' is not a mapping")
    for job, entry in data["jobs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("runs"), list):
            raise ValueError(f"'jobs.{job}' is not a mapping with a list of runs")
        if not all(
            isinstance(run, dict) and isinstance(run.get("id"), str) for run in entry["runs"]
        ):
            raise ValueError(f"a run of 'jobs.{job}' is not a mapping with an 'id'")


def journal_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".journal")


class State:
    """The state document, safe to update from apply's threads; every save is atomic.

    While an apply runs jobs (`journaled`), a run's record is not written by saving the whole
    document (whose size grows with the lab) but as one line appended to NAME.TARGET.json.journal
    and fsynced: the bytes written per job stay the same however large the lab is. Loading
    replays the journal over the document (a line cut short by a crash is ignored: it was never
    complete); the journal is folded into the document, and removed, by the next whole save and
    when the apply ends."""

    def __init__(self, path: Path, data: StateDoc):
        self.path, self.data = Path(path), data
        self._mutex = threading.RLock()
        self._journal: BinaryIO | None = None  # the open journal while journaled

    @classmethod
    def load(cls, path: Path, name: str, target: str) -> State:
        path = Path(path)
        try:
            text = path.read_bytes()  # decoded by json.loads: bad bytes are damage, not a crash
        except FileNotFoundError:
            return cls(path, _empty(name, target))
        except OSError as e:
            raise UserError(f"cannot read the state file {path}: {e.strerror}") from None
        try:
            data = json.loads(text)
            _check_shape(data)
        except ValueError as e:
            backup = path.with_name(path.name + ".bak")
            hint = (
                f"the previous state is in {backup}: check it, then copy it over {path.name}"
                if backup.exists()
                else "no backup exists: move it aside to start from an empty state"
            )
            raise UserError(f"the state file {path} is damaged ({e}); {hint}") from None
        state = cls(path, cast(StateDoc, data))
        state._replay()
        return state

    def _replay(self) -> None:
        """The journal's complete lines over the document (each is idempotent: a line the
        document already holds, written before a crash cut the journal's removal, changes
        nothing)."""
        try:
            lines = journal_path(self.path).read_bytes().split(b"\n")
        except OSError:
            return
        for line in lines[:-1]:  # the last is empty, or cut short by a crash
            try:
                entry = json.loads(line)
                runs = self.data["jobs"].setdefault(entry["job"], {"runs": []})["runs"]
                self.data["serial"] = max(self.data["serial"], int(entry["serial"]))
                found = [i for i, r in enumerate(runs) if r.get("id") == entry["run"]["id"]]
                if found:
                    runs[found[0]] = entry["run"]
                else:
                    runs.append(entry["run"])
                    del runs[:-KEEP_RUNS]
            except (ValueError, KeyError, TypeError, AttributeError):
                return  # damage past here is a crash's cut: what was whole is replayed

    # --- reading -----------------------------------------------------------------------------

    @property
    def serial(self) -> int:
        return self.data["serial"]

    @property
    def resources(self) -> dict[str, Resource]:
        return self.data["resources"]

    @property
    def jobs(self) -> dict[str, JobEntry]:
        return self.data["jobs"]

    @property
    def variables(self) -> dict[str, str]:
        """Generated variables' values, kept so the names stay the same from apply to apply."""
        return self.data["variables"]

    def runs(self, job: str) -> list[Run]:
        entry = self.data["jobs"].get(job)
        return entry["runs"] if entry else []

    def latest(self, job: str) -> Run | None:
        runs = self.runs(job)
        return runs[-1] if runs else None

    def snapshot(self) -> StateDoc:
        with self._mutex:
            return copy.deepcopy(self.data)

    # --- changing (each saves) ---------------------------------------------------------------

    def set_resource(self, address: str, record: Resource | None) -> None:
        with self._mutex:
            if record is None:
                self.data["resources"].pop(address, None)
            else:
                self.data["resources"][address] = record
            self.save()

    def add_run(self, job: str, run: Run) -> None:
        with self._mutex:
            runs = self.data["jobs"].setdefault(job, {"runs": []})["runs"]
            runs.append(run)
            del runs[:-KEEP_RUNS]
            self._log({"job": job, "run": run})

    def update_run(self, job: str, run_id: str, save: bool = True, **fields: Any) -> Run:
        """Update a run's record; with save=False in memory only, written by the next save (for what
        the next apply can find out again from the run itself)."""
        with self._mutex:
            for run in self.runs(job):
                if run["id"] == run_id:
                    cast(dict[str, Any], run).update(fields)  # fields of a Run (RunChange's too)
                    if save:
                        self._log({"job": job, "run": run})
                    return run
        raise KeyError(run_id)

    def forget_job(self, job: str) -> None:
        with self._mutex:
            self.data["jobs"].pop(job, None)
            self.save()

    @property
    def lab(self) -> dict[str, Any]:
        """The lab's own times: `started` (its first apply), `extended` (seconds apply --extend
        added); {} before its first apply."""
        return dict(self.data.get("lab") or {})

    def set_lab(self, **fields) -> None:
        with self._mutex:
            self.data["lab"] = {**(self.data.get("lab") or {}), **fields}
            self.save()

    def forget_lab(self) -> None:
        with self._mutex:
            self.data.pop("lab", None)
            self.save()

    def set_variables(self, values: dict[str, str]) -> None:
        with self._mutex:
            if values:
                self.data["variables"].update(values)
                self.save()

    def forget_variables(self, names) -> None:
        """Drop generated variables' values (those named, and any the state holds), then save:
        the next apply generates new ones."""
        with self._mutex:
            for name in set(names) | set(self.data["variables"]):
                self.data["variables"].pop(name, None)
            self.save()

    def save(self) -> None:
        """Write atomically: temp file, fsync, keep the previous file as .bak, rename over; then
        the journal, folded in, goes."""
        with self._mutex:
            self.data["serial"] += 1
            self.data["lineage"] = (
                self.data["lineage"] or uuid.uuid4().hex
            )  # named on its first save
            text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
            atomic_write(self.path, text, backup=True)
            if self._journal is not None:
                self._journal.truncate(0)
            else:
                journal_path(self.path).unlink(missing_ok=True)

    def _log(self, entry: dict) -> None:
        """A run's change: one journal line while journaled, else a whole save."""
        if self._journal is None or not self.data["lineage"]:
            self.save()
            return
        self.data["serial"] += 1
        line = json.dumps({**entry, "serial": self.data["serial"]}, sort_keys=True) + "\n"
        try:
            self._journal.write(line.encode())
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as e:  # (the journal is the state file's own)
            raise UserError(f"cannot write the state file {self.path}: {e.strerror}") from None

    @contextlib.contextmanager
    def journaled(self) -> Iterator[None]:
        """Runs' changes journaled (see the class), folded into the document at the end."""
        with self._mutex:
            if not self.data["lineage"]:
                self.save()  # named, so that a journal always has a document to go with
            path = journal_path(self.path)
            try:
                self._journal = open(path, "ab")
            except OSError as e:
                raise UserError(f"cannot write the state file {self.path}: {e.strerror}") from None
        try:
            yield
        finally:
            with self._mutex:
                journal, self._journal = self._journal, None
                assert journal is not None
                try:
                    if os.fstat(journal.fileno()).st_size:  # what it holds, into the document
                        self.save()  # (and the journal goes)
                        self.save()  # so that the backup holds the runs too, as before
                    else:
                        journal_path(self.path).unlink(missing_ok=True)
                finally:
                    journal.close()


def atomic_write(path: Path, text: str, backup: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    bak_tmp = path.with_name(path.name + ".bak.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if backup and path.exists():
            bak = path.with_name(path.name + ".bak")
            bak_tmp.unlink(missing_ok=True)
            try:
                os.link(path, bak_tmp)  # the previous file itself (never written in place): no copy
            except OSError:  # a file system without hard links
                with open(path, "rb") as src, open(bak_tmp, "wb") as dst:
                    dst.write(src.read())
            os.replace(bak_tmp, bak)
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a power loss
    except OSError as e:
        for leftover in (
            (tmp, bak_tmp) if backup else (tmp,)
        ):  # the old file is intact: no half-done copies
            try:
                leftover.unlink()
            except OSError:
                pass
        raise UserError(f"cannot write the state file {path}: {e.strerror}") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lock:
    """An exclusive lock on a state, held with flock (released by the kernel if mlrun dies);
    the file names the holder so a second apply can say who has it."""

    def __init__(self, state_file: Path, command: str):
        self.path = Path(state_file).with_suffix(".lock")
        self.state_file = Path(state_file)
        self.command = command
        self.taken_over: dict | None = None
        self._fd: int | None = None

    def __enter__(self) -> Lock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot create the lock file {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = (
                (
                    f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
                    f"({holder.get('command')})"
                )
                if holder
                else "another process"
            )
            raise UserError(
                f"the state is locked by {who}; wait for it to finish ({self.path})"
            ) from None
        previous = _read_holder(fd)
        if previous:
            self.taken_over = previous  # its holder died without releasing: flock says so
        name = (
            self.state_file.name
        )  # only a holder writes the state: temp files left are a dead one's
        for leftover in [
            *self.path.parent.glob(f".{name}.*.tmp"),
            self.path.with_name(f"{name}.bak.tmp"),
        ]:
            leftover.unlink(missing_ok=True)
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": now(),
                    "command": self.command,
                }
            ).encode(),
            0,
        )
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
