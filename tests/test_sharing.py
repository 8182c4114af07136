"""Sharing and scaling experiments, on loopback only: a local-directory and an S3 (moto server) DVC remote
round trip, a queued sweep run with `dvc queue start -j 2`, `dvc exp push`/`pull` between two clones through a
bare Git remote plus the S3 remote, `replab sweep`/`replab compare`, and `runtime.device: cuda` without a GPU.

Every dvc/git subprocess gets an explicit environment: dummy AWS credentials, AWS config files that do not
exist, no proxies, no user/system Git or DVC config. The end-to-end tests (marked slow) start from copies of
the session's smoke baseline (conftest.py: one smoke-profile `dvc repro`), committed with its results.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compose, copy_repo, isolated_env, kill_queue_workers
from replab.cli import main
from replab.compare import compare_table, expand_grid, qualify, queue_commands, render, share_cpus, split_values
from replab.params import ParamError

BUCKET = "replab-remote"
SWEEP = [1, 2, 3]  # aae_ssl.lambda_rec of the queued sweep (the committed smoke baseline has 7): more runs than workers


def sh(cwd: Path, env: dict, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The environment of every subprocess here (and of this process while the module runs, for boto3)."""
    home = tmp_path_factory.mktemp("env")
    cleared = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}
    values = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in cleared}
    values.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-creds"),
        "AWS_EC2_METADATA_DISABLED": "true", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        **isolated_env(home),
    })
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_") or k in cleared]:
            mp.delenv(key)
        for key, value in values.items():
            mp.setenv(key, value)
        yield values


@pytest.fixture(scope="module")
def s3(env) -> str:
    """Endpoint URL of an S3 server (moto) on 127.0.0.1, with an empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    assert host == "127.0.0.1"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def base(smoke_baseline, tmp_path_factory, env) -> Path:
    """The project in a fresh Git repo, composed with the smoke profile, `dvc repro` once (a copy of the
    session's smoke baseline), committed with its results."""
    root = copy_repo(smoke_baseline, tmp_path_factory.mktemp("base") / "repo")
    sh(root, env, "git", "add", "-A")
    sh(root, env, "git", "commit", "-qm", "smoke results")
    return root


def metric_files(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted((repo / "metrics").rglob("*.json"))}


def stop_workers(repo: Path, env: dict) -> None:
    """Stop this repo's Celery queue workers and wait for their processes to end (killed after 30 s)."""
    sh(repo, env, "dvc", "queue", "stop", "--kill", check=False)
    kill_queue_workers(repo)


# ---------------------------------------------------------------- fast: sweep grid, compare table, device


def test_sweep_grid_expansion():
    params = compose("profile=smoke")
    assert split_values("1,3.5,7") == ["1", "3.5", "7"]
    assert split_values("[100,600],[1000]") == ["[100,600]", "[1000]"]
    assert qualify("split_vae", "exp2.epochs", list(params)) == "split_vae.exp2.epochs"
    assert qualify("aae_ssl", "runtime.threads", list(params)) == "runtime.threads"
    grid = expand_grid("aae_ssl", ["lambda_rec=1,7", "aae_ssl.lambda_reg=0.5,1"], params)
    assert grid == [[f"aae_ssl.lambda_rec={rec}", f"aae_ssl.lambda_reg={reg}"] for rec in (1, 7) for reg in (0.5, 1)]
    commands = queue_commands(grid[:1], "smoke", ["runtime.threads=1"], name="rec")
    assert commands == [["dvc", "exp", "run", "--queue", "-n", "rec-1", "-S", "profile=smoke",
                         "-S", "runtime.threads=1", "-S", "aae_ssl.lambda_rec=1", "-S", "aae_ssl.lambda_reg=0.5"]]
    with pytest.raises(ParamError) as err:  # a misspelt key names the ones there are
        expand_grid("aae_ssl", ["lamda_rec=1,2"], params)
    assert str(err.value).startswith("params.yaml: aae_ssl.lamda_rec: no such key (sweep keys are relative to "
                                     "`aae_ssl:` or full dotted keys; allowed under aae_ssl: batch_labeled, ")
    assert "lambda_rec" in str(err.value)
    with pytest.raises(ParamError, match=r"split_vae.exp2.epoch: no such key .*; allowed under split_vae.exp2: .*"
                                         r"epochs"):
        expand_grid("split_vae", ["exp2.epoch=1,2"], params)
    with pytest.raises(ParamError) as err:  # it queued aae_ssl's sweep under attention_vat's name
        expand_grid("attention_vat", ["aae_ssl.lr=1,2"], params)
    assert str(err.value) == ("sweep attention_vat aae_ssl.lr=1,2: aae_ssl.lr is aae_ssl's (allowed: attention_vat's "
                              "keys and the shared sections runtime, data, images, datasets; sweep that paper for its "
                              "keys)")
    assert expand_grid("attention_vat", ["data.rt_snippets.n_labeled=100,200"], params)  # a shared section
    with pytest.raises(ParamError, match="expected v1,v2"):
        split_values("1,,2")


def test_sweep_dry_run_prints_one_queued_run_per_point(in_tmp, capsys):
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2,3", "--set", "runtime.threads=1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"dvc exp run --queue -S profile=smoke -S runtime.threads=1 -S aae_ssl.lambda_rec={v}"
                     for v in (1, 2, 3)]
    assert main(["sweep", "nope", "x=1", "--dry-run"]) == 2
    assert "paper 'nope': unknown" in capsys.readouterr().err
    # the grid after the options too (it was `unrecognized arguments: lambda_rec=1,2,3`), split around one as well
    assert main(["sweep", "aae_ssl", "--dry-run", "--set", "runtime.threads=1", "lambda_rec=1,2,3"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--dry-run", "lambda_reg=1"]) == 0
    assert capsys.readouterr().out.count("-S aae_ssl.lambda_reg=1") == 2
    with pytest.raises(SystemExit):
        main(["sweep", "aae_ssl", "lambda_rec=1,2", "--dry-run", "--no-such-option"])
    assert capsys.readouterr().err == ("error: replab sweep: unrecognized arguments: --no-such-option (see replab "
                                       "sweep -h)\n")  # its command's help, not the top level's


def test_sweep_shares_the_cpus_by_the_runs_params_not_the_workspaces(in_tmp, capsys, monkeypatch):
    """After `replab compose runtime.threads=4` the sweep gave no share (the workspace chose), but its runs recompose
    params.yaml from conf/ (threads 0: every CPU each) and oversubscribed the cores; `runtime: cpu` in the workspace
    ended in an AttributeError traceback."""
    import shutil

    from replab import runtime

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    monkeypatch.setattr(runtime, "available_cpus", lambda: 8)
    for workspace_runtime in ({**compose()["runtime"], "threads": 4}, "cpu"):
        (in_tmp / "params.yaml").write_text(yaml.safe_dump({**compose(), "runtime": workspace_runtime}))
        assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "-j", "2", "--dry-run"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == ("runtime.threads=4: 2 queue workers share this machine's "
                                                           "CPUs (--set runtime.threads=N to choose)")


def test_sweep_shares_the_cpus_among_its_queue_workers(in_tmp, capsys, monkeypatch):
    """-j N workers on one machine: each run gets CPUs ÷ N threads unless the sweep or params.yaml chose."""
    from replab import runtime

    params = compose("profile=smoke")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(runtime, "available_cpus", lambda: 8)
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "-j", "3", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        "runtime.threads=2: 3 queue workers share this machine's CPUs (--set runtime.threads=N to choose)",
        *(f"dvc exp run --queue -S profile=smoke -S runtime.threads=2 -S aae_ssl.lambda_rec={v}" for v in (1, 2))]

    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "-j", "0", "--dry-run"]) == 2
    assert capsys.readouterr().err == "error: sweep -j 0: allowed: 1 … 8 queue workers (this machine's CPUs)\n"
    # -j 999 started 190 DVC workers on 2 cores (load 295): more workers than CPUs is refused before any queueing
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "-j", "9", "--dry-run"]) == 2
    assert capsys.readouterr().err == "error: sweep -j 9: allowed: 1 … 8 queue workers (this machine's CPUs)\n"

    points = [["aae_ssl.lambda_rec=1"]]
    assert share_cpus([], points, 2, params, cpus=2) == ["runtime.threads=1"]
    assert share_cpus([], points, 4, params, cpus=2) == ["runtime.threads=1"]  # never 0 (= every CPU)
    assert share_cpus([], points, 1, params, cpus=2) == []  # one worker: all CPUs, as without a sweep
    assert share_cpus(["runtime.threads=3"], points, 2, params, cpus=8) == ["runtime.threads=3"]
    assert share_cpus([], [["runtime.threads=1"], ["runtime.threads=2"]], 2, params, cpus=8) == []
    chosen = {**params, "runtime": {**params["runtime"], "threads": 4}}
    assert share_cpus([], points, 2, chosen, cpus=8) == []


