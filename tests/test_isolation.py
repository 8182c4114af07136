"""A stage runs the code of the copy it runs in: `dvc exp run --queue` / `--temp` experiments never import the
workspace's (editable-installed) code; the `replab` console script re-executes on the enclosing repository's
code; `replab sweep` refuses to queue while untracked files exist that the queued runs would not see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compose, sh, smoke_clone, stop_queue

PROBE = "import pathlib; pathlib.Path({marker!r}).write_text(__file__)\n"


def plant_probe(package: Path, marker: Path) -> None:
    """Make `import replab` from `package` (src/replab) import a new, untracked module that writes `marker`."""
    (package / "_probe.py").write_text(PROBE.format(marker=str(marker)))
    init = package / "__init__.py"
    init.write_text(init.read_text() + "\nfrom replab import _probe  # noqa: E402,F401\n")


# ---------------------------------------------------------------- fast: the console script in a copy


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A replab checkout (`.dvc/` + `src/replab/`) other than the one the environment has installed."""
    root = tmp_path / "checkout"
    (root / ".dvc").mkdir(parents=True)
    shutil.copytree(REPO / "src" / "replab", root / "src" / "replab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize("launcher", [["replab"], [sys.executable, "-m", "replab"]], ids=["script", "module"])
def test_replab_in_another_checkout_runs_that_checkouts_code(checkout, tmp_path, launcher):
    marker = tmp_path / "ran"
    plant_probe(checkout / "src" / "replab", marker)
    (checkout / "conf").mkdir()
    result = sh(checkout / "conf", *launcher, "--help")  # from a subdirectory: the DVC root is found upwards
    assert result.stdout.startswith("usage: replab")
    assert Path(marker.read_text()).resolve() == (checkout / "src/replab/_probe.py").resolve()
    assert result.stderr == ""


def test_stage_entry_point_imports_its_own_src(checkout, tmp_path):
    marker = tmp_path / "ran"
    plant_probe(checkout / "src" / "replab", marker)
    result = sh(checkout, sys.executable, "src/replab", "--help")
    assert result.stdout.startswith("usage: replab") and result.stderr == ""
    assert Path(marker.read_text()).resolve() == (checkout / "src/replab/_probe.py").resolve()


def test_every_stage_calls_the_code_beside_it():
    """The convention new stages follow: `python src/replab <command>`, never the installed `replab`."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    commands = {name: (stage.get("do") or stage)["cmd"] for name, stage in stages.items()}
    assert commands and {n: c for n, c in commands.items() if not c.startswith("python src/replab ")} == {}


def test_replab_in_its_own_checkout_does_not_reexecute(tmp_path):
    result = sh(REPO, "replab", "--help")
    assert result.stdout.startswith("usage: replab") and result.stderr == ""


def test_code_that_stays_foreign_after_reexecution_fails_in_one_line(checkout, monkeypatch):
    monkeypatch.setenv("REPLAB_REEXEC", str((checkout / "src/replab").resolve()))
    result = sh(checkout, "replab", "--help", check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: replab: this repository's code is {(checkout / 'src/replab').resolve()}, but "
        f"{REPO / 'src' / 'replab'} is imported (check PYTHONPATH); run `python src/replab …` instead"]


# ---------------------------------------------------------------- fast: sweep and untracked files


@pytest.fixture
def sweep_repo(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A committed Git repo with the smoke params, and a stand-in `dvc` on PATH that records its arguments."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    (repo / ".gitignore").write_text("/ignored/\n")
    for name, value in (("NAME", "test"), ("EMAIL", "test@example.com")):
        for role in ("AUTHOR", "COMMITTER"):
            monkeypatch.setenv(f"GIT_{role}_{name}", value)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "params"]):
        sh(repo, *cmd)
    calls = tmp_path / "dvc-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dvc"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\necho \"Queued experiment 'exp-$$' for future execution.\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(repo)
    return repo, calls


def test_sweep_refuses_untracked_files_and_names_them(sweep_repo, capsys):
    from replab.cli import main

    repo, calls = sweep_repo
    (repo / "src").mkdir()
    (repo / "src" / "new_module.py").write_text("x = 1\n")
    (repo / "notes.txt").write_text("draft\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big.bin").write_text("ignored by Git: not a change\n")
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")  # tracked: the run sees it
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: sweep: queued runs would not see these untracked files: notes.txt, src/new_module.py "
                   "(`git add` or commit them, or rerun with --allow-dirty)"]
    assert not calls.exists()  # nothing queued

    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--allow-dirty"]) == 0
    assert len(calls.read_text().splitlines()) == 2
    # the tracked change travels with every run: said, not refused (a previous run's dvc.lock reran its stages)
    assert capsys.readouterr().err == ("note: each queued run starts from HEAD plus the workspace's uncommitted "
                                       "changes to params.yaml (commit them, or `git stash` to run HEAD as it is)\n")

    sh(repo, "git", "add", "notes.txt", "src/new_module.py")  # staged files travel with the queued runs
    assert main(["sweep", "aae_ssl", "lambda_rec=3"]) == 0
    assert calls.read_text().splitlines()[-1].startswith("exp run --queue -S profile=smoke -S aae_ssl.lambda_rec=3")


def test_sweep_lists_a_few_untracked_files_and_counts_the_rest(sweep_repo, capsys):
    from replab.cli import main

    repo, calls = sweep_repo
    for i in range(11):
        (repo / f"f{i:02d}.txt").write_text("x\n")
    assert main(["sweep", "aae_ssl", "lambda_rec=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "f00.txt, f01.txt" in err and "f07.txt and 3 more (" in err and "f08.txt" not in err
    assert not calls.exists()


# ---------------------------------------------------------------- slow: queued and temporary experiments


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The project in a fresh committed Git repo (smoke profile), nothing run yet. Its `src/` is what this
    environment imports for `replab` (PYTHONPATH, set while the module runs), as `pip install -e .` in a user's
    clone makes it: the workspace whose code a queued run must not import."""
    root = tmp_path_factory.mktemp("iso")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(root / "src"))
        smoke_clone(root, repro=False)
        imported = sh(root, sys.executable, "-c", "import replab; print(replab.__file__)").stdout.strip()
        assert imported == str(root / "src/replab/__init__.py")
        yield root


