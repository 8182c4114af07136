"""Shared fixtures: the repository root and a composed params dict for any profile."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import threading
from pathlib import Path

import dvc.logger  # noqa: F401  (see below)
import pytest
import yaml

# Importing dvc binds its log handlers to the sys.stdout/stderr of that moment (and colorama wraps them). Imported
# first inside a test that captures output (capsys), they would keep that test's streams, closed afterwards, and
# the next DVC log line in another test fails ("I/O operation on closed file"). Imported here, they bind to the
# session's capture streams, which stay open.

# pytest-xdist runs one worker per CPU, and most end-to-end tests start DVC stages that run torch with one thread
# per CPU (runtime.threads: 0): two such processes on two cores. GNU OpenMP's barriers (PyTorch's, MKL's and
# oneDNN's thread pools in the PyPI wheels) spin while a sibling thread is descheduled, burning the core the other
# process needs: two smoke-profile `dvc repro -f` side by side on 2 cores took 588 s each, against 141 s with
# passive waits (one alone: 134 s spinning, 128 s passive). Set before torch is imported anywhere in the session;
# stages, DVC and the queue's workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


def compose(*overrides: str) -> dict:
    """Compose conf/ exactly as `dvc exp run -S ...` does (DVC's own Hydra helper)."""
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(REPO / "conf"), None, "config", "", list(overrides))
        return yaml.safe_load(out.read_text())


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def _offline_env():
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(served directory, base URL) of a loopback HTTP server (the stand-in for a dataset host)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class CutHandler(QuietHandler):
    """Serves the files named in `cut` as a dropped connection does: status 200, the first half of the body, then
    the connection closed; cut[name] = True announces the whole file's Content-Length, False none (so only the
    file's own format can tell). Other files are served whole."""

    cut: dict[str, bool] = {}

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.cut:
            return super().do_GET()
        data = (Path(self.directory) / name).read_bytes()
        self.send_response(200)
        if self.cut[name]:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


