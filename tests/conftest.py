"""Shared fixtures: the repository root and a composed params dict for any profile."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
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


def load(out: Path, split: str) -> dict:
    """One split of a processed data set (`<out>/<split>.npz`)."""
    from replab.io import read_npz

    return read_npz(out / f"{split}.npz")


def sh(cwd: Path, *cmd: str, check: bool = True):
    """Run a command in `cwd`; with `check`, a failure is an AssertionError carrying its output."""
    import subprocess

    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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


@pytest.fixture(scope="session")
def smoke_baseline(tmp_path_factory) -> Path:
    """`smoke_clone` after its one `dvc repro` (results not committed), made once per session and shared by the
    end-to-end tests that start from the smoke profile's results. Read-only by convention: a test that changes
    anything works on its own `copy_repo` of it. Under pytest-xdist every worker gets the same one: the first
    to ask builds it in the run's shared temporary directory under a file lock (pytest-xdist's recipe for
    session fixtures), the others wait for it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # a plain `pytest` process (no -n)
        return smoke_clone(tmp_path_factory.mktemp("smoke-baseline"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "smoke-baseline"
    done, failed = shared.with_name("smoke-baseline.done"), shared.with_name("smoke-baseline.failed")
    with FileLock(f"{shared}.lock"):
        if failed.exists():  # one failure is enough: the other workers report it instead of building again
            pytest.fail(f"the smoke baseline failed to build in another worker:\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            try:
                smoke_clone(shared)
            except BaseException as err:
                failed.write_text(str(err))
                raise
            done.touch()
    return shared


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU this process may use (SLURM allocation, affinity mask), not per core of the
    host as pytest-xdist counts them."""
    from replab.runtime import available_cpus

    return available_cpus()
