"""replab.io: strict JSON for non-finite metrics (also as DVC reads it back) and the finite-values check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import one_line_naming
from replab.bench import HostReadCounter
from replab.io import DataError, NonFiniteError, first_non_finite, one_line, read_json, require_finite, write_json


def strict_loads(text: str):
    """json.loads that refuses the non-standard NaN / Infinity tokens, as strict parsers (and browsers) do."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


NON_FINITE = {
    "test_loss": float("nan"), "np_nan": np.float64("nan"), "np32_inf": np.float32("inf"),
    "neg_inf": -np.inf, "array": np.array([1.0, np.nan, np.inf]), "nested": {"roc_auc": [0.5, np.float32("nan")]},
    "tuple": (np.float16("-inf"), 2), "fine": np.float64(0.25), "count": np.int64(3), "flag": np.bool_(True),
}


def test_one_line_escapes_control_characters_and_keeps_the_rest():
    assert one_line("a\nb\r\tc\x1b[31m ∂x ≥ 1 × 2 | é") == "a\\nb\\r\\tc\\x1b[31m ∂x ≥ 1 × 2 | é"
    assert one_line(ValueError("line\u2028sep")) == "line\\u2028sep"


def test_non_finite_values_are_written_as_strict_json_null(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, NON_FINITE)
    data = strict_loads(path.read_text())
    assert data == {"test_loss": None, "np_nan": None, "np32_inf": None, "neg_inf": None,
                    "array": [1.0, None, None], "nested": {"roc_auc": [0.5, None]}, "tuple": [None, 2],
                    "fine": 0.25, "count": 3, "flag": True}
    assert read_json(path) == data


def test_dvc_metrics_show_reads_them_as_missing(tmp_path):
    """DVC drops a null metric (shown as `-`); a NaN token would reach `dvc metrics show --json` as NaN."""
    from dvc.repo import Repo

    repo = Repo.init(tmp_path, no_scm=True)
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - m.json\n")
    write_json(tmp_path / "m.json", {"test_loss": np.float64("nan"), "acc": {"mean": 0.5, "std": np.nan}})
    shown = repo.metrics.show()
    text = json.dumps(shown, allow_nan=False)  # strict: raises on NaN
    assert strict_loads(text)
    (data,) = [v["data"]["m.json"]["data"] for v in shown.values()]
    assert data == {"acc": {"mean": 0.5}}


def test_a_non_finite_number_is_an_error_or_for_metrics_missing(tmp_path):
    """replab writes a missing value as null: a NaN / Infinity token or 1e999 in a record (a hand-edited
    train.json's val_error) passed on as null in the metrics without a word. Metrics readers count it as missing."""
    (tmp_path / "m.json").write_text('{"a": NaN, "b": [Infinity, -Infinity, 1.5, 1e999]}')
    assert read_json(tmp_path / "m.json", non_finite="missing") == {"a": None, "b": [None, None, 1.5, None]}
    with pytest.raises(DataError) as err:
        read_json(tmp_path / "m.json", stage="train_x")
    assert str(err.value) == (f"{tmp_path / 'm.json'}: holds the number NaN, which replab never writes (a missing "
                              "value is null); run `dvc repro -s -f train_x`")
    (tmp_path / "big.json").write_text('{"val_error": 1e999}')
    with pytest.raises(DataError, match=r"big.json: holds the number 1e999, "):
        read_json(tmp_path / "big.json")
    (tmp_path / "ok.json").write_text('{"val_error": 12.5, "n": 3, "none": null}')
    assert read_json(tmp_path / "ok.json") == {"val_error": 12.5, "n": 3, "none": None}


@pytest.mark.parametrize("text, why", [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                       ('{"seed": ' + "1" * 5000 + "}", "an integer of more than 4,300 digits")])
def test_valid_json_that_python_cannot_hold_is_a_data_error(tmp_path, text, why):
    """json.loads raised RecursionError or ValueError (int() refuses over 4,300 digits) past the DataError handling:
    a traceback for a damaged lm1b_sample.json."""
    (tmp_path / "j.json").write_text(text)
    with pytest.raises(DataError) as err:
        read_json(tmp_path / "j.json", stage="prepare@lm1b")
    assert str(err.value) == (f"{tmp_path / 'j.json'}: valid JSON that Python cannot read ({why}); "
                              "run `dvc repro -s -f prepare@lm1b`")