@pytest.fixture
def cut_server(tmp_path, monkeypatch):
    """(served directory, base URL, cut) of a loopback HTTP server that cuts the transfers of the files named in
    `cut` (a dict the test fills, see CutHandler)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "cut-srv"
    root.mkdir()
    cut: dict[str, bool] = {}
    handler = type("Cut", (CutHandler,), {"cut": cut})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", cut
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: what an unreachable dataset host looks like."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def network_attempts(monkeypatch):
    """Records every HTTP attempt of the downloader (`urls`, one entry per request pooch makes) and every
    back-off sleep (`sleeps`, seconds asked for; none is slept). "Fails fast" is asserted by counting these:
    one attempt per unreachable URL and no sleep, not by the clock."""
    import time
    from types import SimpleNamespace

    import pooch

    record = SimpleNamespace(urls=[], sleeps=[])
    real = pooch.HTTPDownloader.__call__

    def call(self, url, output_file, pooch_obj, check_only=False):
        record.urls.append(url)
        return real(self, url, output_file, pooch_obj, check_only=check_only)

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", call)
    monkeypatch.setattr(time, "sleep", record.sleeps.append)
    return record


def run_variants(module, cfg, variants) -> dict:
    """Train and evaluate each `replab.cli.Variant` in-process (single thread, no progress bars);
    returns {key: metrics}."""
    from replab.io import read_json
    from replab.params import Runtime

    runtime = Runtime(progress=False, threads=1)
    for variant in variants:
        module.train(cfg, runtime, variant)
        module.evaluate(cfg, runtime, variant)
    return {v.key: read_json(v.metrics_path) for v in variants}


def without_timing(metrics: dict) -> dict:
    """Per-variant metrics without the wall-clock fields, which differ between identical runs."""
    out = json.loads(json.dumps(metrics))
    for record in out.values():
        record["run"].pop("seconds"), record["run"].pop("samples_per_s")
    return out


def one_line_naming(err: pytest.ExceptionInfo, name: str) -> str:
    """The message of a raised error, asserted to be one line that names `name` (a file or a param key)."""
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg
    return msg


def zip_claiming(path: Path, flag: int | None = None, method: int | None = None, version: int | None = None) -> Path:
    """Rewrite the zip `path` in place so that every header claims general-purpose `flag` bits (1: encrypted: a
    RuntimeError on read), compression `method` (99: AES, which zipfile does not implement: NotImplementedError)
    or the central directory's `version` needed to extract (99: "zip file version 9.9", NotImplementedError on
    open); None leaves a field as written."""
    raw = bytearray(path.read_bytes())
    for signature, at in ((b"PK\x03\x04", 4), (b"PK\x01\x02", 6)):  # local headers, central directory entries
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            for offset, value in ((2, flag), (4, method), (0, version if signature == b"PK\x01\x02" else None)):
                if value is not None:
                    raw[start + at + offset:start + at + offset + 2] = value.to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(raw))
    return path


def load(out: Path, split: str) -> dict:
    """One split of a processed data set (`<out>/<split>.npz`)."""
    from replab.io import read_npz

    return read_npz(out / f"{split}.npz")


def sh(cwd: Path, *cmd: str, check: bool = True, detached: bool = False):
    """Run a command in `cwd`; with `check`, a failure is an AssertionError carrying its output. `detached`: for a
    command that leaves processes running (`dvc queue start`'s workers), through `replab.compare.run_detached`
    (no pipes for the workers to hold open)."""
    import subprocess

    from replab.compare import run_detached

    if detached:
        result = run_detached(cmd, cwd=cwd)
    else:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stop_queue(repo: Path) -> None:
    """`dvc queue stop --kill`, then `kill_queue_workers`."""
    sh(repo, "dvc", "queue", "stop", "--kill", check=False)
    kill_queue_workers(repo)


def kill_queue_workers(repo: Path, wait: float = 30.0) -> None:
    """After `dvc queue stop`: wait up to `wait` s for this repo's DVC queue workers (by pid file) to end, then
    SIGKILL those left. A worker can hang after its queue is empty (treeverse/dvc#10398) and would outlive the test;
    only a process whose command line is still a DVC queue worker is killed (a pid file can outlive its process,
    and the pid be reused)."""
    import time

    def alive(pid: int) -> bool:
        try:
            return b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    pids = []
    for pid_file in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.pid"):
        with contextlib.suppress(ValueError, OSError, IndexError):
            pids.append(int(pid_file.read_text().split()[0]))
    deadline = time.monotonic() + wait
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def isolated_env(home: Path) -> dict[str, str]:
    """Environment values that keep git and dvc subprocesses off the user's and the system's config: an empty
    global Git config and DVC's config/site directories under `home`, a fixed Git identity, no analytics."""
    (home / "gitconfig").write_text("")
    return {
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"), "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site"), "DVC_NO_ANALYTICS": "1", "MPLBACKEND": "Agg",
    }


def smoke_clone(root: Path, repro: bool = True, overrides: tuple[str, ...] = ()) -> Path:
    """The project's files (tracked and untracked, not ignored; no results) in a fresh git repo under `root`,
    params composed with the smoke profile (and `overrides`), committed (DVCLive needs a commit), then
    `dvc repro` once."""
    import subprocess

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(("metrics/", "plots/", "dvc.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "git", "config", "user.email", "test@example.com")
    sh(root, "git", "config", "user.name", "test")
    sh(root, "replab", "compose", "profile=smoke", "runtime.progress=false", *overrides)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "smoke")
    if repro:
        sh(root, "dvc", "repro")
    return root


def copy_repo(src: Path, dst: Path) -> Path:
    """A full copy of a repository at `dst`: working tree, Git history, DVC cache and run cache (symlinks kept).
    DVC rehashes the copy's outputs on its first command; nothing in it points back at `src`."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


# The smoke baseline: one `dvc repro` of the smoke profile (33 stages, about 140 s of one core), shared by the
# end-to-end tests. It is built in the background from the session's start, while the workers run the other
# files, and those end-to-end files run last, heaviest first (seconds of one worker on a 2-core machine in
# brackets, summed `--durations` of an idle run on a machine at 67–70 GFLOP/s of matmul), so that no worker sits
# waiting for the baseline and the longest files do not start last.
BASELINE_FILES_HEAVIEST_FIRST = ("test_sharing.py",  # (495: a queued sweep of 3 experiments, S3 and Git remotes)
                                 "test_resume.py",  # (282: kill and resume a stage of every kind of loop)
                                 "test_slurm.py",  # (199: a 3-point sweep on a one-node SLURM cluster)
                                 "test_pipeline.py",  # (200)
                                 "test_shape.py")  # (10)


def uses_smoke_baseline(item: pytest.Item) -> bool:
    return "smoke_baseline" in getattr(item, "fixturenames", ())


def pytest_configure(config) -> None:
    # pytest-xdist's --dist loadfile would hand out the files in order of their number of tests; keep the order
    # of pytest_collection_modifyitems below
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items: list[pytest.Item]) -> None:
    """Files that use the smoke baseline (or are listed in BASELINE_FILES_HEAVIEST_FIRST) after all others, in
    that list's order (unlisted ones last), each with its slow tests first: pytest-xdist hands a worker its next
    file once at most two of its tests are left to run, so those two are quick ones, and a worker in its last
    long test does not take a file that the other worker, soon idle, would have run. The other files, and the
    order of tests within a group, are kept."""
    rank = {name: i + 1 for i, name in enumerate(BASELINE_FILES_HEAVIEST_FIRST)}
    late = rank.keys() | {item.path.name for item in items if uses_smoke_baseline(item)}

    def key(item: pytest.Item) -> tuple[int, int]:
        if item.path.name not in late:
            return 0, 0
        return rank.get(item.path.name, len(rank) + 1), 0 if item.get_closest_marker("slow") else 1

    items.sort(key=key)


def baseline_repo(tmp_path_factory) -> Path:
    """Where the session's smoke baseline lives: in the run's shared temporary directory (every pytest-xdist
    worker's basetemp is a folder of it)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "smoke-baseline"


def baseline_paths(repo: Path) -> dict[str, Path]:
    """The baseline `repo` and, beside it, its lock, its build log and its done/failed/started markers."""
    return {"repo": repo, **{kind: repo.with_name(f"{repo.name}.{kind}")
                              for kind in ("lock", "log", "done", "failed", "started")}}


def build_smoke_baseline(paths: dict[str, Path]) -> None:
    """`smoke_clone` into paths["repo"] under the lock, once per run: whoever takes the lock first (the background
    builder or a test) builds it, the others find it done (or failed: one failure is reported by every test
    that asks, not built again)."""
    from filelock import FileLock

    with FileLock(paths["lock"]):
        if paths["failed"].exists() or paths["done"].exists():
            return
        shutil.rmtree(paths["repo"], ignore_errors=True)  # a build killed half-way (its session ended first)
        paths["repo"].mkdir()
        try:
            smoke_clone(paths["repo"])
        except BaseException as err:
            paths["failed"].write_text(str(err))
            raise
        paths["done"].touch()


@pytest.fixture(scope="session", autouse=True)
def _smoke_baseline_in_background(request, tmp_path_factory, _offline_env):
    """Starts building the smoke baseline in a background process when the session has tests that use it (the
    first worker to get here does; the others see its `started` marker). At the end of the session that started
    it, a builder still running is stopped: no test is waiting for it then, or one that is takes the lock and
    builds it itself."""
    import subprocess
    import sys

    if not any(uses_smoke_baseline(item) for item in request.session.items):
        yield
        return
    paths = baseline_paths(baseline_repo(tmp_path_factory))
    try:
        with open(paths["started"], "x"):
            pass
    except FileExistsError:
        yield
        return
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import conftest; "
            "conftest.build_smoke_baseline(conftest.baseline_paths(Path(sys.argv[2])))")
    with open(paths["log"], "w") as log:
        builder = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(paths["repo"])],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield
    finally:
        if builder.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # (it may end in between)
                os.killpg(builder.pid, signal.SIGKILL)  # its whole group: dvc repro and the stage it runs
            builder.wait()


@pytest.fixture(scope="session")
def smoke_baseline(tmp_path_factory) -> Path:
    """`smoke_clone` after its one `dvc repro` (results not committed), made once per run and shared by the
    end-to-end tests that start from the smoke profile's results (under pytest-xdist every worker gets the same
    one). Read-only by convention: a test that changes anything works on its own `copy_repo` of it. Usually
    built in the background (`_smoke_baseline_in_background`); this waits for it, or builds it itself."""
    paths = baseline_paths(baseline_repo(tmp_path_factory))
    build_smoke_baseline(paths)
    if paths["failed"].exists():
        pytest.fail(f"the smoke baseline failed to build:\n{paths['failed'].read_text()}")
    return paths["repo"]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without the plugin (a CUDA image) pytest would refuse it
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may use (SLURM allocation, affinity mask), not per core of the
    host as pytest-xdist counts them."""
    from replab.runtime import available_cpus

    return available_cpus()