class LostCollection:
    """Git refs and `dvc exp run --temp` for rerun_uncollected: `collected` experiments have refs on the queued
    commit; a rerun adds its name (or not, with `lose_again`). Every command run is recorded."""

    def __init__(self, collected, lose_again=False):
        self.collected, self.lose_again, self.ran = set(collected), lose_again, []

    def install(self, monkeypatch, compare, head="ab" * 20, diff="d" * 64):
        monkeypatch.setattr(compare, "collected_names", lambda baseline: set(self.collected)
                            if baseline == "ab" * 20 else set())
        monkeypatch.setattr(compare, "workspace_state", lambda: (head, diff))
        monkeypatch.setattr(compare, "run_until", self.run)

    def run(self, cmd, deadline):
        self.ran.append(cmd)
        if not self.lose_again:
            self.collected.add(cmd[cmd.index("-n") + 1])
        return 0


QUEUED = ("ab" * 20, "d" * 64)  # (HEAD, sha256 of the tracked changes) when the sweep was queued


def test_waiting_for_the_queue_says_where_it_stands(monkeypatch, capsys):
    """`sweep --run` waits silently no more: a line when the counts change (and every say_every seconds)."""
    from replab import compare

    polls = iter([{"a": "Queued", "b": "Queued"}, {"a": "Running", "b": "Queued"}, {"a": "Running", "b": "Queued"},
                  {"a": "Success", "b": "Running"}, {"a": "Success", "b": "Failed"}])
    monkeypatch.setattr(compare, "queue_status", lambda: next(polls))
    assert compare.wait_for_queue(["a", "b"], poll=0) == {"a": "Success", "b": "Failed"}
    lines = [ln.rsplit(", after", 1)[0] for ln in capsys.readouterr().err.splitlines()]
    assert lines == ["sweep: 0 of 2 finished, 2 Queued", "sweep: 0 of 2 finished, 1 Queued, 1 Running",
                     "sweep: 1 of 2 finished (1 Success), 1 Running", "sweep: 2 of 2 finished (1 Failed, 1 Success)"]