def test_bytes_that_are_not_utf8_text_are_named_as_such(tmp_path):
    """A binary file read as JSON: UnicodeDecodeError is a ValueError, and was reported as "valid JSON that Python
    cannot read (an integer of more than 4,300 digits)"."""
    (tmp_path / "j.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(DataError) as err:
        read_json(tmp_path / "j.json", stage="prepare@lm1b")
    assert str(err.value) == (f"{tmp_path / 'j.json'}: not UTF-8 text, as JSON is (an undecodable byte at offset 7); "
                              "run `dvc repro -s -f prepare@lm1b`")

@pytest.mark.parametrize("make", [np.asarray, lambda a: torch.tensor(a)], ids=["numpy", "torch"])
def test_require_finite_names_what_and_counts(make):
    ok = make([[0.1, 2.0], [3.0, -4.0]])
    assert require_finite(ok, "x") is ok
    bad = make([[0.1, float("nan")], [float("inf"), 1.0]])
    with pytest.raises(NonFiniteError) as err:
        require_finite(bad, "autoencoder anomaly-conv-0: anomaly scores of class 3")
    msg = one_line_naming(err, "autoencoder anomaly-conv-0: anomaly scores of class 3")
    assert "2 of 4 values are NaN or infinite (first at flat index 1)" in msg
    assert isinstance(err.value, DataError)  # the command line prints it as `error: …`, exit 2


def test_require_finite_passes_integers_and_plain_numbers():
    assert require_finite(np.arange(3), "labels").tolist() == [0, 1, 2]
    assert require_finite(torch.arange(3), "labels").tolist() == [0, 1, 2]
    assert require_finite(0.5, "loss") == 0.5
    with pytest.raises(NonFiniteError, match="loss: 1 of 1 values"):
        require_finite(float("-inf"), "loss")


def test_atomic_outputs_get_the_mode_open_and_mkdir_would_give(tmp_path):
    """mkstemp / mkdtemp create 0600 / 0700 entries; shared results keep the usual umask-based modes."""
    import os

    from replab.io import atomic_dir

    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "out" / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "w.txt").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "out" / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_atomic_writes_never_replace_a_device_pipe_or_socket_and_replace_a_link_not_its_target(tmp_path):
    """An output path that is, or links to, a named pipe, a device (/dev/null, /dev/stdout as root) or a socket
    would become a plain file by the final rename: refused as one line before anything is written. A link to a
    regular file is replaced by the new file and its target left alone (DVC's symlink cache links outputs to
    read-only cache files)."""
    import os
    import socket

    from replab.io import atomic_dir, atomic_path, not_a_regular_file
    from replab.params import ParamError, check_writable

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "to_fifo").symlink_to(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for name, kind in (("fifo", "a named pipe"), ("to_fifo", "a named pipe"), ("sock", "a socket")):
            path = tmp_path / name
            assert not_a_regular_file(path) == kind
            with pytest.raises(DataError, match=f"^{path}: is {kind}, not a file") as err:
                with atomic_path(path) as tmp:
                    tmp.write_text("x")
            one_line_naming(err, str(path))
            with pytest.raises(DataError, match=f"is {kind}, not a folder"):
                with atomic_dir(path):
                    pass
            with pytest.raises(ParamError, match=f"^bench --json {path}: is {kind} "):
                check_writable(str(path), "bench --json")
    finally:
        sock.close()
    assert not_a_regular_file("/dev/null") == "a device" and not_a_regular_file(tmp_path / "none") is None
    with pytest.raises(ParamError, match="^check --marker: empty path"):
        check_writable("", "check --marker")
    assert fifo.is_fifo() and (tmp_path / "to_fifo").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "sock", "to_fifo"]  # no temp file left
    target = tmp_path / "real.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    write_json(tmp_path / "link.json", {"a": 1})
    assert not (tmp_path / "link.json").is_symlink() and read_json(tmp_path / "link.json") == {"a": 1}
    assert target.read_text() == "{}"


