"""runner/fingerprint.py: content digests of trees, and job fingerprints part by part."""

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from runner import fingerprint, spec as spec_mod
from runner.fingerprint import PARTS, changed, combine, parts, tree_digest


def make_tree(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "code", {"train.py": "print('hi')\n", "lib/util.py": "X = 1\n"})


# --- tree_digest ---------------------------------------------------------------------------------


def test_tree_digest_is_stable_and_independent_of_where_the_tree_is(tree, tmp_path):
    first = tree_digest(tree)
    assert tree_digest(tree) == first
    fingerprint._tree_cache.clear()
    assert tree_digest(tree) == first
    assert tree_digest(Path(str(tree) + "/")) == first
    copy = make_tree(
        tmp_path / "elsewhere", {"train.py": "print('hi')\n", "lib/util.py": "X = 1\n"}
    )
    assert tree_digest(copy) == first
    assert len(first) == 64


def test_tree_digest_of_a_file_is_the_sha256_of_its_bytes(tmp_path):
    f = tmp_path / "data.csv"
    f.write_bytes(b"a,b\n1,2\n")
    assert tree_digest(f) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_tree_digest_changes_when_a_files_bytes_change(tree):
    before = tree_digest(tree)
    (tree / "lib" / "util.py").write_text("X = 22\n")
    assert tree_digest(tree) != before


def test_pipes_sockets_and_broken_links_in_a_tree_are_skipped_not_read(tree, tmp_path):
    """Opening a pipe with no writer blocks forever: the digest skips what is not a regular file
    (in a thread, so that a regression fails instead of hanging)."""
    before = tree_digest(tree)
    os.mkfifo(tree / "pipe")
    (tree / "lib" / "gone.py").symlink_to(tmp_path / "nowhere.py")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "lib" / "sock"))
    fingerprint._tree_cache.clear()
    result = []
    worker = threading.Thread(target=lambda: result.append(tree_digest(tree)), daemon=True)
    worker.start()
    worker.join(30)
    sock.close()
    assert not worker.is_alive(), "tree_digest blocked on a special file"
    assert result == [before]


def test_a_same_size_edit_within_one_timestamp_tick_is_seen(tree):
    """A filesystem with coarse timestamps gives an edit made right after hashing the same mtime:
    the (name, size, mtime) cache must not answer with the old digest."""
    f = tree / "train.py"
    st = f.stat()
    before = tree_digest(tree)
    f.write_text("print('ho')\n")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, as within one tick
    assert tree_digest(tree) != before


def test_only_trees_of_settled_files_are_cached(tree):
    fingerprint._tree_cache.clear()
    tree_digest(tree)
    assert (
        fingerprint._tree_cache == {}
    )  # just written: an edit in the same tick would look the same
    hour_ago = os.stat(tree / "train.py").st_mtime_ns - 3600 * 10**9
    for f in (tree / "train.py", tree / "lib" / "util.py"):
        os.utime(f, ns=(hour_ago, hour_ago))
    digest = tree_digest(tree)
    assert list(fingerprint._tree_cache.values()) == [digest]


def test_tree_digest_changes_when_a_file_is_added_renamed_or_moved(tree):
    seen = {tree_digest(tree)}
    (tree / "new.txt").write_text("")
    seen.add(tree_digest(tree))
    (tree / "new.txt").rename(tree / "renamed.txt")
    seen.add(tree_digest(tree))
    (tree / "renamed.txt").rename(tree / "lib" / "renamed.txt")
    seen.add(tree_digest(tree))
    (tree / "lib" / "renamed.txt").unlink()
    assert tree_digest(tree) in seen  # back to the start
    assert len(seen) == 4


def test_tree_digest_ignores_caches_vcs_and_state(tree):
    before = tree_digest(tree)
    make_tree(
        tree,
        {
            "__pycache__/train.cpython-311.pyc": b"\x00",
            "lib/__pycache__/util.cpython-311.pyc": b"\x01",
            "lib/util.pyc": b"\x02",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".mlrun/lab.local.json": "{}",
            ".ipynb_checkpoints/x.ipynb": "{}",
            ".pytest_cache/v/cache": "[]",
        },
    )
    assert tree_digest(tree) == before


# --- job fingerprints ----------------------------------------------------------------------------