def test_a_run_left_out_of_one_queue_status_is_waited_for(monkeypatch, capsys):
    """DVC's status left out, for one poll, a run a worker was taking from the queue (Queued → Running): the sweep
    stopped with "rec-3 not in `dvc queue status` (removed from the queue?)" although the run went on, because the
    grace counted from the start of the wait. Only a name left out for `grace` seconds in a row is an error."""
    from replab import compare
    from replab.io import DataError

    clock = [0.0]
    monkeypatch.setattr(compare.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(compare.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    polls = iter([{"a": "Running", "b": "Queued"}] * 30 + [{"a": "Success"}, {"a": "Success", "b": "Running"},
                                                             {"a": "Success"}, {"a": "Success", "b": "Success"}])
    monkeypatch.setattr(compare, "queue_status", lambda: next(polls))
    assert compare.wait_for_queue(["a", "b"], poll=5, grace=60) == {"a": "Success", "b": "Success"}
    assert "1 Success), 1 not listed, after 150 s" in capsys.readouterr().err

    polls = iter([{"a": "Running", "b": "Queued"}] + [{"a": "Running"}] * 20)  # gone for good: named after the grace
    monkeypatch.setattr(compare, "queue_status", lambda: next(polls))
    start = clock[0]
    with pytest.raises(DataError, match=r"^sweep: b not in `dvc queue status` for 60 s \(removed from the queue\?\)$"):
        compare.wait_for_queue(["a", "b"], poll=5, grace=60)
    assert clock[0] - start == 5 + 65  # (its first poll without b at 5 s, the error at the first poll past 60 s later)


def test_queue_status_runs_dvcs_status_again_after_a_transient_failure(monkeypatch):
    """As its workers stopped, `dvc queue status` printed every run's Success and then failed (exit 255, `unexpected
    error - Expecting value: line 1 column 1 (char 0)`): a sweep whose runs had all succeeded would have stopped on
    it. It is run again; a failure every time is the sweep's, with DVC's last line."""
    from replab import compare
    from replab.io import DataError

    table = "Task     Name    Created    Status\n6c8eedc  rec-1   05:13 PM   Success\n"
    failed = subprocess.CompletedProcess([], 255, table, "ERROR: unexpected error - Expecting value: line 1 column 1")
    calls, slept = [], []
    monkeypatch.setattr(compare.time, "sleep", slept.append)

    def dvc(*args, check=True):
        calls.append(check)
        if len(calls) == 1 or always_failing:
            if check:
                raise DataError(f"`dvc {' '.join(args)}` failed: {failed.stderr}")
            return failed
        return subprocess.CompletedProcess([], 0, table, "")

    monkeypatch.setattr(compare, "_dvc", dvc)
    always_failing = False
    assert compare.queue_status() == {"rec-1": "Success"}
    assert calls == [False, False] and slept == [compare.STATUS_RETRY_S]
    always_failing, calls[:] = True, []
    with pytest.raises(DataError, match="Expecting value"):
        compare.queue_status()
    assert calls == [False] * (compare.STATUS_TRIES - 1) + [True]


def test_sweep_reruns_an_experiment_the_queue_reported_but_lost(in_tmp, monkeypatch, capsys):
    """DVC's queue can report Success for an experiment whose collection failed in its worker (no Git ref, absent
    from `dvc exp show`: seen with two workers). The sweep runs exactly the lost one again, `--temp` under the same
    name, and says why, quoting this sweep's traceback from the worker log (not an older one above it)."""
    from replab import compare

    log = Path(".dvc/tmp/exps/celery/dvc-exp-worker-2.out")
    log.parent.mkdir(parents=True)
    log.write_text("ERROR Failed to collect experiment\nscmrepo.exceptions.SCMError: an earlier sweep's\n")
    before = compare.worker_log_sizes()
    with log.open("a") as f:
        f.write("[2026-11-30 09:57:01] ERROR/MainProcess Failed to collect experiment\nTraceback (most recent "
                "call last):\nscmrepo.exceptions.SCMError: cannot lock ref\n")
    dvc = LostCollection({"rec-1", "rec-3"})
    dvc.install(monkeypatch, compare)
    commands = queue_commands([[f"aae_ssl.lambda_rec={v}"] for v in (1, 2, 3)], "smoke", name="rec")
    compare.rerun_uncollected(["rec-1", "rec-2", "rec-3"], commands, QUEUED, before)
    assert dvc.ran == [["dvc", "exp", "run", "--temp", "-n", "rec-2", "-S", "profile=smoke",
                        "-S", "aae_ssl.lambda_rec=2"]]
    err = capsys.readouterr().err
    assert "reported rec-2 as Success but did not collect it" in err
    assert "SCMError: cannot lock ref" in err and "an earlier sweep's" not in err


def test_sweep_keeps_the_queues_name_of_an_unnamed_lost_experiment_and_fails_if_lost_again(in_tmp, monkeypatch):
    from replab import compare
    from replab.io import DataError

    dvc = LostCollection({"bushy-mace"}, lose_again=True)
    dvc.install(monkeypatch, compare)
    commands = queue_commands([["aae_ssl.lambda_rec=1"], ["aae_ssl.lambda_rec=2"]], "smoke")
    with pytest.raises(DataError) as err:
        compare.rerun_uncollected(["bushy-mace", "pied-kite"], commands, QUEUED, {})
    assert dvc.ran == [["dvc", "exp", "run", "--temp", "-n", "pied-kite", "-S", "profile=smoke",
                        "-S", "aae_ssl.lambda_rec=2"]]
    assert str(err.value) == ("sweep: still missing from `dvc exp show` after a rerun: pied-kite "
                              "(worker logs: .dvc/tmp/exps/celery/dvc-exp-worker-*.out)")


def test_sweep_does_not_rerun_a_lost_experiment_once_head_or_tracked_files_changed(in_tmp, monkeypatch):
    """A commit or an edit made while the queue ran: a rerun would not be the experiment that was queued, so the
    sweep names the lost one and the command to run from the queued state, and runs nothing."""
    from replab import compare
    from replab.io import DataError

    dvc = LostCollection({"rec-1"})
    dvc.install(monkeypatch, compare, diff="e" * 64)  # tracked files edited since queueing
    commands = queue_commands([["aae_ssl.lambda_rec=1"], ["aae_ssl.lambda_rec=2"]], "smoke", name="rec")
    with pytest.raises(DataError) as err:
        compare.rerun_uncollected(["rec-1", "rec-2"], commands, QUEUED, {})
    assert dvc.ran == []
    assert str(err.value) == (
        "sweep: lost rec-2, and HEAD or the tracked files changed since they were queued on abababa, so they are "
        "not rerun here; from that state run: dvc exp run --temp -n rec-2 -S profile=smoke -S aae_ssl.lambda_rec=2")


def test_sweep_timeout_covers_the_reruns_of_lost_experiments(in_tmp, monkeypatch):
    """`--timeout` is the whole sweep's: past it, no rerun starts, and the error names what is left to run."""
    import time

    from replab import compare
    from replab.io import DataError

    dvc = LostCollection({"rec-1"})
    dvc.install(monkeypatch, compare)
    commands = queue_commands([[f"aae_ssl.lambda_rec={v}"] for v in (1, 2, 3)], "smoke", name="rec")
    with pytest.raises(DataError) as err:
        compare.rerun_uncollected(["rec-1", "rec-2", "rec-3"], commands, QUEUED, {}, deadline=time.monotonic())
    assert dvc.ran == []
    assert str(err.value) == (
        "sweep: --timeout reached before rec-2, rec-3 ran again to the end; from that state run: "
        "dvc exp run --temp -n rec-2 -S profile=smoke -S aae_ssl.lambda_rec=2; "
        "dvc exp run --temp -n rec-3 -S profile=smoke -S aae_ssl.lambda_rec=3")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")
def test_run_until_stops_the_command_and_the_process_it_started_at_the_deadline(tmp_path):
    """A rerun is `dvc exp run`, which starts the stage command as its own child: both must stop at the deadline."""
    import sys
    import time

    from replab.compare import run_until

    pid_file = tmp_path / "grandchild.pid"
    parent = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    started = time.monotonic()
    assert run_until([sys.executable, "-c", parent], deadline=started + 3, grace=5) is None
    assert time.monotonic() - started < 20
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # SIGINT reaches the whole group; the grandchild dies with it (or is left a zombie)
        status = Path(f"/proc/{grandchild}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the command's child {grandchild} outlived the deadline")
    assert run_until([sys.executable, "-c", "raise SystemExit(3)"], deadline=None) == 3


def test_collected_names_are_the_experiment_refs_of_the_queued_commit(in_tmp):
    from replab.compare import collected_names

    sh_plain = functools.partial(subprocess.run, check=True, capture_output=True)
    sh_plain(["git", "init", "-q"])
    sh_plain(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "a"])
    first = sh_plain(["git", "rev-parse", "HEAD"], text=True).stdout.strip()
    sh_plain(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "b"])
    second = sh_plain(["git", "rev-parse", "HEAD"], text=True).stdout.strip()
    for base, name in ((first, "rec-1"), (first, "rec-2"), (second, "rec-3")):
        sh_plain(["git", "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", second])
    assert collected_names(first) == {"rec-1", "rec-2"}
    assert collected_names(second) == {"rec-3"}