def test_a_commands_output_never_replaces_a_file_of_the_project(tmp_path, monkeypatch):
    """`bench --json params.yaml` and `compare --out …` replaced params.yaml and dvc.yaml with their output (exit 0):
    the pipeline's files, what Git tracks and DVC's folders are refused in one line, before any work."""
    import subprocess

    from replab.cli import main as cli
    from replab.params import ParamError, check_writable

    repo = tmp_path / "project"
    (repo / "src").mkdir(parents=True)
    (repo / "notes").mkdir()
    for name in ("dvc.yaml", "params.yaml", "README.md", "notes/kept.md"):
        (repo / name).write_text(f"{name}\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "README.md", "notes/kept.md"], check=True)
    for path, why in (("params.yaml", "is a file of the pipeline"), ("dvc.lock", "is a file of the pipeline"),
                      ("src/x.json", "lies in the project's src/, which the pipeline owns"),
                      ("models/aae_ssl/ae-0/model.pt", "lies in the project's models/"),
                      (".dvc/config", "lies in the project's .dvc/"), ("README.md", "is a file Git tracks"),
                      ("notes/kept.md", "is a file Git tracks")):
        with pytest.raises(ParamError) as err:
            check_writable(str(repo / path), "bench --json")
        assert str(err.value).startswith(f"bench --json {repo / path}: {why}") and "\n" not in str(err.value)
    (repo / "link.json").symlink_to(repo / "params.yaml")  # through a link too
    with pytest.raises(ParamError, match="is a file of the pipeline"):
        check_writable(str(repo / "link.json"), "compare --out")
    for path in ("bench-paper.json", "notes/new.md", "out/compare.csv"):  # new files outside the pipeline's
        check_writable(str(repo / path), "compare --out")
    # `replab check --marker`: a check stage's output in data/, new or a marker already; nothing else of the project
    # (it wrote over models, prepared data, the DVC cache and any untracked file, and said "ok")
    markers = ("params.yaml passed `replab check`\n", "passed --data\n")
    check_writable(str(repo / "data/params.checked"), "check --marker", markers)  # new
    (repo / "data").mkdir()
    (repo / "data/params.checked").write_text(markers[1])
    check_writable(str(repo / "data/params.checked"), "check --marker", markers)  # a marker: replaced
    (repo / "data/train.npz").write_text("prepared data")
    (repo / "notes.txt").write_text("a user's notes")
    for path, why in (("README.md", "is a file Git tracks"), ("data/train.npz", "holds something other than a marker"),
                      ("notes.txt", "holds something other than a marker"),
                      ("models/aae_ssl/ae-0/model.pt", "lies in the project's models/"),
                      (".dvc/cache/files/md5/00/x", "lies in the project's .dvc/")):
        with pytest.raises(ParamError) as err:
            check_writable(str(repo / path), "check --marker", markers)
        assert str(err.value).startswith(f"check --marker {repo / path}: {why}") and "\n" not in str(err.value)
    with pytest.raises(ParamError, match="lies in the project's data/"):  # other commands' outputs: not in data/
        check_writable(str(repo / "data/new.json"), "bench --json")
    before = (repo / "params.yaml").read_text()
    monkeypatch.chdir(repo)
    assert cli(["bench", "autoencoder", "--steps", "1", "--json", "params.yaml"]) == 2
    assert (repo / "params.yaml").read_text() == before


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_write_removes_a_killed_writers_leftovers(tmp_path):
    """A stage killed mid-write (kill -9) left `.<name>.*.tmp` files and folders that nothing removed: they showed
    in `git status` and stopped `replab sweep` as untracked files."""
    import os
    import socket

    from replab.io import atomic_dir, atomic_path, is_leftover

    host, dead = socket.gethostname(), _dead_pid()
    target, folder = tmp_path / "train.json", tmp_path / "metrics"
    killed_file = tmp_path / f".train.json.{host}-{dead}.abcd1234.tmp"
    killed_dir = tmp_path / f".metrics.{host}-{dead}.x_y12345.tmp"
    running = tmp_path / f".train.json.{host}-{os.getpid()}.live1234.tmp"  # a writer still at work
    elsewhere = tmp_path / f".train.json.other-node-{dead}.abcd1234.tmp"  # another host's (shared file system)
    other_target = tmp_path / f".other.json.{host}-{dead}.abcd1234.tmp"
    for path in (killed_file, running, elsewhere, other_target):
        path.write_text("half")
    (killed_dir / "sub").mkdir(parents=True)
    assert all(is_leftover(p) for p in (killed_file, killed_dir / "sub", elsewhere))
    assert not is_leftover(running)  # a write in progress
    for name in ("train.json", ".gitignore", ".notes.backup12.tmp"):  # a user's file that only looks like one
        assert not is_leftover(tmp_path / name)
    huge = tmp_path / f".train.json.{host}-99999999999999999999999.abcd1234.tmp"  # no process id at all
    huge.write_text("half")

    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    with atomic_dir(folder) as tmp:
        (tmp / "a.json").write_text("{}")
    assert not killed_file.exists() and not killed_dir.exists() and not huge.exists()
    assert running.exists() and elsewhere.exists() and other_target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [running.name, elsewhere.name, other_target.name, "train.json", "metrics"])


