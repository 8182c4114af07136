"""`replab sweep … --executor slurm`: the job scripts, the sweep record and failed-point reports (fast), and a
4-point smoke sweep on a real single-node SLURM cluster started here (slow).

The cluster fixture needs the Debian packages slurmctld, slurmd, slurm-client and munge (.ci/run installs them
when it runs as root) and root (SlurmUser=root): it writes a minimal slurm.conf (one node = this host, CPUs=2,
proctrack/linuxproc, task/none, state/spool/logs in a temporary directory), starts munged, slurmctld and slurmd
with SLURM_CONF pointing at it, waits for `sinfo` to show the node idle, and stops them by PID afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compose, copy_repo, isolated_env, sh
from replab.cli import main
from replab.params import ParamError
from replab.slurm import (
    Resources,
    Sweep,
    array_script,
    array_spec,
    check_name,
    data_configurations,
    data_script,
    task_states,
)

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# split_vae.c2 of the 3-point sweep (more points than the node has CPUs). The last, 3e38, passes every param check
# (sweep validates each point before submitting; within float32's range) and makes the loss (≈ 2.3 · c2) infinite
# at the first step: that point fails in its task, as a diverging run would, beside two that succeed
GRID = [10, 20, "3e38"]
GOOD = GRID[:2]
# every point: Experiment I only (the cheapest split_vae run), one thread per task, and writers data that
# differs from the committed baseline's, so the data job has to prepare it (once)
FIXED = ["split_vae.experiments=[exp1]", "data.writers.jitter=0.1", "runtime.threads=1"]


# ---------------------------------------------------------------- fast: scripts, records, reports


def make_sweep(tmp_path: Path, points=(["split_vae.c2=10"], ["split_vae.c2=-1"]), **kw) -> Sweep:
    values = dict(paper="split_vae", name="c2", commit="a" * 40, repo=str(tmp_path / "repo"),
                  cache=str(tmp_path / "shared cache"), git_remote="/srv/git/replab.git", dvc_remote=True,
                  profile="smoke", fixed=["runtime.threads=1"], points=[list(p) for p in points], data=[[]])
    values.update(kw)
    return Sweep(**values)


def bash_syntax_ok(text: str, tmp_path: Path) -> None:
    script = tmp_path / "check.sh"
    script.write_text(text)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_array_script_runs_each_point_in_its_own_clone_and_pushes_it(tmp_path):
    sweep = make_sweep(tmp_path, python_env="/shared/venv")
    text = array_script(sweep, Resources(partition="gpu", time="1:00:00", cpus_per_task=4, gres="gpu:1"), [1, 2])
    bash_syntax_ok(text, tmp_path)
    lines = text.splitlines()
    assert lines[:7] == ["#!/bin/bash", "#SBATCH --job-name=c2", "#SBATCH --array=1-2",
                         f"#SBATCH --output={tmp_path}/repo/.dvc/tmp/slurm/c2/logs/%a-%A.log",
                         "#SBATCH --partition=gpu", "#SBATCH --time=1:00:00", "#SBATCH --cpus-per-task=4"]
    assert "#SBATCH --gres=gpu:1" in lines
    assert "source /shared/venv/bin/activate" in lines
    assert f"git clone -q --no-checkout {tmp_path}/repo \"$work\"" in lines
    assert f"git checkout -q --detach {'a' * 40}" in lines
    assert "git remote set-url origin /srv/git/replab.git" in lines
    assert f"dvc cache dir --local '{tmp_path}/shared cache'" in lines  # quoted: a path with a space
    assert "dvc config --local cache.shared group" in lines
    assert 'export PYTHONPATH="$work/src${PYTHONPATH:+:$PYTHONPATH}"' in lines
    assert "  1) point=(-S profile=smoke -S runtime.threads=1 -S split_vae.c2=10) ;;" in lines
    assert "  2) point=(-S profile=smoke -S runtime.threads=1 -S split_vae.c2=-1) ;;" in lines
    assert lines[-2:] == ['dvc exp run -n "c2-$SLURM_ARRAY_TASK_ID" "${point[@]}"',
                          'dvc exp push origin "c2-$SLURM_ARRAY_TASK_ID"']
    # the clone is removed and the exit status recorded whatever ends the task
    assert any(line.startswith("finish() {") and 'rm -rf "$work"' in line and 'echo "$rc" > "$status"' in line
               for line in lines)
    without_remote = array_script(make_sweep(tmp_path, dvc_remote=False), Resources(), [2])
    assert "#SBATCH --array=2" in without_remote
    assert 'dvc exp push --no-cache origin "c2-$SLURM_ARRAY_TASK_ID"' in without_remote
    assert "#SBATCH --partition" not in without_remote and "1) point" not in without_remote


def test_data_script_prepares_each_data_configuration_once_without_a_gpu(tmp_path):
    sweep = make_sweep(tmp_path, data=[[], ["data.writers.jitter=0.1"]])
    text = data_script(sweep, Resources(partition="gpu", gres="gpu:1"))
    bash_syntax_ok(text, tmp_path)
    lines = text.splitlines()
    assert "#SBATCH --partition=gpu" in lines and not any("--gres" in line for line in lines)
    assert lines.count("dvc repro prepare") == 2
    assert "replab compose profile=smoke runtime.threads=1" in lines
    assert "replab compose profile=smoke runtime.threads=1 data.writers.jitter=0.1" in lines


def test_threads_zero_means_the_cpus_slurm_gives_the_task(monkeypatch):
    from replab.runtime import available_cpus

    mask = len(os.sched_getaffinity(0))
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "1")  # the job's CPUs on this node
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert available_cpus() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(mask + 8))  # never more than the affinity mask holds
    assert available_cpus() == mask
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")  # an array task without --cpus-per-task: SLURM gave it 1
    assert available_cpus() == 1
    monkeypatch.delenv("SLURM_CPUS_ON_NODE")  # outside SLURM: the affinity mask
    assert available_cpus() == mask
    for junk in ("²", "0", "-2", "two", ""):  # not a CPU count ("²".isdigit() is True): ignored, never a traceback
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", junk)
        assert available_cpus() == mask


def test_array_spec_and_resource_validation():
    assert array_spec([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8"
    assert array_spec([4]) == "4"
    with pytest.raises(Exception, match="--cpus-per-task 0: allowed"):
        Resources(cpus_per_task=0)
    with pytest.raises(Exception, match="--partition 'a b': allowed"):
        Resources(partition="a b")
    with pytest.raises(ParamError, match=r"--name 'c2; rm': allowed: letters, digits"):
        check_name("c2; rm")


def test_only_data_overrides_reach_the_data_job(monkeypatch):
    monkeypatch.chdir(REPO)  # conf/
    points = [["split_vae.c2=10", "data.writers.jitter=0.1"], ["split_vae.c2=-1", "data.writers.jitter=0.1"],
              ["split_vae.c2=10", "data.writers.jitter=0.2"]]
    assert data_configurations(points, "smoke", ["runtime.threads=1"]) == [
        ["data.writers.jitter=0.1"], ["data.writers.jitter=0.2"]]
    assert data_configurations([["split_vae.c2=1"], ["split_vae.c2=2"]], "smoke", []) == [[]]
    # `images` changes the datasets list
    assert data_configurations([["images=mnist5k"], ["images=mnist"]], "smoke", []) == [[], ["images=mnist"]]


def test_task_states_name_each_failed_point_and_its_log(tmp_path):
    sweep = make_sweep(tmp_path, points=[["split_vae.c2=10"], ["split_vae.c2=-1"], ["split_vae.c2=5"]])
    sweep.jobs = [{"kind": "data", "id": "7", "indices": []}, {"kind": "array", "id": "8", "indices": [1, 2, 3]}]
    status = sweep.directory / "status"
    status.mkdir(parents=True)
    (status / "data-7").write_text("0\n")
    (status / "1-8").write_text("0\n")
    (status / "2-8").write_text("1\n")  # task 3 left no status (e.g. cancelled before it started)
    states = task_states(sweep)
    assert [states[i]["state"] for i in (1, 2, 3)] == ["success", "failed", "failed"]
    assert states[2]["detail"] == "exit status 1"
    assert states[2]["log"] == str(sweep.directory / "logs" / "2-8.log")
    # a resubmission of point 2 supersedes its first attempt
    sweep.jobs += [{"kind": "data", "id": "9", "indices": []}, {"kind": "array", "id": "10", "indices": [2]}]
    (status / "data-9").write_text("1\n")
    states = task_states(sweep)
    assert states[2]["job"] == "10" and states[2]["state"] == "failed"
    assert states[2]["detail"].startswith("not run: the data job 9 failed (exit status 1; log ")
    assert states[2]["log"] == str(sweep.directory / "logs" / "data-9.log")


def test_sweep_slurm_refuses_uncommitted_changes_and_dry_run_prints_both_scripts(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "conf", repo / "conf")
    (repo / "params.yaml").write_text(yaml.safe_dump(compose("profile=smoke")))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for cmd in (["git", "init", "-q", "-b", "main"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x"],
                ["git", "remote", "add", "origin", str(tmp_path / "origin.git")]):
        sh(repo, *cmd)
    (tmp_path / "origin.git").mkdir()
    monkeypatch.chdir(repo)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")  # a tracked change
    assert main(["sweep", "split_vae", "c2=1,2", "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: sweep: runs of the commit would not see these uncommitted changes: params.yaml "
                   "(commit them, or rerun with --allow-dirty)")
    assert not (repo / ".dvc/tmp/slurm").exists()

    assert main(["sweep", "split_vae", "c2=1,2", "--executor", "slurm", "--name", "c2", "--dry-run",
                 "--gres", "gpu:1"]) == 0
    out = capsys.readouterr().out
    assert f"# ---- {repo}/.dvc/tmp/slurm/c2/data-1.sh" in out and f"# ---- {repo}/.dvc/tmp/slurm/c2/array-1.sh" in out
    assert f"git remote set-url origin {tmp_path}/origin.git" in out  # the remote's path, absolute
    assert "  2) point=(-S profile=smoke -S split_vae.c2=2) ;;" in out
    assert "--dependency=afterok:<data job> --kill-on-invalid-dep=yes" in out
    assert not (repo / ".dvc/tmp/slurm").exists()  # nothing written

    assert main(["sweep", "split_vae", "--executor", "slurm", "--name", "nope", "--collect"]) == 2
    assert "no SLURM sweep named 'nope' here (sweeps: none)" in capsys.readouterr().err
    assert main(["sweep", "split_vae", "--collect"]) == 2
    assert "only with --executor slurm" in capsys.readouterr().err



@pytest.mark.parametrize("option, value, allowed", [
    ("time", "abc", "SLURM's time formats"), ("time", "-1", "SLURM's time formats"),
    ("time", "1:2:3:4", "SLURM's time formats"), ("time", "2-", "SLURM's time formats"),
    ("partition", "a;b", "letters, digits and _ . -"), ("partition", "gpu,", "letters, digits and _ . -"),
])
def test_a_bad_time_or_partition_is_one_line_naming_the_option(option, value, allowed):
    with pytest.raises(ParamError) as err:
        Resources(**{option: value})
    assert str(err.value).startswith(f"sweep --{option} {value!r}: allowed: ") and allowed in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["20", "20:00", "2:00:00", "1-0", "1-12:00", "1-12:00:00", "UNLIMITED", "0"])
def test_every_slurm_time_format_is_accepted(value):
    assert Resources(time=value, partition="gpu_a-1.x,cpu").directives()[1] == f"#SBATCH --time={value}"


@pytest.mark.parametrize("scratch", ["relative/dir", "./x", "~/x", "/x/\"$(rm -rf ~)\"", "/a/../b", "$(pwd)/x"])
def test_a_scratch_that_is_not_an_absolute_path_is_refused(scratch, capsys):
    assert main(["sweep", "split_vae", "c2=1,2", "--executor", "slurm", "--scratch", scratch, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep --scratch {scratch!r}: allowed: an absolute path") and err.count("\n") == 1


def test_absolute_or_variable_scratch_paths_pass():
    from replab.slurm import check_scratch

    for scratch in ("/scratch/x", "$TMPDIR/x", "${TMPDIR:-/tmp}", "/scratch/$USER"):
        assert check_scratch(scratch) == scratch


@pytest.mark.parametrize("extra, option", [(["--run"], "--run"), (["-j", "4"], "-j/--jobs")])
def test_queue_options_are_refused_with_the_slurm_executor(extra, option, capsys):
    assert main(["sweep", "split_vae", "c2=1,2", "--executor", "slurm", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep {option}: only with --executor queue") and err.count("\n") == 1


@pytest.mark.parametrize("fail_at", [1, 2], ids=["data-job", "array"])
def test_a_failed_sbatch_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch, fail_at):
    from replab.io import DataError
    from replab.slurm import submit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    count, cancelled = tmp_path / "count", tmp_path / "cancelled"
    (bin_dir / "sbatch").write_text(
        f"#!/bin/bash\necho x >> {count}\nif [ $(wc -l < {count}) -ge {fail_at} ]; then\n"
        "  echo 'sbatch: error: Batch job submission failed:' >&2\n  echo 'Invalid partition name specified' >&2\n"
        "  exit 1\nfi\necho 41\n")
    (bin_dir / "scancel").write_text(f"#!/bin/bash\necho \"$@\" > {cancelled}\n")
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    sweep = make_sweep(tmp_path)
    with pytest.raises(DataError) as err:
        submit(sweep, Resources())
    script = sweep.directory / ("data-1.sh" if fail_at == 1 else "array-1.sh")
    assert str(err.value) == (f"`sbatch {script}` failed: sbatch: error: Batch job submission failed: Invalid "
                              "partition name specified")
    assert not sweep.directory.exists() and not sweep.directory.parent.exists() and sweep.jobs == []
    assert (cancelled.exists() and cancelled.read_text().strip() == "41") == (fail_at == 2)
    # a resubmission into an existing sweep's folder removes only its own scripts
    sweep.directory.mkdir(parents=True)
    (sweep.directory / "sweep.json").write_text("{}")
    count.unlink()
    with pytest.raises(DataError):
        submit(sweep, Resources())
    assert [p.name for p in sweep.directory.rglob("*") if p.is_file()] == ["sweep.json"]


# ---------------------------------------------------------------- a real SLURM cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def which(name: str) -> str | None:
    return shutil.which(name, path=SBIN)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster (this host, 2 CPUs)."""
    missing = [d for d in DAEMONS if which(d) is None]
    if missing:
        pytest.skip(f"SLURM is not installed here ({', '.join(missing)} missing): "
                    "apt-get install -y slurmctld slurmd slurm-client munge (.ci/run does so as root)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root); run as root, as CI does")
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge-key", "munge-run"):
        (root / sub).mkdir()
    (root / "munge-key").chmod(0o700)
    key, sock = root / "munge-key/munge.key", root / "munge-run/munge.socket"
    subprocess.run([which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=replab", "SlurmctldHost=localhost(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "ReturnToService=2", "SlurmdParameters=config_overrides",
        f"NodeName=replab NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = []
    try:
        for cmd in ([which("munged"), "-F", "-f", f"--socket={sock}", f"--key-file={key}",
                     f"--log-file={root}/munged.log", f"--pid-file={root}/munged.pid",
                     f"--seed-file={root}/munged.seed"],
                    [which("slurmctld"), "-D", "-i"], [which("slurmd"), "-D", "-N", "replab"]):
            out = open(root / f"{Path(cmd[0]).name}.out", "w")
            daemons.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while True:
            state = subprocess.run([which("sinfo"), "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                break
            dead = [d.args[0] for d in daemons if d.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(root.glob("*.out")))
                raise AssertionError(f"SLURM did not come up (exited: {dead}; sinfo: {state.stdout.strip()!r} "
                                     f"{state.stderr.strip()!r}):\n{logs}")
            time.sleep(0.5)
        yield str(conf)
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


@pytest.fixture(scope="module")
def env(tmp_path_factory, cluster):
    """This process's environment while the module runs (the subprocesses inherit it): the cluster's
    SLURM_CONF, the SLURM commands on PATH, scratch space of its own, no user/system Git or DVC config."""
    values = {"SLURM_CONF": cluster, "PATH": SBIN, "TMPDIR": str(tmp_path_factory.mktemp("scratch")),
              **isolated_env(tmp_path_factory.mktemp("env"))}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        yield values


@pytest.fixture(scope="module")
def repo(tmp_path_factory, env, request) -> Path:
    """The project with the smoke profile's results committed (a copy of the session's smoke baseline, asked
    for once the cluster is up; its DVC cache is the cache the jobs share), a bare Git remote `origin` and a
    local DVC remote (in .dvc/config: the tasks clone it)."""
    work = tmp_path_factory.mktemp("sweep")
    root = copy_repo(request.getfixturevalue("smoke_baseline"), work / "repo")
    sh(work, "git", "init", "-q", "--bare", "-b", "main", str(work / "origin.git"))
    sh(root, "git", "remote", "add", "origin", str(work / "origin.git"))
    sh(root, "dvc", "remote", "add", "-d", "store", str(work / "dvc-store"))
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "smoke results, remotes")
    sh(root, "git", "push", "-q", "origin", "main")
    return root


def sweep_cmd(name: str, values, *extra: str) -> list[str]:
    return ["replab", "sweep", "split_vae", f"c2={','.join(map(str, values))}",
            *(arg for item in FIXED for arg in ("--set", item)), "--executor", "slurm", "--name", name,
            "--cpus-per-task", "1", "--time", "20:00", "--collect", "--timeout", "900", *extra]


def exp_show(repo: Path) -> dict[str, dict[str, str]]:
    """The rows of `dvc exp show --csv` by experiment name (the baseline rows have none)."""
    rows = csv.DictReader(io.StringIO(sh(repo, "dvc", "exp", "show", "--csv").stdout))
    return {row["Experiment"]: row for row in rows if row["Experiment"]}


@pytest.fixture(scope="module")
def swept(repo, env):
    started = time.monotonic()
    result = sh(repo, *sweep_cmd("c2", GRID), check=False)
    return result, time.monotonic() - started


def logs(repo: Path, name: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((repo / ".dvc/tmp/slurm" / name / "logs").glob("*.log"))}


@pytest.mark.slow
def test_slurm_sweep_runs_each_point_in_its_own_clone_and_collects_the_good_ones(repo, env, swept):
    result, seconds = swept
    logged = logs(repo, "c2")
    assert result.returncode == 2 and "sweep c2: 1 of 3 grid points failed: c2-3 " in result.stderr, (
        f"after {seconds:.0f} s:\n{result.stdout}\n{result.stderr}\n"
        + "\n".join(f"--- {k}\n{v[-3000:]}" for k, v in logged.items()))
    names = [f"c2-{i}" for i in range(1, len(GOOD) + 1)]
    record = json.loads((repo / ".dvc/tmp/slurm/c2/sweep.json").read_text())
    data_job, array_job = (job["id"] for job in record["jobs"])
    assert record["jobs"][1]["indices"] == [1, 2, 3]
    # every array task ran in its own clone of the commit, on that clone's code; the good ones succeeded (their
    # own exit status)
    head = sh(repo, "git", "rev-parse", "HEAD").stdout.strip()
    for i in range(1, len(GRID) + 1):
        log = logged[f"{i}-{array_job}.log"]
        clone = f"{env['TMPDIR']}/replab-c2-{i}-"
        assert f"commit {head[:7]} in {clone}" in log and f"code from {clone}" in log, log[:2000]
        assert f"grid point {i}: c2-{i} -S profile=smoke" in log
        assert "Running stage 'train_split_vae@exp1-0'" in log
    for i in range(1, len(GOOD) + 1):
        assert (repo / f".dvc/tmp/slurm/c2/status/{i}-{array_job}").read_text().strip() == "0"
        assert "Running stage 'report'" in logged[f"{i}-{array_job}.log"]
    assert not list(Path(env["TMPDIR"]).glob("replab-c2-*"))  # clones removed, the failed one's too
    # the data was prepared once, by the data job; every task found it in the shared cache's run cache
    data_log = logged[f"data-{data_job}.log"]
    assert "Running stage 'prepare@writers'" in data_log
    for i in range(1, len(GRID) + 1):
        log = logged[f"{i}-{array_job}.log"]
        assert "Running stage 'prepare@" not in log and "Running stage 'download@" not in log
        assert "Stage 'prepare@writers' is cached - skipping run, checking out outputs" in log
    # the good ones pulled into the submitting repository: dvc exp show lists them with their params and metrics
    shown = exp_show(repo)
    assert {n: float(shown[n]["split_vae.c2"]) for n in names} == dict(zip(names, GOOD))
    assert all(shown[n]["metrics/split_vae.json:run.torch"] for n in names)
    losses = {float(shown[n]["exp1.train_loss.mean"]) for n in names}
    assert len(losses) == len(GOOD)  # each run's own metrics: c2 weighs a term of the training loss
    # ... and `replab compare` printed them beside the baseline
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]  # header and rows
    assert [line.split("|")[1].strip() for line in table[1:]] == ["main", *names]
    print(f"SLURM sweep of {len(GRID)} points: {seconds:.0f} s")


@pytest.mark.slow
def test_slurm_sweep_names_the_failed_point_and_its_log(repo, env, swept):
    result, _ = swept
    record = json.loads((repo / ".dvc/tmp/slurm/c2/sweep.json").read_text())
    array_job = record["jobs"][1]["id"]
    log = repo / f".dvc/tmp/slurm/c2/logs/3-{array_job}.log"
    assert result.returncode == 2, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: sweep c2: 1 of 3 grid points failed: c2-3 (split_vae.c2=3e38) log {log} "), last
    assert "--only-failed" in last
    assert re.search(rf"^--- c2-3 \(split_vae.c2=3e38\): exit status [1-9][0-9]*; log: {re.escape(str(log))}$",
                     result.stderr, re.M), result.stderr
    assert (repo / f".dvc/tmp/slurm/c2/status/3-{array_job}").read_text().strip() not in ("", "0")
    cause = "loss is inf at iteration"
    assert cause in log.read_text() and cause in result.stderr  # the cause, in the log's tail
    assert "c2-3" not in exp_show(repo)
    # resubmitting only the failed point: an array of that point alone
    again = sh(repo, "replab", "sweep", "split_vae", "--executor", "slurm", "--name", "c2", "--only-failed",
               "--dry-run")
    assert "#SBATCH --array=3\n" in again.stdout and "3) point=(" in again.stdout and "1) point=(" not in again.stdout