def test_compare_table_flattens_summary_params_and_run_block(in_tmp):
    params = compose("profile=smoke")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    summary = {"test_error": {"100": {"ae": {"mean": 28.8, "std": 1.7, "n": 2}}}, "paper_test_error": {"x": 1},
               "dataset": "mnist5k",
               "run": {"devices": "cpu (x86_64)", "torch": "2.14.1", "train_seconds_total": 62.5}}
    (in_tmp / "metrics").mkdir()
    (in_tmp / "metrics/aae_ssl.json").write_text(json.dumps(summary))
    rows = [{"name": "workspace", "rev": "workspace"}, {"name": "again", "rev": "workspace"}]
    headers, table = compare_table("aae_ssl", rows, fmt="csv")
    assert headers == ["experiment", "rev", "profile", "test_error.100.ae.mean", "test_error.100.ae.std", "dataset",
                       "run.devices", "run.torch", "run.train_seconds_total"]  # no differing params, no paper_*
    assert table[0] == ["workspace", "workspace", "smoke", 28.8, 1.7, "mnist5k", "cpu (x86_64)", "2.14.1", 62.5]
    md = render(*compare_table("aae_ssl", rows[:1], fmt="md"), fmt="md")
    assert "| test_error.100.ae |" in md and "| 28.80 ± 1.70 |" in md  # the std at the mean's decimals
    from replab.compare import _mean_std

    assert [_mean_std(*v) for v in ((12.1, 0.28284271), (0.84312, 0.0123), (0.0, 0.5), (123456.0, 7.0),
                                     (None, 1.0))] == ["12.10 ± 0.28", "0.8431 ± 0.0123", "0.0000 ± 0.5000",
                                                       "123456 ± 7", " ± 1"]
    # beyond a float's range (valid JSON: an OverflowError before) and below 4 significant decimals (323 of them)
    assert _mean_std(10**400, 1.0) == "1000…00 (401 digits) ± 1" and _mean_std(5e-320, 0.0) == "5e-320 ± 0"
    assert _mean_std(-1e300, 2e16) == "-1e+300 ± 2e+16" and _mean_std(123456789012345.0, 1.0) == "123456789012345 ± 1"
    transposed = render(headers, table, fmt="md", transpose=True)
    assert "| field | workspace | again |" in transposed
    params["split_vae"]["c2"], params["aae_ssl"]["lr"] = 39.0625, 1.0000001e-4  # params as given, not at 4 digits
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    for fmt in ("md", "csv"):
        text = render(*compare_table("aae_ssl", rows[:1], fmt=fmt, all_params=True), fmt=fmt, transpose=True)
        assert "aae_ssl.lr | 0.00010000001 |" in text if fmt == "md" else "aae_ssl.lr,0.00010000001" in text
    (in_tmp / "metrics/split_vae.json").write_text(json.dumps(summary))
    text = render(*compare_table("split_vae", rows[:1], fmt="md", all_params=True), fmt="md", transpose=True)
    assert "| split_vae.c2 | 39.0625 |" in text
    assert "| run.devices | cpu (x86_64) | cpu (x86_64) |" in transposed
    # an experiment's params.yaml whose meta is no mapping (a traceback before): one line naming the experiment
    (in_tmp / "params.yaml").write_text(yaml.safe_dump({**params, "meta": "quick"}))
    with pytest.raises(ParamError, match=r"^workspace: params\.yaml: meta = 'quick': must be a mapping \(meta\."):
        compare_table("split_vae", rows[:1])