def test_replacing_a_folder_leaves_a_users_dot_old_folder_alone(tmp_path):
    """atomic_dir moved the folder it replaces to `.<name>.old`, deleting whatever a user kept under that name:
    the old folder now moves aside under a temp name of its own, and nothing beside it is touched."""
    from replab.io import atomic_dir

    folder, mine = tmp_path / "keep", tmp_path / ".keep.old"
    (folder / "a.json").parent.mkdir()
    (folder / "a.json").write_text("old")
    mine.mkdir()
    (mine / "precious").write_text("mine")
    with atomic_dir(folder) as tmp:
        (tmp / "b.json").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["b.json"] and (mine / "precious").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep.old", "keep"]


def test_dvc_ignores_a_killed_writers_leftovers(tmp_path):
    """A `replab prepare` killed mid-write left `.rt_snippets.<host>-<pid>.<8>.tmp/` in data/processed, and
    `dvc status` called check_data (which depends on all of data/processed) changed until the next prepare:
    .dvcignore covers the temp names `atomic_path` and `atomic_dir` give, nothing else."""
    import shutil
    import subprocess

    from conftest import REPO
    from replab.io import _temp_prefix

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / ".dvcignore", repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=repo, check=True)
    temp = [f"data/processed/{_temp_prefix(Path('rt_snippets'))}ab_cd123.tmp/train.npz",
            f"models/aae_ssl/{_temp_prefix(Path('train.json'))}abcd1234.tmp.json", "data/raw/.DS_Store"]
    kept = ["data/processed/rt_snippets/train.npz", "data/processed/.notes", "models/aae_ssl/tmp.json"]
    for path in temp + kept:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("x")
    for path in temp + kept:
        ignored = subprocess.run(["dvc", "check-ignore", "-q", path], cwd=repo).returncode == 0
        assert ignored is (path in temp), path


def test_sweep_names_leftovers_of_a_killed_write_as_such(tmp_path, monkeypatch):
    from replab import compare
    from replab.io import DataError

    monkeypatch.setattr(compare, "unseen_paths", lambda cwd, committed: [
        "metrics/.autoencoder.node7-4242.gpz4q7j7.tmp/simple-0.json", "notes.txt"])
    with pytest.raises(DataError) as err:
        compare.check_clean()
    assert str(err.value) == ("sweep: leftovers of a killed write (or of one on another host): metrics/.autoencoder."
                              "node7-4242.gpz4q7j7.tmp/simple-0.json (delete them; on this host the next write of the "
                              "same file also removes them)")


def test_write_torch_gives_the_same_bytes_for_the_same_object(tmp_path):
    """torch.save given a path names the archive after it: written through atomic_path's random temporary name,
    equal weights had different bytes (a new md5 in dvc.lock, downstream stages rerun) on every run."""
    from replab.io import write_torch

    state = {"weight": torch.arange(6.0).reshape(2, 3), "config": {"hidden": 3}}
    write_torch(tmp_path / "a" / "model.pt", state)
    write_torch(tmp_path / "b" / "model.pt", state)
    write_torch(tmp_path / "other.pt", state)
    first = (tmp_path / "a" / "model.pt").read_bytes()
    assert first == (tmp_path / "b" / "model.pt").read_bytes() == (tmp_path / "other.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "other.pt")["weight"], state["weight"])


def test_write_torch_gives_equal_values_equal_bytes_however_they_were_built(tmp_path):
    """A resumed censor run's model.pt held the uninterrupted run's weights in other bytes (another DVC hash): its
    snapshot list mixed state-dict keys unpickled from the checkpoint with fresh ones, and pickle writes an object
    it has seen as a reference. Equal strings, shared containers and views are all written as their values."""
    from replab.io import write_torch

    def snapshot(module):
        return {"encoder": {k: v.detach().clone() for k, v in module.state_dict().items()}}

    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    uninterrupted = [snapshot(module), snapshot(module)]
    write_torch(tmp_path / "checkpoint.pt", [snapshot(module)])
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True) + [snapshot(module)]
    write_torch(tmp_path / "a.pt", {"checkpoints": uninterrupted})
    write_torch(tmp_path / "b.pt", {"checkpoints": resumed})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()

    # one dict object twice against two equal dicts; a view into a larger tensor against the tensor itself
    config, big = {"hidden": "five hundred"}, torch.arange(10.0)
    write_torch(tmp_path / "c.pt", {"a": config, "b": config, "w": big[2:5]})
    write_torch(tmp_path / "d.pt", {"a": {"hidden": "five " + "hundred"}, "b": dict(config),
                                    "w": torch.arange(2.0, 5.0)})
    assert (tmp_path / "c.pt").read_bytes() == (tmp_path / "d.pt").read_bytes()

    # a state_dict keeps its type and _metadata, and loads as before
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)["checkpoints"][1]["encoder"]
    assert torch.equal(loaded["0.weight"], module[0].weight)
    state = module.state_dict()
    write_torch(tmp_path / "state.pt", state)
    again = torch.load(tmp_path / "state.pt", weights_only=True)
    assert type(again) is type(state) and again._metadata == state._metadata
    module.load_state_dict(again)


