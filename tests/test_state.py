"""runner/state.py: the state file (atomic saves, a backup, damage reported) and its lock."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from runner import state as state_mod
from runner.errors import UserError
from runner.state import KEEP_RUNS, Lock, State, state_path

HOLD_LOCK = """\
import sys, time
from runner.state import Lock
lock = Lock(sys.argv[1], sys.argv[2]).__enter__()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def path(tmp_path):
    return tmp_path / ".mlrun" / "lab.local.json"


def load(path):
    return State.load(path, "lab", "local")


def on_disk(path):
    return json.loads(path.read_text(encoding="utf-8"))


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- loading and saving --------------------------------------------------------------------------


def test_state_path_is_beside_the_spec_named_for_lab_and_target(tmp_path):
    assert (
        state_path(tmp_path / "specs" / "lab.yaml", "lab", "azure")
        == tmp_path / "specs" / ".mlrun" / "lab.azure.json"
    )


def test_a_missing_state_loads_empty_and_creates_nothing(tmp_path, path):
    s = load(path)
    assert s.data == {
        "format_version": 1,
        "lineage": "",
        "serial": 0,
        "name": "lab",
        "target": "local",
        "variables": {},
        "resources": {},
        "jobs": {},
    }
    assert (s.serial, s.resources, s.jobs, s.runs("x"), s.latest("x")) == (0, {}, {}, [], None)
    assert list(tmp_path.iterdir()) == []


def test_the_first_save_names_the_lineage_and_later_saves_keep_it(path):
    s = load(path)
    s.save()
    first = on_disk(path)
    assert first["serial"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", first["lineage"])
    assert first == s.data
    s.save()
    assert (on_disk(path)["serial"], on_disk(path)["lineage"]) == (2, first["lineage"])
    assert load(path).data == s.data


def test_each_save_keeps_the_previous_file_as_bak_and_leaves_no_temp_files(path):
    s = load(path)
    s.set_resource("workspace.w", {"kind": "workspace", "name": "w", "attrs": {}})
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "lab.local.json"
    ]  # nothing to back up yet
    previous = path.read_bytes()
    s.set_resource("compute.c", {"kind": "compute", "name": "c", "attrs": {"type": "amlcompute"}})
    assert path.with_name("lab.local.json.bak").read_bytes() == previous
    assert sorted(p.name for p in path.parent.iterdir()) == ["lab.local.json", "lab.local.json.bak"]
    assert on_disk(path)["serial"] == 2
    assert list(on_disk(path)["resources"]) == ["compute.c", "workspace.w"]
    s.set_resource("compute.c", None)
    assert list(load(path).resources) == ["workspace.w"]
    assert path.read_text(encoding="utf-8").endswith("}\n")


def test_a_failed_rename_leaves_the_old_state_intact_and_says_which_file(path, monkeypatch):
    s = load(path)
    s.add_run("train", {"id": "r1", "status": "Completed"})
    before = path.read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == os.fspath(path):  # the temp file is written; its rename fails
            assert json.loads(open(src, encoding="utf-8").read())["serial"] == 2
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(state_mod.os, "replace", replace)
    with pytest.raises(UserError) as e:
        s.add_run("train", {"id": "r2", "status": "Running"})
    assert str(e.value) == f"cannot write the state file {path}: Permission denied"
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []
    monkeypatch.undo()
    assert [r["id"] for r in load(path).runs("train")] == ["r1"]


def test_a_failed_write_of_the_temp_file_leaves_the_old_state_intact(path, monkeypatch):
    s = load(path)
    s.save()
    before = path.read_bytes()

    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "fsync", fsync)
    with pytest.raises(
        UserError, match=re.escape(f"cannot write the state file {path}: No space left on device")
    ):
        s.save()
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_a_truncated_state_names_the_file_and_its_backup(path):
    s = load(path)
    s.save()
    s.save()
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError) as e:
        load(path)
    message = str(e.value)
    assert message.startswith(f"the state file {path} is damaged (")
    assert message.endswith(
        f"); the previous state is in {path}.bak: check it, then copy it over lab.local.json"
    )
    assert on_disk(path.with_name("lab.local.json.bak"))["serial"] == 1  # and the backup is good


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (
            b'{"format_version": 1, "serial": 3',
            "Expecting ',' delimiter: line 1 column 34 (char 33)",
        ),
        (b"[1, 2]", "not an mlrun state of format_version 1"),
        (b'{"format_version": 2}', "not an mlrun state of format_version 1"),
        (
            b'{"format_version": 1, "resources": {}, "jobs": []}',
            "'jobs' is missing or not a mapping",
        ),
        (
            b'{"format_version": 1, "jobs": {}, "variables": {}}',
            "'resources' is missing or not a mapping",
        ),
    ],
)
def test_a_damaged_state_without_a_backup_says_how_to_start_over(path, content, why):
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        load(path)
    assert str(e.value) == (
        f"the state file {path} is damaged ({why}); no backup exists: move it aside to "
        "start from an empty state"
    )