def test_compare_only_changed_keeps_the_metrics_and_run_fields_that_differ(in_tmp, monkeypatch):
    """`replab compare attention_vat eps2 --baseline` was one table of about 130 metric columns, the unchanged ones
    included: `--only-changed` keeps those that differ between the rows, as `dvc exp show --only-changed` does."""
    import replab.compare as compare_module

    params = compose("profile=smoke")
    summaries = {"a": {"f1": {"mean": 70.0, "std": 1.0, "n": 2}, "dataset": "rt_snippets", "verdict": "holds",
                       "run": {"devices": "cpu", "train_seconds_total": 60.0}},
                 "b": {"f1": {"mean": 70.0, "std": 1.0, "n": 2}, "dataset": "rt_snippets", "verdict": "does not hold",
                       "run": {"devices": "cpu", "train_seconds_total": 61.5}}}
    monkeypatch.setattr(compare_module, "read_at",
                        lambda row, path: params if path == "params.yaml" else summaries[row["name"]])
    rows = [{"name": "a", "rev": "a" * 40}, {"name": "b", "rev": "b" * 40}]
    everything = compare_table("aae_ssl", rows, fmt="csv")[0]
    assert everything[3:] == ["f1.mean", "f1.std", "dataset", "verdict", "run.devices", "run.train_seconds_total"]
    headers, table = compare_table("aae_ssl", rows, fmt="csv", only_changed=True)
    assert headers == ["experiment", "rev", "profile", "verdict", "run.train_seconds_total"]
    assert [r[3:] for r in table] == [["holds", 60.0], ["does not hold", 61.5]]
    assert "only the metrics and run fields that differ" in " ".join(capture_help("compare").split())
    summaries["b"] = summaries["a"]  # nothing differs: an empty table used to say nothing more
    notes: list[str] = []
    headers, _ = compare_table("aae_ssl", rows, fmt="md", notes=notes, only_changed=True)
    assert headers == ["experiment", "rev", "profile"]
    assert notes == ["--only-changed: these experiments differ in no param, summary metric or run field"]


def capture_help(command: str) -> str:
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        main([command, "--help"])
    return out.getvalue()


def test_compare_metrics_filter_is_checked_before_any_experiment_is_read(in_tmp, capsys):
    """`--metrics '['` was a traceback (re.error); a pattern that matches no metric printed a table of run
    columns alone. Both are one line naming the option: the bad pattern before DVC is asked for experiments."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    (in_tmp / "metrics").mkdir()
    summary = {"test_error": {"100": {"ae": {"mean": 28.8, "std": 1.7, "n": 2}}}, "dataset": "mnist5k"}
    (in_tmp / "metrics/aae_ssl.json").write_text(json.dumps(summary))
    rows = [{"name": "workspace", "rev": "workspace"}]
    assert compare_table("aae_ssl", rows, fmt="csv", metrics=r"^test_error\.")[0][3:] == [
        "test_error.100.ae.mean", "test_error.100.ae.std"]
    with pytest.raises(ParamError) as err:
        compare_table("aae_ssl", rows, metrics="^nomatch")
    assert str(err.value) == ("compare --metrics '^nomatch': matches no summary metric of metrics/aae_ssl.json (its "
                              "names: test_error.100.ae, dataset, …)")
    assert main(["compare", "aae_ssl", "no-such-exp", "--metrics", "["]) == 2  # not a DVC repository either
    assert capsys.readouterr().err == ("error: compare --metrics '[': not a regular expression (unterminated "
                                       "character set at position 0)\n")
    # patterns re.compile refuses with other errors than re.error (tracebacks before)
    for pattern, why in (("x{99999999999}", "the repetition number is too large"),
                         ("(" * 1000 + ")" * 1000, "maximum recursion depth exceeded")):
        with pytest.raises(ParamError, match=rf"^compare --metrics '.{{,60}}'…?: not a regular expression \({why}"):
            compare_table("aae_ssl", rows, metrics=pattern)


def test_compare_shows_a_metric_missing_in_every_seed_as_the_report_does(in_tmp):
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    (in_tmp / "metrics").mkdir()
    summary = {"test_error": {"100": {"ae": {"mean": None, "std": None, "n": 0, "missing": 2},
                                      "aae_yz": {"mean": 22.5, "std": 0.5, "n": 2},
                                      "aae_z": {"mean": 24.25, "std": 0.0, "n": 1}}}}
    (in_tmp / "metrics/aae_ssl.json").write_text(json.dumps(summary))
    md = render(*compare_table("aae_ssl", [{"name": "workspace", "rev": "workspace"}], fmt="md"), fmt="md")
    assert "| – | 22.50 ± 0.50 |" in md and " ± |" not in md
    assert "| 24.25 |" in md and "± 0 " not in md  # one seed: its value alone, as the report shows it


def test_cuda_without_a_gpu_fails_clearly_instead_of_running_on_cpu(in_tmp, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    params = compose("profile=smoke", "runtime.device=cuda", "runtime.progress=false")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["train", "aae_ssl", "ae-100-0", "model=ae", "n_labeled=100", "seed=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: params.yaml: runtime.device = 'cuda': no CUDA device is visible (allowed here: auto, cpu)"]
    assert not (in_tmp / "models").exists() and not (in_tmp / "plots").exists()


# ---------------------------------------------------------------- remotes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_remote_round_trip(kind, base, env, tmp_path, request):
    """push → wipe cache and outputs → pull: `dvc status` clean, and re-evaluating pulled models gives
    byte-identical metrics."""
    repo = copy_repo(base, tmp_path / "repo")
    if kind == "local":
        # -f: the clone may carry a committed remote of that name (README advises committing one)
        sh(repo, env, "dvc", "remote", "add", "-f", "-d", "store", str(tmp_path / "dvc-store"))
    else:
        endpoint = request.getfixturevalue("s3")
        sh(repo, env, "dvc", "remote", "add", "-f", "-d", "store", f"s3://{BUCKET}/round-trip")
        sh(repo, env, "dvc", "remote", "modify", "store", "endpointurl", endpoint)
    before = metric_files(repo)
    pushed = sh(repo, env, "dvc", "push")
    assert "pushed" in pushed.stdout

    sh(repo, env, "git", "clean", "-ffdqX")  # every Git-ignored path: .dvc/cache, .dvc/tmp, all cached outputs
    assert not (repo / ".dvc/cache").exists() and not (repo / "models").exists()
    assert not (repo / "data/processed").exists()

    pulled = sh(repo, env, "dvc", "pull")
    assert "added" in pulled.stdout or "fetched" in pulled.stdout
    assert "Data and pipelines are up to date" in sh(repo, env, "dvc", "status").stdout
    assert (repo / "models/aae_ssl/aae_yz-100-0/model.pt").stat().st_size > 0
    sh(repo, env, "dvc", "repro", "--force", "--single-item", "eval_aae_ssl", "eval_autoencoder")
    assert metric_files(repo) == before


# ---------------------------------------------------------------- queued sweep, compare, exp push/pull


@pytest.mark.slow
def test_failed_queued_run_names_its_log_and_the_cause(base, env, tmp_path):
    """A queued run with `runtime.device=cuda` on a machine without a visible GPU fails (never falls back to
    the CPU); `replab sweep --run` exits non-zero with the log's tail, and `dvc queue logs` keeps it."""
    repo = copy_repo(base, tmp_path / "repo")
    no_gpu = {**env, "CUDA_VISIBLE_DEVICES": ""}
    try:
        result = sh(repo, no_gpu, "replab", "sweep", "aae_ssl", "lambda_rec=5", "--set", "runtime.device=cuda",
                    "--name", "nogpu", "--run", "-j", "1", "--timeout", "300", check=False)
    finally:
        stop_workers(repo, no_gpu)
    cause = "error: params.yaml: runtime.device = 'cuda': no CUDA device is visible"
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nogpu-1: Failed" in result.stdout
    assert cause in result.stderr and "dvc queue logs nogpu-1" in result.stderr
    assert "sweep: 1 of 1 experiments failed: nogpu-1" in result.stderr.strip().splitlines()[-1]
    assert cause in sh(repo, env, "dvc", "queue", "logs", "nogpu-1").stdout