def experiment_rev(repo: Path, name: str) -> str:
    return next(r["rev"] for c in json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
                for e in c.get("experiments") or [] for r in e["revs"] if r.get("name") == name)


def experiment_files(repo: Path, name: str) -> list[str]:
    """Files of the experiment's commit (what `dvc exp show`/`apply` records for it)."""
    return sh(repo, "git", "ls-tree", "-r", "--name-only", experiment_rev(repo, name)).stdout.split()


def show_at(repo: Path, name: str, path: str) -> str:
    return sh(repo, "git", "show", f"{experiment_rev(repo, name)}:{path}").stdout


def wait_done(repo: Path, name: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in sh(repo, "dvc", "queue", "status").stdout.splitlines():
            parts = line.split()
            if parts[1:2] == [name] and parts[-1] in ("Success", "Failed"):
                return parts[-1]
        time.sleep(3)
    raise AssertionError(f"{name}: not done after {timeout} s:\n{sh(repo, 'dvc', 'queue', 'status').stdout}")


@pytest.mark.slow
def test_queued_experiment_runs_the_code_it_was_queued_with(project, tmp_path):
    """Queue one cheap stage, then edit a workspace module and add an untracked one (their import would write
    a marker), then start the queue: the experiment succeeds without ever importing the workspace's code."""
    marker = tmp_path / "workspace-code-ran"
    sh(project, "dvc", "exp", "run", "--queue", "-n", "iso", "download@mnist5k")
    plant_probe(project / "src" / "replab", marker)
    try:
        sh(project, "dvc", "queue", "start", "-j", "1", detached=True)
        state = wait_done(project, "iso")
        logs = sh(project, "dvc", "queue", "logs", "iso", check=False)
        assert state == "Success", logs.stdout + logs.stderr
        assert "Running stage 'download@mnist5k'" in logs.stdout
        assert not marker.exists(), f"the queued experiment imported {marker.read_text()}"
        assert "src/replab/_probe.py" not in experiment_files(project, "iso")
        assert "_probe" not in show_at(project, "iso", "src/replab/__init__.py")  # the code that ran
    finally:
        stop_queue(project)
        sh(project, "git", "checkout", "--", "src/replab/__init__.py")
        (project / "src/replab/_probe.py").unlink()


@pytest.mark.slow
def test_temporary_experiment_runs_its_copys_code(project, tmp_path):
    """`--temp` copies the commit plus tracked changes, not untracked files: the edited __init__.py travels and
    must fail to find the untracked probe there (ImportError), rather than silently import the workspace's."""
    marker = tmp_path / "workspace-code-ran"
    (project / "src/replab/_probe.py").write_text(PROBE.format(marker=str(marker)))
    init = project / "src/replab/__init__.py"
    init.write_text(init.read_text() + "\ntry:\n    from replab import _probe  # noqa: F401\nexcept ImportError:\n"
                    "    pass\n")
    try:
        result = sh(project, "dvc", "exp", "run", "--temp", "-n", "iso-temp", "download@har", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Running stage 'download@har'" in result.stdout
        assert not marker.exists(), f"the temporary experiment imported {marker.read_text()}"
        assert "src/replab/_probe.py" not in experiment_files(project, "iso-temp")
        assert "from replab import _probe" in show_at(project, "iso-temp", "src/replab/__init__.py")
    finally:
        sh(project, "git", "checkout", "--", "src/replab/__init__.py")
        (project / "src/replab/_probe.py").unlink()


def test_a_dry_run_notes_the_untracked_files_a_real_run_would_stop_at(sweep_repo, capsys):
    from replab.cli import main

    repo, calls = sweep_repo
    (repo / "plots-out").mkdir()
    (repo / "plots-out" / "index.html").write_text("<html>\n")
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 2 and not calls.exists()
    assert out.err == ("note: a real run would stop here: sweep: queued runs would not see these untracked files: "
                       "plots-out/index.html (`git add` or commit them, or rerun with --allow-dirty)\n")
    (repo / "plots-out" / "index.html").unlink()
    (repo / ".gitignore").write_text((REPO / ".gitignore").read_text())
    sh(repo, "git", "commit", "-qam", "the repository's .gitignore")
    for written in ("plots-diff/index.html", "compare.csv", "bench-paper.json"):  # README's example outputs
        (repo / written).parent.mkdir(exist_ok=True)
        (repo / written).write_text("x\n")
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("marker", ["folder", "/proc/nope/x"], ids=["a-directory", "under-proc"])
def test_check_refuses_an_unwritable_marker_in_one_line(tmp_path, monkeypatch, capsys, marker):
    from replab.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    assert main(["check", "--marker", marker]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: check --marker {marker}: ") and err.count("\n") == 1, err
    assert "(give a file path to write to)" in err and list(tmp_path.iterdir()) == [tmp_path / "folder"]


@pytest.mark.parametrize("key, assignments, expected", [
    ("cnn-x", ["seed=0"], "(seed=0 give cnn-0)"),  # a special key with a prefix: the full key expected
    ("fig2-x-0", ["dataset=rt", "seed=0"], "(dataset=rt seed=0 give fig2-rt-0)"),
    ("x", ["dataset=rt", "seed=0"], "(dataset=rt seed=0 give rt-0)"),
    ("a-b-c-d", ["dataset=rt", "seed=0"], "(dataset=rt seed=0 give a-b-rt-0)"),
    ("junk-c-d", ["dataset=rt", "seed=0"], "(dataset=rt seed=0 give rt-0)"),  # a prefix not declared is dropped
])
def test_a_variant_key_that_does_not_match_its_axes_names_the_expected_key(key, assignments, expected):
    from types import SimpleNamespace

    from replab.papers import parse_variant
    from replab.params import ParamError

    cfg, axes = SimpleNamespace(datasets=["rt"], seeds=[0, 1]), {"dataset": "datasets", "seed": "seeds"}
    if len(assignments) == 1:
        axes = {"seed": "seeds"}
    prefixes = ("cnn", "fig2", "a-b")
    with pytest.raises(ParamError) as err:
        parse_variant("p", key, assignments, cfg, axes, prefixes=prefixes)
    assert str(err.value) == f"p variant {key}: the key does not match its axes {expected}"
    assert parse_variant("p", expected.rsplit(" ", 1)[1][:-1], assignments, cfg, axes, prefixes=prefixes
                         ).axes["seed"] == 0


@pytest.mark.parametrize("argv", [["curves", "autoencoder"], ["compare", "autoencoder", "workspace"],
                                  ["sweep", "autoencoder", "lr=0.1,0.2", "--dry-run"], ["check"]])
def test_a_command_in_a_subdirectory_of_the_project_names_the_root(argv, tmp_path, monkeypatch, capsys):
    """From metrics/, `replab curves` said no curves existed, `replab compare` that metrics/<paper>.json was missing
    and `replab sweep` printed a bare `[Errno 2] … 'params.yaml'`: every path is relative to the repository root."""
    from replab.cli import main

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "metrics").mkdir()
    monkeypatch.chdir(tmp_path / "metrics")
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"error: replab {argv[0]}: run from the repository root, {tmp_path.resolve()} "
                                       f"(not {tmp_path / 'metrics'}): the paths it reads and writes are relative "
                                       "to it\n")
    monkeypatch.chdir(tmp_path)  # at the root the command goes on to its own checks
    main(argv)
    assert "run from the repository root, " not in capsys.readouterr().err