def test_a_garbled_binary_state_is_reported_as_damaged_not_a_crash(path):
    path.parent.mkdir()
    path.write_bytes(b"\x89\x00\xff\xfe\x80garbage")
    with pytest.raises(UserError) as e:
        load(path)
    assert str(e.value).startswith(f"the state file {path} is damaged (")
    assert str(e.value).endswith("no backup exists: move it aside to start from an empty state")


def test_a_state_that_is_a_folder_cannot_be_read(path):
    path.mkdir(parents=True)
    with pytest.raises(UserError) as e:
        load(path)
    assert str(e.value) == f"cannot read the state file {path}: Is a directory"


# --- runs ----------------------------------------------------------------------------------------


def test_add_run_keeps_the_latest_keep_runs_and_saves_each_time(path):
    s = load(path)
    for i in range(KEEP_RUNS + 5):
        s.add_run("train", {"id": f"r{i}", "status": "Completed"})
    assert KEEP_RUNS == 20
    on_file = load(path)
    assert [r["id"] for r in on_file.runs("train")] == [f"r{i}" for i in range(5, KEEP_RUNS + 5)]
    assert on_file.latest("train") == {"id": f"r{KEEP_RUNS + 4}", "status": "Completed"}
    assert on_file.serial == KEEP_RUNS + 5


def test_update_run_changes_the_run_with_that_id_only(path):
    s = load(path)
    s.add_run("train", {"id": "r1", "status": "Completed"})
    s.add_run("train", {"id": "r2", "status": "Running"})
    s.add_run("score", {"id": "r2", "status": "Running"})
    assert s.update_run("train", "r2", status="Failed", exit_code=1) == {
        "id": "r2",
        "status": "Failed",
        "exit_code": 1,
    }
    on_file = load(path)
    assert on_file.runs("train") == [
        {"id": "r1", "status": "Completed"},
        {"id": "r2", "status": "Failed", "exit_code": 1},
    ]
    assert on_file.runs("score") == [{"id": "r2", "status": "Running"}]
    assert on_file.serial == 4


def test_update_of_an_unknown_run_raises_keyerror_and_saves_nothing(path):
    s = load(path)
    s.add_run("train", {"id": "r1", "status": "Running"})
    with pytest.raises(KeyError):
        s.update_run("train", "nope", status="Failed")
    with pytest.raises(KeyError):
        s.update_run("other", "r1", status="Failed")
    assert load(path).serial == 1


def test_forget_job_and_set_variables(path):
    s = load(path)
    s.add_run("train", {"id": "r1", "status": "Completed"})
    s.set_variables({})  # nothing new: no save
    assert load(path).serial == 1
    s.set_variables({"suffix": "a1b2c3"})
    s.forget_job("train")
    on_file = load(path)
    assert (on_file.serial, on_file.data["variables"], on_file.jobs) == (
        3,
        {"suffix": "a1b2c3"},
        {},
    )


def test_snapshot_is_a_deep_copy(path):
    s = load(path)
    s.add_run("train", {"id": "r1", "status": "Running"})
    snap = s.snapshot()
    snap["jobs"]["train"]["runs"][0]["status"] = "Changed"
    assert s.latest("train")["status"] == "Running"


