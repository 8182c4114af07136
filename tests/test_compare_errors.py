"""`replab compare` on bad input: a malformed or missing metrics/<paper>.json (in the workspace or at a commit) and
NaN / ±inf in it, each one line or a note, never a traceback, a NaN cell or a silent row of –; and `replab sweep
--run`'s start of the DVC queue, which must return while the queue's workers run.

Experiments are commits of a temporary Git repository; `list_experiments` (`dvc exp show`) is replaced by rows
naming them, so no DVC repository is needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import compose, isolated_env
from replab import compare
from replab.cli import main
from replab.io import DataError

SUMMARY = {"test_error": {"100": {"ae": {"mean": 28.95, "std": 0.92, "n": 2},
                                  "aae_yz": {"mean": 23.05, "std": 2.33, "n": 2}}},
           "dataset": "mnist5k", "run": {"devices": "cpu"}}
WORKSPACE = {"name": "workspace", "rev": "workspace", "kind": "workspace", "baseline": None}


@pytest.fixture
def repo(in_tmp, monkeypatch):
    """A Git repository (the current directory) with a smoke params.yaml; `rows` are what `dvc exp show` lists."""
    home = in_tmp.parent / f"{in_tmp.name}-home"
    home.mkdir()
    for key, value in isolated_env(home).items():
        monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q"], check=True)
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    (in_tmp / "metrics").mkdir()
    rows = [WORKSPACE]
    monkeypatch.setattr(compare, "list_experiments", lambda all_commits=False: rows)
    return rows


def commit(name: str, kind: str = "experiment") -> dict:
    """Commit the directory as it is; its row of `dvc exp show`."""
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-qm", name], check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return {"name": name, "rev": rev, "kind": kind, "baseline": rev}


def test_malformed_summary_in_the_workspace_is_one_line_naming_it(repo, capsys):
    """`{bad` ended in a traceback (YAMLSyntaxError from compare.read_at), exit status 1."""
    summary = Path("metrics/aae_ssl.json")
    summary.write_text("{bad")
    assert main(["compare", "aae_ssl", "workspace"]) == 2
    assert capsys.readouterr() == ("", "error: metrics/aae_ssl.json: not valid JSON (Expecting property name enclosed "
                                       "in double quotes at line 1); run `dvc repro -s -f report`\n")
    summary.write_text("[1, 2]")  # valid JSON, but not a summary
    assert main(["compare", "aae_ssl", "workspace"]) == 2
    assert capsys.readouterr().err == ("error: metrics/aae_ssl.json: top level is an array, expected an object; run "
                                       "`dvc repro -s -f report`\n")


def test_malformed_files_at_a_commit_name_the_experiment_and_rev(repo, capsys):
    Path("metrics/aae_ssl.json").write_text("{bad")
    bad = commit("rec-1")
    Path("params.yaml").write_text("aae_ssl: [unclosed\n")
    Path("metrics/aae_ssl.json").write_text(json.dumps(SUMMARY))
    bad_params = commit("rec-2")
    repo += [bad, bad_params]
    assert main(["compare", "aae_ssl", "rec-1"]) == 2
    assert capsys.readouterr() == ("", f"error: metrics/aae_ssl.json at rec-1 ({bad['rev'][:7]}): not valid JSON "
                                       "(Expecting property name enclosed in double quotes at line 1); run "
                                       "`dvc repro -s -f report`\n")
    assert main(["compare", "aae_ssl", "rec-2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: params.yaml at rec-2 ({bad_params['rev'][:7]}): not valid YAML (") and \
        err.count("\n") == 1


def test_nan_and_infinity_in_the_summary_show_as_missing_with_a_note(repo, capsys):
    """compare read the summary as YAML: a NaN mean printed `NaN ± 0.9192`, exit status 0, no word of it."""
    text = json.dumps(SUMMARY).replace('"mean": 28.95', '"mean": NaN').replace('"std": 2.33', '"std": Infinity')
    Path("metrics/aae_ssl.json").write_text(text.replace('"dataset"', '"ratio": -1e999, "dataset"'))
    assert main(["compare", "aae_ssl", "workspace"]) == 0
    out, err = capsys.readouterr()
    assert not re.search(r"nan|inf", out, re.IGNORECASE), out
    row = next(line for line in out.splitlines() if line.startswith("| workspace |"))
    assert row == "| workspace | workspace | smoke | – | 23.05 ± – | – | mnist5k | cpu |"
    assert out.endswith("\n\n- workspace: 3 values missing in metrics/aae_ssl.json (null or not finite there; shown "
                        "as –): test_error.100.ae, test_error.100.aae_yz, ratio\n")
    assert main(["compare", "aae_ssl", "workspace", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "\nworkspace,workspace,smoke,,0.92,23.05,,,mnist5k,cpu\n" in out and not re.search("nan|inf", out, re.I)
    assert err == ("note: workspace: 3 values missing in metrics/aae_ssl.json (null or not finite there; empty "
                   "cells): test_error.100.ae.mean, test_error.100.aae_yz.std, ratio\n")
    assert main(["compare", "aae_ssl", "workspace", "--format", "csv", "--out", "one.csv"]) == 0
    assert capsys.readouterr().err.endswith("wrote one.csv (1 experiment)\n")  # (was "1 experiments")


def test_a_mean_or_std_that_is_not_a_number_shows_as_missing_with_its_own_note(repo, capsys):
    """A hand-edited summary's string mean printed as it was (`lots ± 0.92`), a list as `1; 2 ± 2.33`, no word."""
    summary = json.loads(json.dumps(SUMMARY))
    summary["test_error"]["100"]["ae"]["mean"] = "lots"
    summary["test_error"]["100"]["aae_yz"]["std"] = [1, 2]
    Path("metrics/aae_ssl.json").write_text(json.dumps(summary))
    assert main(["compare", "aae_ssl", "workspace"]) == 0
    out = capsys.readouterr().out
    assert "| workspace | workspace | smoke | – | 23.05 ± – | mnist5k | cpu |" in out and "lots" not in out
    assert out.endswith("\n\n- workspace: 2 mean ± std in metrics/aae_ssl.json not numbers or a negative std (a hand "
                        "edit? the report writes numbers or null there: rerun `dvc repro report`; the damaged values "
                        "not shown): test_error.100.ae, test_error.100.aae_yz\n")
    assert main(["compare", "aae_ssl", "workspace", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "\nworkspace,workspace,smoke,,0.92,23.05,,mnist5k,cpu\n" in out
    assert err.startswith("note: workspace: 2 mean ± std in metrics/aae_ssl.json not numbers") and err.count("\n") == 1

    # a negative std is no spread; an integer mean beyond a float's range (valid JSON) is not finite: missing
    summary["test_error"]["100"]["ae"]["mean"] = 10**400
    summary["test_error"]["100"]["aae_yz"]["std"] = -3.0
    Path("metrics/aae_ssl.json").write_text(json.dumps(summary))
    assert main(["compare", "aae_ssl", "workspace"]) == 0
    out = capsys.readouterr().out
    assert "| workspace | workspace | smoke | – | 23.05 ± – | mnist5k | cpu |" in out and "digits" not in out
    assert "\n- workspace: 1 value missing in metrics/aae_ssl.json (null or not finite there; shown as –): " \
           "test_error.100.ae\n" in out
    assert out.endswith("the damaged values not shown): test_error.100.aae_yz\n")


def test_a_missing_summary_is_noted_under_its_column_or_one_line_when_none_has_one(repo, capsys):
    """A deleted metrics/aae_ssl.json gave a row of – and exit status 0, with nothing saying why."""
    Path("metrics/aae_ssl.json").write_text(json.dumps(SUMMARY))
    repo.insert(0, commit("main", kind="baseline"))
    Path("metrics/aae_ssl.json").unlink()
    assert main(["compare", "aae_ssl", "workspace", "--baseline"]) == 0
    out, err = capsys.readouterr()
    assert "| main |" in out and "| 28.95 ± 0.92 |" in out and err == ""
    assert out.endswith("\n\n- workspace: metrics/aae_ssl.json missing (run `dvc repro report`)\n")
    assert main(["compare", "aae_ssl", "workspace", "--baseline", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "note" not in out and err == "note: workspace: metrics/aae_ssl.json missing (run `dvc repro report`)\n"
    assert main(["compare", "aae_ssl", "workspace"]) == 2
    assert capsys.readouterr() == ("", "error: metrics/aae_ssl.json: missing in every chosen experiment (workspace) "
                                       "(run `dvc repro report`)\n")
    subprocess.run(["git", "rm", "-q", "metrics/aae_ssl.json"], check=True)
    repo.append(commit("rec-1"))  # absent at a commit: named with its rev
    assert main(["compare", "aae_ssl", "rec-1", "--baseline"]) == 0
    assert capsys.readouterr().out.endswith(f"\n\n- rec-1 ({repo[-1]['rev'][:7]}): metrics/aae_ssl.json missing "
                                            "(run `dvc repro report`)\n")
    assert main(["compare", "aae_ssl", "--baseline", "rec-1"]) == 0  # names after an option: "unrecognized
    assert capsys.readouterr().out.endswith(f"\n\n- rec-1 ({repo[-1]['rev'][:7]}): metrics/aae_ssl.json missing "
                                            "(run `dvc repro report`)\n")  # arguments: rec-1", as if not a name


def test_the_baseline_alone_says_there_are_no_experiments_and_how_to_see_the_workspace(repo, capsys):
    """Right after `dvc repro`, `replab compare aae_ssl --baseline` printed HEAD's committed row alone, without a
    word that there were no experiments, and without the checkout's own results."""
    Path("metrics/aae_ssl.json").write_text(json.dumps(SUMMARY))
    repo.insert(0, commit("main", kind="baseline"))
    assert main(["compare", "aae_ssl", "--baseline"]) == 0
    out, err = capsys.readouterr()
    assert "| main |" in out and "| workspace |" not in out and err == ""
    assert out.endswith("\n\n- no experiments of HEAD besides the baseline (run some, or `dvc exp pull <git remote>`); "
                        "the results of `dvc repro` in this checkout: `replab compare aae_ssl workspace HEAD`\n")
    Path("metrics/aae_ssl.json").write_text(json.dumps({**SUMMARY, "dataset": "mnist"}))
    repo.append(commit("rec-1"))
    assert main(["compare", "aae_ssl", "--baseline"]) == 0
    out = capsys.readouterr().out
    assert "| rec-1 |" in out and "no experiments" not in out


@pytest.mark.parametrize("code", [0, 3])
def test_starting_the_queue_returns_while_its_workers_run(tmp_path, monkeypatch, code):
    """`dvc queue start` leaves workers running that inherit its stdout: read through pipes, the call waited for
    them all (sweep --run printed nothing until the whole queue had finished, and --timeout never fired)."""
    import os
    import stat

    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    alive = tmp_path / "worker.pid"
    # a `dvc` that starts a "worker" holding its stdout for 60 s, prints a line and exits with `code`
    fake.write_text(f"#!/bin/sh\n(sleep 60 & echo $! > {alive}; wait) &\necho started workers\nexit {code}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    try:
        if code:
            with pytest.raises(DataError, match=r"^`dvc queue start -j 2` failed: started workers$"):
                compare._dvc("queue", "start", "-j", "2", detached=True)
        else:
            assert compare._dvc("queue", "start", "-j", "2", detached=True).stdout == "started workers\n"
        for _ in range(100):  # the worker writes its pid right after it starts
            if alive.exists() and alive.read_text().strip():
                break
            time.sleep(0.05)
        worker = int(alive.read_text())
        os.kill(worker, 0)  # still running: the call did not wait for it
    finally:
        if alive.exists() and alive.read_text().strip():
            subprocess.run(["kill", alive.read_text().strip()], check=False)


def test_compare_all_commits_says_what_it_reads_before_the_long_wait(in_tmp, monkeypatch, capsys):
    """`replab compare <paper> -A` over 604 commits printed nothing for minutes (busy in `dvc exp show -A`): it says
    first how many commits DVC reads; without -A nothing is said."""
    import os

    env = {**os.environ, **isolated_env(in_tmp)}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "commit", "-q", "--allow-empty", "-m", "one"],
                ["git", "commit", "-q", "--allow-empty", "-m", "two"]):
        subprocess.run(cmd, check=True, env=env)
    calls = []
    monkeypatch.setattr(compare, "_dvc", lambda *args, **kw: calls.append(args) or subprocess.CompletedProcess(
        args, 0, "[]", ""))
    assert compare.list_experiments(all_commits=True) == [] and calls == [("exp", "show", "--json", "-A")]
    assert capsys.readouterr().err == ("compare -A: reading the experiments of 2 commit(s) with `dvc exp show -A` "
                                       "(over hundreds this takes minutes)\n")
    assert compare.list_experiments() == [] and capsys.readouterr().err == ""


def test_a_name_reused_on_two_commits_is_refused_and_the_baseline_is_each_experiments_own():
    """`compare autoencoder sw-1 -A` with an sw-1 on two commits showed one of them without a word; `--baseline`
    put HEAD beside an experiment run on an older commit, so the table's differences were not what it changed."""
    old, head = "a" * 40, "b" * 40
    rows = [WORKSPACE,
            {"name": "main", "rev": head, "kind": "baseline", "baseline": head},
            {"name": "sw-1", "rev": "c" * 40, "kind": "experiment", "baseline": head},
            {"name": "bbbb000", "rev": old, "kind": "baseline", "baseline": old},
            {"name": "sw-1", "rev": "d" * 40, "kind": "experiment", "baseline": old},
            {"name": "q10", "rev": "e" * 40, "kind": "experiment", "baseline": old}]
    with pytest.raises(DataError) as err:
        compare.resolve(["sw-1"], rows)
    assert str(err.value) == ("experiment 'sw-1': names 2 runs (sw-1 (ccccccc) on bbbbbbb, sw-1 (ddddddd) on "
                              "aaaaaaa); name one by its rev")
    assert [r["rev"] for r in compare.resolve(["dddd"], rows)] == ["d" * 40]
    # each chosen experiment's own commit first (HEAD's only where it is theirs, or where none is an experiment)
    assert [r["name"] for r in compare.resolve(["q10"], rows, baseline=True)] == ["bbbb000", "q10"]
    assert [r["name"] for r in compare.resolve(["cccc", "q10"], rows, baseline=True)] == ["main", "bbbb000", "sw-1",
                                                                                          "q10"]
    assert [r["name"] for r in compare.resolve(["workspace"], rows, baseline=True)] == ["main", "workspace"]