@pytest.fixture(scope="module")
def swept(base, env, s3, tmp_path_factory):
    """Clone A: a bare Git remote `origin` and the S3 remote (committed, as a team would), then
    `replab sweep aae_ssl lambda_rec=1,2,3 --run -j 2` (3 queued experiments, 2 workers)."""
    work = tmp_path_factory.mktemp("sweep")
    bare = work / "origin.git"
    sh(work, env, "git", "init", "-q", "--bare", "-b", "main", str(bare))
    repo = copy_repo(base, work / "a")
    sh(repo, env, "git", "remote", "add", "origin", str(bare))
    sh(repo, env, "dvc", "remote", "add", "-f", "-d", "shared", f"s3://{BUCKET}/shared")
    sh(repo, env, "dvc", "remote", "modify", "shared", "endpointurl", s3)
    sh(repo, env, "git", "add", ".dvc/config")
    sh(repo, env, "git", "commit", "-qm", "shared DVC remote")
    sh(repo, env, "git", "push", "-q", "origin", "main")
    started = time.monotonic()
    try:
        result = sh(repo, env, "replab", "sweep", "aae_ssl", f"lambda_rec={','.join(map(str, SWEEP))}",
                    "--set", "runtime.threads=1", "--name", "rec", "--run", "-j", "2", "--timeout", "900",
                    check=False)
        yield repo, bare, result, time.monotonic() - started
    finally:
        stop_workers(repo, env)


def exp_show(repo: Path, env: dict) -> dict[str, dict]:
    """{experiment name: {'rev', 'lambda_rec', 'summary'}} from `dvc exp show --json`."""
    found = {}
    for commit in json.loads(sh(repo, env, "dvc", "exp", "show", "--json").stdout):
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev.get("data") or {}
                found[rev.get("name")] = {
                    "rev": rev["rev"],
                    "lambda_rec": data.get("params", {}).get("params.yaml", {}).get("data", {})
                    .get("aae_ssl", {}).get("lambda_rec"),
                    "summary": (data.get("metrics") or {}).get("metrics/aae_ssl.json", {}).get("data")}
    return found


def queue_status_of(repo: Path, env: dict) -> str:
    """`dvc queue status`'s table, run again after a failure as `compare.queue_status` does (DVC's status can fail
    as its workers stop); the last try's failure fails the test."""
    from replab.compare import STATUS_RETRY_S, STATUS_TRIES

    for attempt in range(1, STATUS_TRIES + 1):
        result = sh(repo, env, "dvc", "queue", "status", check=attempt == STATUS_TRIES)
        if not result.returncode:
            return result.stdout
        time.sleep(STATUS_RETRY_S)