def test_threads_adding_and_updating_runs_leave_a_consistent_file(path, monkeypatch):
    monkeypatch.setattr(
        state_mod.os, "fsync", lambda fd: None
    )  # 400 saves: the disk's speed is not the point
    s = load(path)
    threads, per_thread, errors = 8, 50, []

    def work(t):
        try:
            for k in range(per_thread // 2):
                s.add_run(f"job{t}", {"id": f"{t}-{k}", "status": "Running"})
                s.update_run(f"job{t}", f"{t}-{k}", status="Completed")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    data = on_disk(path)
    assert data["serial"] == threads * per_thread == s.serial
    assert data == s.data
    for t in range(threads):
        runs = data["jobs"][f"job{t}"]["runs"]
        assert [r["id"] for r in runs] == [
            f"{t}-{k}" for k in range(per_thread // 2 - KEEP_RUNS, per_thread // 2)
        ]
        assert {r["status"] for r in runs} == {"Completed"}
    assert on_disk(path.with_name("lab.local.json.bak"))["serial"] == threads * per_thread - 1
    assert leftovers(path.parent) == []


# --- the lock ------------------------------------------------------------------------------------


def hold_lock(path, command="mlrun apply"):
    """Another process that takes the lock and keeps it; returns once it has it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), command], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_second_lock_from_another_process_names_the_holder(path):
    proc = hold_lock(path)
    try:
        holder = json.loads(path.with_suffix(".lock").read_text())
        assert (holder["pid"], holder["host"], holder["command"]) == (
            proc.pid,
            socket.gethostname(),
            "mlrun apply",
        )
        with pytest.raises(UserError) as e:
            with Lock(path, "mlrun destroy"):
                pass
        assert str(e.value) == (
            f"the state is locked by pid {proc.pid} on {socket.gethostname()} since "
            f"{holder['since']} (mlrun apply); wait for it to finish ({path.with_suffix('.lock')})"
        )
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_holder_is_taken_over_and_names_it(path):
    proc = hold_lock(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Lock(path, "mlrun destroy") as lock:
        assert lock.taken_over["pid"] == proc.pid
        assert lock.taken_over["command"] == "mlrun apply"
        holder = json.loads(path.with_suffix(".lock").read_text())
        assert (holder["pid"], holder["command"]) == (os.getpid(), "mlrun destroy")
    assert (
        path.with_suffix(".lock").read_text() == ""
    )  # released cleanly: nothing to take over next time
    with Lock(path, "mlrun apply") as lock:
        assert lock.taken_over is None


def test_the_lock_is_free_again_once_released(path):
    with Lock(path, "mlrun apply") as first:
        assert first.taken_over is None
        with pytest.raises(UserError, match=r"^the state is locked by pid \d+ on "):
            with Lock(path, "mlrun apply"):
                pass
    with Lock(path, "mlrun apply") as again:
        assert again.taken_over is None


# --- the journal: a run's record appended, not the whole state rewritten -------------------------


def test_while_journaled_a_runs_record_is_a_line_that_a_load_replays_and_the_end_folds_in(path):
    state = State.load(path, "lab", "local")
    state.set_resource("workspace.ws", {"kind": "workspace", "name": "ws", "attrs": {}})
    document = path.read_bytes()
    journal = path.with_name("lab.local.json.journal")
    with state.journaled():
        state.add_run("train", {"id": "r1", "status": "Preparing"})
        state.update_run("train", "r1", status="Running", pid=7)
        state.update_run("train", "r1", save=False, status="Completed")  # memory only
        assert path.read_bytes() == document  # the document is not rewritten per run
        lines = journal.read_text().splitlines()
        assert [json.loads(line)["run"]["status"] for line in lines] == ["Preparing", "Running"]
        seen = State.load(path, "lab", "local")  # plan or status, while apply runs
        assert seen.latest("train") == {"id": "r1", "status": "Running", "pid": 7}
        assert seen.serial == state.serial
    assert not journal.exists()
    folded = State.load(path, "lab", "local")
    assert folded.latest("train") == {"id": "r1", "status": "Completed", "pid": 7}
    assert json.loads(path.read_text())["jobs"]["train"]["runs"] == [folded.latest("train")]


def test_a_journal_cut_by_a_crash_replays_its_whole_lines_once_and_a_save_takes_it_in(path):
    state = State.load(path, "lab", "local")
    journaled = state.journaled()
    journaled.__enter__()  # and never left: what kill -9 leaves
    state.add_run("a", {"id": "r1", "status": "Preparing"})
    state.update_run("a", "r1", status="Running")
    state.add_run("b", {"id": "r2", "status": "Running"})
    journal = path.with_name("lab.local.json.journal")
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"job": "c", "run": {"id": "r3", "sta')  # a line cut short
    loaded = State.load(path, "lab", "local")
    assert [(j, [r["status"] for r in loaded.runs(j)]) for j in ("a", "b", "c")] == [
        ("a", ["Running"]),
        ("b", ["Running"]),
        ("c", []),
    ]
    assert loaded.serial == state.serial
    loaded.save()  # the next apply's first save: the journal folded in, gone
    assert not journal.exists()
    journal.write_bytes(whole)  # lines the document holds already (a crash before the removal)
    again = State.load(path, "lab", "local")
    assert [r["id"] for r in again.runs("a")] == ["r1"] and again.serial == loaded.serial