def test_number_text_is_short_and_reads_back_as_the_same_float():
    from replab.io import number_text

    assert [number_text(x) for x in (1.0, 4, 0.5, 1e-5, 5.0, 2.5e30)] == ["1", "4", "0.5", "1e-05", "5", "2.5e+30"]
    # `:g` keeps 6 significant digits: these gave one name for two values
    assert [number_text(x) for x in (1.0000001, 1.0000001e-7, 123456.7)] == ["1.0000001", "1.0000001e-07", "123456.7"]
    values = [1.0, 1.0000001, 1 + 2 ** -52, 0.1, 0.1 + 2 ** -56, 1e-300, 1.0000000000000002e-300]
    assert len({number_text(v) for v in values}) == len(values)
    assert all(float(number_text(v)) == v for v in values)


@pytest.mark.parametrize("writer", ["atomic_path", "atomic_dir"])
def test_a_sigterm_mid_write_leaves_the_target_and_no_temp(tmp_path, writer):
    """`replab compose` stopped by SIGTERM left an empty `.params.yaml.*.tmp.yaml` (and a stage stopped by a job
    runner its temp folder) until the next write: SIGTERM now leaves through the writer's cleanup, exit status 143."""
    import os
    import signal

    from replab import io

    target = tmp_path / ("params.yaml" if writer == "atomic_path" else "model")
    (target.write_text("old") if writer == "atomic_path" else target.mkdir())
    with pytest.raises(SystemExit) as err:
        with getattr(io, writer)(target) as tmp:
            (tmp.write_text("half") if writer == "atomic_path" else (tmp / "model.pt").write_text("half"))
            os.kill(os.getpid(), signal.SIGTERM)
    assert err.value.code == 143 and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target.read_text() == "old") if writer == "atomic_path" else not any(target.iterdir())


def test_first_non_finite_names_the_first_bad_tensor_depth_first_and_reads_once_per_device():
    """Python floats (an initial best of inf) and integer tensors are not checked; complex ones are. The flags of a
    device's tensors are read together: on a GPU each read is a sync, and censor's checkpoint holds 16 tensors."""
    state = {"best": float("inf"), "step": torch.tensor([3]),
             "encoder": {"w": torch.ones(2, 2), "b": torch.tensor([1.0, float("nan")])},
             "history": [torch.zeros(3), torch.tensor([float("-inf")])], "z": torch.tensor([1 + 0j])}
    with HostReadCounter() as counter:
        place, tensor = first_non_finite(state, "state")
    assert place == "state.encoder.b" and tensor is state["encoder"]["b"]
    assert counter.reads == 1
    state["encoder"]["b"] = torch.ones(2)
    assert first_non_finite(state)[0] == "history.1"
    state["history"][1] = torch.zeros(1)
    assert first_non_finite(state) is None
    state["z"] = torch.tensor([complex(0, float("inf"))])
    assert first_non_finite(state)[0] == "z"
    with HostReadCounter() as counter:
        assert first_non_finite({f"w{i}": torch.ones(4) for i in range(16)}) is None
    assert counter.reads == 1
    assert first_non_finite({"best": float("nan"), "n": [1, 2]}) is None