@pytest.mark.slow
def test_queued_sweep_of_three_runs_two_at_a_time(swept, env):
    repo, _, result, seconds = swept
    names = [f"rec-{i}" for i in range(1, len(SWEEP) + 1)]
    if result.returncode:
        status = sh(repo, env, "dvc", "queue", "status", check=False).stdout
        workers = "\n".join(p.read_text()[-3000:] for p in (repo / ".dvc/tmp/exps/celery").glob("*.out"))
        raise AssertionError(f"sweep failed after {seconds:.0f} s:\n{result.stdout}\n{result.stderr}\n"
                             f"dvc queue status:\n{status}\nworker logs:\n{workers}")
    assert [line for line in result.stdout.splitlines() if line.startswith("dvc exp run --queue")] == [
        f"dvc exp run --queue -n {name} -S profile=smoke -S runtime.threads=1 -S aae_ssl.lambda_rec={v}"
        for name, v in zip(names, SWEEP)]
    assert "dvc queue start -j 2" in result.stdout
    status = queue_status_of(repo, env)
    assert all(any(line.split()[1:2] == [n] and line.endswith("Success") for line in status.splitlines())
               for n in names), status
    # two Celery workers served the queue; every experiment has its own metrics
    assert sorted(p.name for p in (repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.out")) == [
        "dvc-exp-worker-1.out", "dvc-exp-worker-2.out"]
    shown = exp_show(repo, env)
    assert {n: shown[n]["lambda_rec"] for n in names} == dict(zip(names, SWEEP))
    for name in names:
        assert shown[name]["summary"]["test_error"]["100"]["aae_yz"]["n"] == 1
        assert shown[name]["summary"]["run"]["torch"]  # the run block is selectable in `dvc exp show`
    log = sh(repo, env, "dvc", "queue", "logs", names[0]).stdout
    assert "Running stage 'train_aae_ssl@aae_yz-100-0'" in log


@pytest.mark.slow
def test_compare_chosen_experiments_as_csv_and_markdown(swept, env):
    repo = swept[0]
    if swept[2].returncode:
        pytest.skip("the sweep failed (see test_queued_sweep_of_three_runs_two_at_a_time)")
    sh(repo, env, "replab", "compare", "aae_ssl", "rec-1", "rec-3", "--baseline", "--format", "csv",
       "--out", "compare.csv")
    table = list(csv.DictReader(io.StringIO((repo / "compare.csv").read_text())))
    assert [r["experiment"] for r in table] == ["main", "rec-1", "rec-3"]
    assert [float(r["aae_ssl.lambda_rec"]) for r in table] == [7.0, 1.0, 3.0]
    assert [r["runtime.threads"] for r in table] == ["0", "1", "1"]
    assert all(r["run.devices"] and r["run.torch"] and r["test_error.100.aae_yz.mean"] for r in table)
    md = sh(repo, env, "replab", "compare", "aae_ssl", "rec-2", "--metrics", "^test_error").stdout
    assert md.splitlines()[0].startswith("| experiment | rev | profile | test_error.100.ae |")
    missing = sh(repo, env, "replab", "compare", "aae_ssl", "no-such-exp", check=False)
    assert missing.returncode == 2 and "experiment 'no-such-exp': not found" in missing.stderr


@pytest.mark.slow
def test_exp_push_pull_between_two_clones(swept, env, tmp_path):
    """Clone A pushes its sweep (Git refs to the bare remote, outputs to S3); clone B pulls one experiment,
    sees it with its metrics in `dvc exp show` and applies it with its outputs."""
    repo_a, bare, result, _ = swept
    if result.returncode:
        pytest.skip("the sweep failed (see test_queued_sweep_of_three_runs_two_at_a_time)")
    pushed = sh(repo_a, env, "dvc", "exp", "push", "origin")
    assert "Pushed experiment" in pushed.stdout
    shown_a = exp_show(repo_a, env)

    repo_b = tmp_path / "b"
    sh(tmp_path, env, "git", "clone", "-q", str(bare), str(repo_b))
    sh(repo_b, env, "git", "config", "user.email", "b@example.com")
    sh(repo_b, env, "git", "config", "user.name", "b")
    listed = sh(repo_b, env, "dvc", "exp", "list", "origin", "--name-only").stdout.split()
    assert sorted(listed) == [f"rec-{i}" for i in range(1, len(SWEEP) + 1)]
    sh(repo_b, env, "dvc", "exp", "pull", "origin", "rec-3")
    shown_b = exp_show(repo_b, env)
    assert set(shown_b) == {"rec-3"}
    assert shown_b["rec-3"] == shown_a["rec-3"]  # same commit, params and metrics

    sh(repo_b, env, "dvc", "exp", "apply", "rec-3")
    assert "Data and pipelines are up to date" in sh(repo_b, env, "dvc", "status").stdout
    assert yaml.safe_load((repo_b / "params.yaml").read_text())["aae_ssl"]["lambda_rec"] == 3
    exp_metrics = sh(repo_a, env, "git", "show", f"{shown_a['rec-3']['rev']}:metrics/aae_ssl.json").stdout
    assert (repo_b / "metrics/aae_ssl.json").read_text() == exp_metrics
    assert (repo_b / "models/aae_ssl/aae_yz-100-0/model.pt").stat().st_size > 0
    table = sh(repo_b, env, "replab", "compare", "aae_ssl", "--baseline", "--format", "csv").stdout
    assert [r["experiment"] for r in csv.DictReader(io.StringIO(table))] == ["main", "rec-3"]


@pytest.mark.parametrize("grid, message", [
    ("simple.epochs=abc,5", "error: sweep autoencoder.simple.epochs=abc: params.yaml: autoencoder.simple.epochs = "
     "'abc': must be an integer\n"),
    ("simple.epochs=5.5", "error: sweep autoencoder.simple.epochs=5.5: params.yaml: autoencoder.simple.epochs = "
     "5.5: must be an integer\n"),
    ("runtime.compile=yes", "error: sweep runtime.compile=yes: params.yaml: runtime.compile = 'yes': must be true "
     "or false\n"),
    ("simple.epochs=5,5", "error: sweep 'simple.epochs=5,5': values must be distinct (a repeated value queues the "
     "same run twice)\n"),
    ("lr=0.001,1e-3", "error: sweep autoencoder.lr=1e-3: the same params.yaml as autoencoder.lr=0.001 (one run queued "
     "twice)\n"),
    ("lr=1,1.0", "error: sweep autoencoder.lr=1.0: the same params.yaml as autoencoder.lr=1 (one run queued "
     "twice)\n"),
    ("beta1=0,-0.0", "error: sweep autoencoder.beta1=-0.0: the same params.yaml as autoencoder.beta1=0 (one run "
     "queued twice)\n"),
    # malformed lists name their key (they used to quote the values alone)
    ("simple.epochs=1,,3", "error: sweep autoencoder.simple.epochs=1,,3: expected autoencoder.simple.epochs=v1,v2,... "
     "(no empty value; lists in brackets, closed)\n"),
    ("simple.epochs=", "error: sweep autoencoder.simple.epochs=: expected autoencoder.simple.epochs=v1,v2,... "
     "(no empty value; lists in brackets, closed)\n"),
    ("anomaly.held_out=[0,1", "error: sweep autoencoder.anomaly.held_out=[0,1: expected "
     "autoencoder.anomaly.held_out=v1,v2,... (no empty value; lists in brackets, closed)\n"),
])
@pytest.mark.parametrize("with_conf", [True, False], ids=["conf", "params.yaml alone"])
def test_sweep_checks_every_value_before_queueing_anything(grid, message, with_conf, in_tmp, capsys):
    """A bad value used to be queued (exit 0) and fail later inside a worker."""
    import shutil

    if with_conf:
        shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    assert main(["sweep", "autoencoder", grid, "--dry-run"]) == 2
    assert capsys.readouterr() == (("", message))


def test_a_bad_set_value_is_named_as_the_set_not_as_a_grid_point(in_tmp, capsys):
    """`--set lr=inf` was reported as `sweep aae_ssl.lambda_rec=1: …`, blaming the grid's first point; a fault that
    needs the grid's value is still pinned on its point."""
    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--set", "lr=inf", "--dry-run"]) == 2
    assert capsys.readouterr().err == ("error: sweep --set aae_ssl.lr=inf: params.yaml: aae_ssl.lr = inf: must be "
                                       "finite (a number beyond ±1.8e308, e.g. 1e400, reads as inf)\n")
    assert main(["sweep", "aae_ssl", "eval_every=5,30", "--set", "iterations=20", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith("error: sweep aae_ssl.eval_every=30: params.yaml: aae_ssl.eval_every = "
                                              "30: more than iterations = 20")


def test_sweep_refuses_a_key_given_twice(in_tmp, capsys):
    """`lambda_rec=1,3 lambda_rec=5 --set lambda_rec=abc` queued two runs of lambda_rec=5 (the last override wins),
    and the masked `abc` was never checked."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    for argv in (["lambda_rec=1,3", "lambda_rec=5"], ["lambda_rec=1,3", "aae_ssl.lambda_rec=7"],
                 ["lambda_rec=1,3", "--set", "lambda_rec=abc"]):
        assert main(["sweep", "aae_ssl", *argv, "--dry-run"]) == 2
        assert capsys.readouterr() == ("", "error: sweep: aae_ssl.lambda_rec given twice (grid and --set keys must "
                                           "each appear once)\n")


@pytest.mark.parametrize("argv, message", [
    (["--timeout", "nan"], "error: sweep --timeout nan: allowed: a number of seconds > 0\n"),
    (["--timeout", "-5"], "error: sweep --timeout -5.0: allowed: a number of seconds > 0\n"),
    (["--name", "a b"], "error: sweep --name 'a b': allowed: letters, digits, _ . - (starting with a letter or "
                        "digit)\n"),
    (["--name", "a/b"], "error: sweep --name 'a/b': allowed: letters, digits, _ . - (starting with a letter or "
                        "digit)\n"),
])
def test_sweep_refuses_a_bad_timeout_or_name_before_queueing(argv, message, in_tmp, capsys):
    """`--timeout nan` disabled the timeout silently; a name with a space or a slash reached `dvc exp run -n`."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", *argv, "--dry-run"]) == 2
    assert capsys.readouterr() == ("", message)


@pytest.mark.parametrize("argv", [["lr=0.001", "--set", "profile=paper"], ["profile=paper,quick"]])
def test_sweep_names_the_option_for_a_profile_given_as_a_key(argv, in_tmp, capsys):
    """`sweep autoencoder lr=0.001 --set profile=paper` said `autoencoder.profile: no such key`."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    for executor in ([], ["--executor", "slurm"]):
        assert main(["sweep", "autoencoder", *argv, *executor, "--dry-run"]) == 2
        assert capsys.readouterr().err == (f"error: sweep {argv[-1]}: the profile is chosen with --profile (one per "
                                           "sweep; default: params.yaml's meta.profile), not as a grid or --set key\n")


@pytest.mark.parametrize("executor, waits", [([], "--run"), (["--executor", "slurm"], "--collect")])
def test_sweep_refuses_a_timeout_with_nothing_to_wait_for(executor, waits, in_tmp, capsys):
    """`sweep --timeout 60` without --run queued the grid and returned: the timeout was accepted and never used."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    assert main(["sweep", "aae_ssl", "lambda_rec=1,2", "--timeout", "60", *executor, "--dry-run"]) == 2
    assert capsys.readouterr() == ("", f"error: sweep --timeout: only with {waits} (it bounds the wait for the "
                                       "results)\n")


@pytest.mark.parametrize("out, problem", [(".", "is a directory"), ("/proc/x.md", "/proc is not writable (")])
def test_compare_out_is_checked_before_any_experiment_is_read(out, problem, in_tmp, capsys, monkeypatch):
    """`compare --out /proc/x.md` or `--out plots` read every experiment and then ended in a traceback."""
    from replab import compare

    monkeypatch.setattr(compare, "list_experiments", lambda *a: pytest.fail("experiments read before --out"))
    assert main(["compare", "aae_ssl", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: compare --out {out}: {problem}") and err.count("\n") == 1