LAB = """\
name: fp
workspace: {name: ws-fp}
computes:
  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
  gpu: {type: amlcompute, size: STANDARD_NC6, max_instances: 1}
jobs:
  train:
    code: src
    command: python train.py --data ${{inputs.data}} --rate ${{inputs.rate}}
    inputs:
      data: {type: uri_file, path: data.csv}
      rate: 0.1
    environment: azureml:AzureML-sklearn-1.5@latest
    compute: cpu
    environment_variables: {MODE: fast}
    display_name: train-run
    tags: {team: ml}
"""


@pytest.fixture
def lab(tmp_path):
    make_tree(tmp_path, {"src/train.py": "print('train')\n", "data.csv": "a,b\n1,2\n"})
    return tmp_path


def job_parts(root: Path, body: str = LAB) -> dict:
    (root / "lab.yaml").write_text(body)
    return parts(spec_mod.load(root / "lab.yaml").jobs["train"])


def test_parts_are_the_parts_in_order_and_stable(lab):
    first = job_parts(lab)
    assert (
        tuple(first)
        == PARTS
        == ("command", "code", "inputs", "environment", "compute", "environment_variables")
    )
    assert first["code"] == tree_digest(lab / "src")
    fingerprint._tree_cache.clear()
    assert job_parts(lab) == first
    assert combine(first) == combine(dict(reversed(list(first.items()))))


@pytest.mark.parametrize(
    "edit, part",
    [
        (
            lambda root: job_parts(root, LAB.replace("python train.py", "python3 train.py")),
            "command",
        ),
        (
            lambda root: (
                (root / "src" / "train.py").write_text("print('train v2')\n") and job_parts(root)
            ),
            "code",
        ),
        (
            lambda root: (root / "src" / "extra.py").write_text("") is not None and job_parts(root),
            "code",
        ),
        (lambda root: (root / "data.csv").write_text("a,b\n1,3\n") and job_parts(root), "inputs"),
        (lambda root: job_parts(root, LAB.replace("rate: 0.1", "rate: 0.2")), "inputs"),
        (lambda root: job_parts(root, LAB.replace("sklearn-1.5", "sklearn-1.6")), "environment"),
        (lambda root: job_parts(root, LAB.replace("compute: cpu", "compute: gpu")), "compute"),
        (
            lambda root: job_parts(root, LAB.replace("MODE: fast", "MODE: slow")),
            "environment_variables",
        ),
        (
            lambda root: job_parts(root, LAB.replace("{MODE: fast}", "{MODE: fast, SEED: 1}")),
            "environment_variables",
        ),
    ],
    ids=[
        "command",
        "code-edit",
        "code-new-file",
        "input-file",
        "literal-input",
        "environment",
        "compute",
        "env-value",
        "env-added",
    ],
)
def test_each_change_changes_exactly_its_part(lab, edit, part):
    before = job_parts(lab)
    after = edit(lab)
    assert changed(before, after) == [part]
    assert combine(after) != combine(before)


@pytest.mark.parametrize(
    "body",
    [
        LAB.replace("display_name: train-run", "display_name: other"),
        LAB.replace("{team: ml}", "{team: ops}"),
        LAB.replace("compute: cpu", "compute: azureml:cpu"),
        LAB.replace("{MODE: fast}", "{MODE: 'fast'}"),
    ],
    ids=["display_name", "tags", "azureml-prefixed-compute", "quoted-env-value"],
)
def test_what_does_not_change_the_result_does_not_change_the_fingerprint(lab, body):
    assert job_parts(lab, body) == job_parts(lab)


def test_the_fingerprint_ignores_caches_in_the_code_folder(lab):
    before = job_parts(lab)
    make_tree(lab, {"src/__pycache__/train.cpython-311.pyc": b"\x00"})
    assert job_parts(lab) == before


def test_a_remote_code_reference_is_fingerprinted_by_its_name(lab):
    body = LAB.replace("code: src", "code: azureml:my-code:1")
    assert changed(
        job_parts(lab, body), job_parts(lab, body.replace("my-code:1", "my-code:2"))
    ) == ["code"]
    assert changed(job_parts(lab, body), job_parts(lab)) == ["code"]


def test_changed_lists_part_names_in_parts_order():
    old = {p: "a" for p in PARTS}
    new = dict(
        reversed(
            list({**old, "environment_variables": "b", "command": "b", "compute": "b"}.items())
        )
    )
    assert changed(old, new) == ["command", "compute", "environment_variables"]
    assert changed(old, dict(old)) == []
    assert changed(None, new) == list(PARTS)
    assert changed({}, new) == list(PARTS)
    assert changed({"command": "a"}, old) == [
        "code",
        "inputs",
        "environment",
        "compute",
        "environment_variables",
    ]