@pytest.mark.parametrize("failing", [1, 2], ids=["moving the old folder aside", "moving the new one in"])
def test_a_failed_folder_swap_leaves_the_old_folder_in_place_and_no_temp_folder(tmp_path, monkeypatch, failing):
    """A folder that refuses the rename (an immutable folder: EPERM) left an empty `.model.….tmp.old` beside it;
    failing the second rename would have left the old folder under that temp name and none at its own."""
    import errno
    import os

    from replab.io import atomic_dir

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pt").write_text("old")
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == failing:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))
        return real_replace(src, dst)

    real_replace = os.replace
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PermissionError), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.pt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (tmp_path / "model" / "model.pt").read_text() == "old"


def test_a_write_the_file_system_refuses_is_one_line_naming_the_path_and_other_os_errors_still_raise(
        in_tmp, monkeypatch, capsys):
    import errno

    import yaml

    from conftest import compose
    from replab import cli
    from replab.io import unwritable

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    denied = PermissionError(errno.EPERM, "Operation not permitted", "models/autoencoder/simple-0", None,
                             "models/autoencoder/.simple-0.x.tmp.old")

    def refuse(args):
        raise denied

    monkeypatch.setattr(cli, "_check", refuse)
    assert cli.main(["check"]) == 2
    assert capsys.readouterr().err == (
        "error: models/autoencoder/simple-0 -> models/autoencoder/.simple-0.x.tmp.old: not permitted (an immutable or "
        "protected file?) (Operation not permitted); replab must write there (check the folder's permissions and "
        "free space)\n")
    assert unwritable(OSError(errno.ENOSPC, "No space left on device", "metrics/x.json")) == (
        "metrics/x.json: no space left on the device (No space left on device); replab must write there (check the "
        "folder's permissions and free space)")
    assert unwritable(PermissionError(errno.EPERM, "Operation not permitted")) is None  # os.kill's: no path

    def missing(args):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "a bug's path")

    monkeypatch.setattr(cli, "_check", missing)
    with pytest.raises(FileNotFoundError):
        cli.main(["check"])


def test_train_refuses_a_folder_it_cannot_write_before_any_work(in_tmp, monkeypatch, capsys):
    """DVCLive emptied an immutable curves folder's TSVs and then failed on its metrics.json with a traceback,
    leaving the curves half-cleared. Now every folder training writes (the model's, the curves' and those inside
    it, the checkpoints') is tried first; a nearest existing parent stands for one not made yet."""
    import yaml

    from conftest import compose
    from replab import io as rio
    from replab.cli import main

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    tsv = in_tmp / "plots/autoencoder/curves/simple-0/plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tloss\n0\t0.5\n")
    real = rio.not_writable

    def not_writable(folder):
        return f"{folder} is not writable (Operation not permitted)" if Path(folder).name == "metrics" else real(folder)

    monkeypatch.setattr(rio, "not_writable", not_writable)
    monkeypatch.setattr("replab.papers.autoencoder.train", lambda *a: pytest.fail("trained"))
    assert main(["train", "autoencoder", "simple-0", "model=simple", "seed=0"]) == 2
    assert capsys.readouterr().err == (
        "error: plots/autoencoder/curves/simple-0/plots/metrics is not writable (Operation not permitted): train "
        "autoencoder simple-0 writes there (check the folder's permissions)\n")
    assert tsv.read_text() == "step\tloss\n0\t0.5\n"
    monkeypatch.setattr(rio, "not_writable", real)
    rio.require_writable("models/autoencoder/simple-0", "checkpoints/autoencoder/simple-0", what="train")
    assert not (in_tmp / "models").exists() and not (in_tmp / "checkpoints").exists()


def test_a_key_given_twice_in_a_json_object_is_a_data_error(tmp_path):
    """json keeps the last of two equal keys in silence: a hand-edited metrics file's second "test_error" replaced
    the first. Nested objects are checked too; equal keys in different objects are fine."""
    (tmp_path / "m.json").write_text('{"a": {"x": 1}, "b": {"x": 2}}')
    assert read_json(tmp_path / "m.json") == {"a": {"x": 1}, "b": {"x": 2}}
    for text in ('{"test_error": 99.0, "test_error": 1.0}', '{"run": {"seed": 0, "lr": 1, "seed": 1}}'):
        (tmp_path / "m.json").write_text(text)
        with pytest.raises(DataError) as err:
            read_json(tmp_path / "m.json", stage="eval_aae_ssl")
        assert "appears twice in one object" in one_line_naming(err, str(tmp_path / "m.json"))
        assert str(err.value).endswith("run `dvc repro -s -f eval_aae_ssl`")
