"""`replab sweep <paper> key=v1,v2 … --executor slurm`: a param grid as one SLURM job array.

    replab sweep aae_ssl lambda_rec=1,3,7,10 --executor slurm --partition cpu --cpus-per-task 4 --time 2:00:00
    replab sweep aae_ssl lambda_rec=1,3 --executor slurm --partition gpu --gres gpu:1 --name rec --collect
    replab sweep aae_ssl --executor slurm --name rec --collect        # later: wait, pull, compare, name failures
    replab sweep aae_ssl --executor slurm --name rec --only-failed    # resubmit only the failed grid points

Two `sbatch` jobs per submission, both plain bash scripts kept (with their logs) under
`.dvc/tmp/slurm/<name>/`:

1. the data job: in its own clone of the submitting commit, `replab compose` + `dvc repro prepare` once per
   distinct data configuration of the grid, into the shared DVC cache (`dvc cache dir`, `cache.shared group`).
   DVC's run cache lives in that cache, so the grid's runs check the prepared data out instead of preparing it;
2. the job array, `--dependency=afterok:<data job>`: task i clones the submitting commit into scratch space,
   runs `dvc exp run -n <name>-<i> -S profile=<p> -S key=value …` on the clone's own code, `dvc exp push`es
   the experiment to the Git remote (its outputs to the DVC remote, when one is configured) and removes the
   clone. Each task records its exit status beside its log, so `--collect` can name every failed grid point
   and its log without SLURM accounting (`sacct`/`scontrol` fill in for tasks that never wrote one).

The grid is the queue executor's (replab.compare.expand_grid): the same keys, values and overrides. Everything
the jobs touch must be on a file system the compute nodes share: this repository, the DVC cache and the Python
environment; the scratch directory (`--scratch`, default `$TMPDIR` or /tmp on the node) need not be.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replab.compare import check_clean, check_name, check_timeout, compare, plan_grid, point_params
from replab.io import DataError, atomic_path, read_json
from replab.params import ParamError

SWEEPS_DIR = Path(".dvc/tmp/slurm")  # git-ignored (.dvc/.gitignore: /tmp)
MANIFEST = "sweep.json"
DONE = "done"  # collect: every job of the sweep has left the queue


# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
# days-hours:minutes:seconds; UNLIMITED / INFINITE for no limit
TIME = re.compile(r"\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2}|(?i:unlimited|infinite)")
PARTITION = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")
# --scratch: an absolute path on the node, or one that starts with an environment variable set there ($TMPDIR);
# it is written into the job scripts inside double quotes, so no quote, backslash or command substitution
SCRATCH = re.compile(r"(/|\$[A-Za-z_]|\$\{[A-Za-z_])[^\"`\\\n]*")


def check_scratch(scratch: str | None) -> str | None:
    """`scratch` unless it is not an absolute path on the nodes (a relative one would be cloned into and then
    never removed: each job's cleanup runs `cd /` first); a ParamError line otherwise."""
    if scratch is not None and (not SCRATCH.fullmatch(scratch) or "$(" in scratch or "/../" in f"{scratch}/"):
        raise ParamError(f"sweep --scratch {scratch!r}: allowed: an absolute path on the nodes (e.g. /scratch/x), "
                         "or one starting with an environment variable of the job ($TMPDIR/x); no quotes, "
                         "backslashes, `..` or $(...)")
    return scratch


@dataclass(frozen=True)
class Resources:
    """What each job asks SLURM for (`sbatch` options); None leaves the cluster's default."""

    partition: str | None = None
    time: str | None = None  # SLURM's formats: minutes, H:MM:SS, D-HH:MM:SS
    cpus_per_task: int | None = None
    gres: str | None = None  # e.g. gpu:1 (array tasks only: the data job needs no GPU)

    def __post_init__(self) -> None:
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ParamError(f"sweep --cpus-per-task {self.cpus_per_task}: allowed: an integer >= 1")
        for key in ("partition", "time", "gres"):
            value = getattr(self, key)
            if value is not None and (not value.strip() or any(c.isspace() for c in value)):
                raise ParamError(f"sweep --{key.replace('_', '-')} {value!r}: allowed: one word without spaces")
        if self.time is not None and not TIME.fullmatch(self.time):
            raise ParamError(f"sweep --time {self.time!r}: allowed: SLURM's time formats MM, MM:SS, HH:MM:SS, "
                             "D-HH, D-HH:MM, D-HH:MM:SS (non-negative integers), or UNLIMITED")
        if self.partition is not None and not PARTITION.fullmatch(self.partition):
            raise ParamError(f"sweep --partition {self.partition!r}: allowed: partition names of letters, digits and "
                             "_ . - (several separated by commas)")

    def directives(self, gpu: bool = True) -> list[str]:
        options = [("partition", self.partition), ("time", self.time), ("cpus-per-task", self.cpus_per_task)]
        if gpu:
            options.append(("gres", self.gres))
        return [f"#SBATCH --{key}={value}" for key, value in options if value is not None]


@dataclass
class Sweep:
    """One submission: what the scripts run and where they report (stored as sweep.json)."""

    paper: str
    name: str
    commit: str
    repo: str  # absolute path of the submitting repository (the tasks clone it)
    cache: str  # the shared DVC cache directory
    git_remote: str  # URL the tasks push experiments to, and collect pulls them from
    dvc_remote: bool  # a default DVC remote is configured: outputs travel with `dvc exp push/pull`
    profile: str
    fixed: list[str]
    points: list[list[str]]  # grid point i (1-based) is points[i - 1]
    data: list[list[str]]  # the data-changing overrides of each distinct data configuration (data job)
    scratch: str = "${TMPDIR:-/tmp}"
    python_env: str | None = None  # a virtual environment to activate in each job
    jobs: list[dict[str, Any]] = field(default_factory=list)  # submitted: {kind, id, indices}

    @property
    def directory(self) -> Path:
        return Path(self.repo) / SWEEPS_DIR / self.name

    def experiment(self, index: int) -> str:
        return f"{self.name}-{index}"

    def overrides(self, index: int) -> list[str]:
        """The `-S` values of grid point `index` (1-based), exactly as the queue executor passes them."""
        return [f"profile={self.profile}", *self.fixed, *self.points[index - 1]]

    def log(self, kind: str, job_id: str, index: int | None = None) -> Path:
        return self.directory / "logs" / (f"{index}-{job_id}.log" if kind == "array" else f"data-{job_id}.log")

    def status_file(self, kind: str, job_id: str, index: int | None = None) -> Path:
        return self.directory / "status" / (f"{index}-{job_id}" if kind == "array" else f"data-{job_id}")


# ---------------------------------------------------------------- the job scripts


def _q(value: str) -> str:
    return shlex.quote(str(value))


def _setup(sweep: Sweep, work: str) -> list[str]:
    """Bash lines every job runs first: environment, its own clone of the commit on scratch, the shared cache,
    and the clone's code ahead of any installed replab."""
    lines = []
    if sweep.python_env:
        lines.append(f"source {_q(Path(sweep.python_env) / 'bin' / 'activate')}")
    lines += [
        f'git clone -q --no-checkout {_q(sweep.repo)} "{work}"',
        f'cd "{work}"',
        f"git checkout -q --detach {sweep.commit}",
        f"git remote set-url origin {_q(sweep.git_remote)}",
        f"dvc cache dir --local {_q(sweep.cache)}",
        "dvc config --local cache.shared group",
        '# the clone\'s code, whatever replab the environment has installed',
        f'export PYTHONPATH="{work}/src${{PYTHONPATH:+:$PYTHONPATH}}"',
        'echo "replab: $(hostname): commit $(git rev-parse --short HEAD) in $PWD, code from '
        '$(python -c "import replab; print(replab.__file__)")"',
    ]
    return lines


def _script(header: list[str], status: str, work: str, body: list[str], sweep: Sweep) -> str:
    return "\n".join([
        "#!/bin/bash",
        *header,
        "set -euo pipefail",
        f'work="{work}"',
        f'status="{status}"',
        # the exit status beside the log, whatever ends the job (failed command, scancel, time limit)
        'finish() { rc=$?; cd /; rm -rf "$work"; echo "$rc" > "$status"; echo "replab: exit status $rc"; }',
        "trap finish EXIT",
        "trap 'exit 143' TERM",
        *_setup(sweep, "$work"),
        *body,
        "",
    ])


def data_script(sweep: Sweep, resources: Resources) -> str:
    """The first job: download + prepare each distinct data configuration of the grid once."""
    header = [f"#SBATCH --job-name={sweep.name}-data",
              f"#SBATCH --output={sweep.directory / 'logs' / 'data-%j.log'}", *resources.directives(gpu=False)]
    body = []
    for i, overrides in enumerate(sweep.data, 1):
        body += [f"echo 'replab: data configuration {i} of {len(sweep.data)}'",
                 shlex.join(["replab", "compose", f"profile={sweep.profile}", *sweep.fixed, *overrides]),
                 "dvc repro prepare"]
    return _script(header, str(sweep.status_file("data", "$SLURM_JOB_ID")),
                   f"{sweep.scratch}/replab-{sweep.name}-data-$SLURM_JOB_ID", body, sweep)


def array_script(sweep: Sweep, resources: Resources, indices: Sequence[int]) -> str:
    """The job array: task i runs grid point i as experiment <name>-<i> and pushes it."""
    header = [f"#SBATCH --job-name={sweep.name}", f"#SBATCH --array={array_spec(indices)}",
              f"#SBATCH --output={sweep.directory / 'logs' / '%a-%A.log'}", *resources.directives()]
    push = ["dvc", "exp", "push", *([] if sweep.dvc_remote else ["--no-cache"]), "origin"]
    cases = [f"  {i}) point=({' '.join('-S ' + _q(o) for o in sweep.overrides(i))}) ;;" for i in indices]
    body = [
        'case "$SLURM_ARRAY_TASK_ID" in', *cases,
        '  *) echo "replab: no grid point $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac",
        f'echo "replab: grid point $SLURM_ARRAY_TASK_ID: {sweep.name}-$SLURM_ARRAY_TASK_ID ${{point[*]}}"',
        f'dvc exp run -n "{sweep.name}-$SLURM_ARRAY_TASK_ID" "${{point[@]}}"',
        f'{shlex.join(push)} "{sweep.name}-$SLURM_ARRAY_TASK_ID"',
    ]
    status = str(sweep.status_file("array", "$SLURM_ARRAY_JOB_ID", "$SLURM_ARRAY_TASK_ID"))
    return _script(header, status, f"{sweep.scratch}/replab-{sweep.name}-$SLURM_ARRAY_TASK_ID-$SLURM_JOB_ID",
                   body, sweep)


def array_spec(indices: Sequence[int]) -> str:
    """[1, 2, 3, 5] → '1-3,5' (sbatch --array)."""
    runs, ordered = [], sorted(set(indices))
    for i in ordered:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# ---------------------------------------------------------------- planning a submission


def _git(*args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and result.returncode:
        raise DataError(f"`git {shlex.join(args)}` failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout.strip()


def _dvc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], capture_output=True, text=True)


def git_remote_url(remote: str, root: Path) -> str:
    """The URL of a Git remote; a local path becomes absolute (the tasks run in other directories)."""
    url = _git("remote", "get-url", remote, check=False)
    if not url:
        raise DataError(f"sweep: Git remote {remote!r}: not configured (the tasks push their experiments there; "
                        f"`git remote add {remote} <url>`, or --git-remote NAME)")
    local = root / Path(url).expanduser()  # an absolute path stays itself
    return str(local.resolve()) if "://" not in url and ":" not in url.split("/")[0] and local.exists() else url


def _data_key(profile: str, overrides: Sequence[str], out: Path) -> str:
    """The composed `datasets` list and `data` section (what the download/prepare stages read) as one string."""
    params = point_params(out, profile, overrides)
    return json.dumps([params.get("datasets"), params.get("data")], sort_keys=True)


def data_configurations(points: list[list[str]], profile: str, fixed: Sequence[str]) -> list[list[str]]:
    """The distinct data configurations of a grid, each as the point overrides that change the data (composed
    as `dvc exp run -S` does: an override matters when it changes the `datasets` list or the `data` section).
    Only those go to the data job, so a point that fails for other reasons fails in its own task."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        base = _data_key(profile, fixed, out)
        values = dict.fromkeys(o for point in points for o in point)
        relevant = {o: _data_key(profile, [*fixed, o], out) != base for o in values}
    configs = dict.fromkeys(tuple(o for o in point if relevant[o]) for point in points)
    return [list(c) for c in configs]


def plan(paper: str, grid: Sequence[str], profile: str | None, fixed: Sequence[str], name: str | None,
         git_remote: str = "origin", scratch: str | None = None) -> Sweep:
    profile, fixed, points = plan_grid(paper, grid, profile, fixed)
    name = check_name(name or f"{paper}-{datetime.now():%m%d-%H%M%S}")
    root = Path(_git("rev-parse", "--show-toplevel"))
    cache = _dvc("cache", "dir")
    if cache.returncode:
        raise DataError(f"sweep: `dvc cache dir` failed: {cache.stderr.strip()} (run in the DVC repository)")
    env = sys.prefix if sys.prefix != sys.base_prefix else None
    return Sweep(paper=paper, name=name, commit=_git("rev-parse", "HEAD"), repo=str(root),
                 cache=str(Path(cache.stdout.strip()).resolve()), git_remote=git_remote_url(git_remote, root),
                 dvc_remote=bool(_dvc("remote", "default").stdout.strip()), profile=profile, fixed=fixed,
                 points=points, data=data_configurations(points, profile, fixed),
                 scratch=scratch or "${TMPDIR:-/tmp}", python_env=env)


# ---------------------------------------------------------------- submitting


def _sbatch(script: Path, *options: str) -> str:
    try:
        result = subprocess.run(["sbatch", "--parsable", *options, str(script)], capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError("sweep --executor slurm: `sbatch` not found (run on a SLURM login node, or use the "
                        "queue executor)") from None
    if result.returncode:
        raise DataError(f"`sbatch {script}` failed: {' '.join((result.stderr or result.stdout).split())}")
    job = result.stdout.strip().split(";")[0]
    if not job.isdigit():
        raise DataError(f"`sbatch {script}` printed no job id: {' '.join(result.stdout.split())[:200]!r}")
    return job


def save(sweep: Sweep) -> None:
    path = sweep.directory / MANIFEST
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(asdict(sweep), indent=1) + "\n")


def load(name: str) -> Sweep:
    path = Path(_git("rev-parse", "--show-toplevel")) / SWEEPS_DIR / check_name(name) / MANIFEST
    if not path.is_file():
        known = sorted(p.parent.name for p in path.parents[1].glob(f"*/{MANIFEST}"))
        raise DataError(f"{path}: no SLURM sweep named {name!r} here (sweeps: {', '.join(known) or 'none'})")
    return Sweep(**read_json(path))


def submit(sweep: Sweep, resources: Resources, indices: Sequence[int] | None = None,
           dry_run: bool = False) -> Sweep:
    """Write the two scripts, `sbatch` the data job and the array (afterok); print what was submitted."""
    indices = list(indices or range(1, len(sweep.points) + 1))
    scripts = {"data": data_script(sweep, resources), "array": array_script(sweep, resources, indices)}
    attempt = sum(job["kind"] == "array" for job in sweep.jobs) + 1
    paths = {kind: sweep.directory / f"{kind}-{attempt}.sh" for kind in scripts}
    if dry_run:
        for kind, text in scripts.items():
            print(f"# ---- {paths[kind]}\n{text}")
        print(f"# sbatch --parsable {paths['data']}\n"
              f"# sbatch --parsable --dependency=afterok:<data job> --kill-on-invalid-dep=yes {paths['array']}")
        return sweep
    created = not sweep.directory.exists()
    jobs = list(sweep.jobs)
    try:
        for sub in ("logs", "status"):
            (sweep.directory / sub).mkdir(parents=True, exist_ok=True)
        for kind, text in scripts.items():
            with atomic_path(paths[kind], suffix=".sh") as tmp:
                tmp.write_text(text)
        data_id = _sbatch(paths["data"])
        try:
            array_id = _sbatch(paths["array"], f"--dependency=afterok:{data_id}", "--kill-on-invalid-dep=yes")
        except BaseException:
            subprocess.run(["scancel", data_id], capture_output=True)  # a data job for no array
            raise
    except BaseException:  # nothing submitted: remove what this submission wrote
        if created:
            shutil.rmtree(sweep.directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # .dvc/tmp/slurm, when this was its first sweep
                sweep.directory.parent.rmdir()
        else:
            for path in paths.values():
                path.unlink(missing_ok=True)
        sweep.jobs[:] = jobs
        raise
    sweep.jobs.append({"kind": "data", "id": data_id, "indices": []})
    sweep.jobs.append({"kind": "array", "id": array_id, "indices": indices})
    save(sweep)
    print(f"submitted data job {data_id} ({len(sweep.data)} data configuration(s)) and job array "
          f"{array_id} ({len(indices)} grid points, afterok:{data_id}) at commit {sweep.commit[:7]}")
    for i in indices:
        print(f"  {sweep.experiment(i)}: {' '.join(sweep.points[i - 1])}  log: {sweep.log('array', array_id, i)}")
    print(f"scripts, logs: {sweep.directory}\n"
          f"collect: replab sweep {sweep.paper} --executor slurm --name {sweep.name} --collect")
    return sweep


# ---------------------------------------------------------------- collecting


def queued(job_ids: Sequence[str]) -> set[str]:
    """Which of these jobs (array job ids count for all their tasks) `squeue` still lists."""
    try:
        result = subprocess.run(["squeue", "--me", "-h", "-o", "%F %i"], capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError("`squeue` not found: collect a SLURM sweep on a node of its cluster") from None
    if result.returncode:
        raise DataError(f"`squeue` failed: {(result.stderr or result.stdout).strip()}")
    listed = {word for line in result.stdout.splitlines() for word in line.split()}
    return {j for j in job_ids if j in listed}


def _output(cmd: list[str]) -> str:
    """A SLURM query's stdout; empty when it failed or the tool is missing (a login node without accounting)."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return "" if result.returncode else result.stdout


def slurm_state(job: str) -> str | None:
    """A finished job's state from accounting (`sacct`), or from the controller's memory (`scontrol`)."""
    accounted = _output(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"]).split()
    if accounted:
        return accounted[0]
    for word in _output(["scontrol", "-o", "show", "job", job]).split():
        if word.startswith("JobState="):
            return word.partition("=")[2]
    return None


def task_states(sweep: Sweep) -> dict[int, dict[str, Any]]:
    """{grid index: {state: success | failed | pending, detail, log}} from the latest attempt of each point."""
    states: dict[int, dict[str, Any]] = {}
    data_job = None
    for job in sweep.jobs:
        if job["kind"] == "data":
            data_job = job["id"]
            continue
        for i in job["indices"]:
            log = sweep.log("array", job["id"], i)
            status = sweep.status_file("array", job["id"], i)
            if status.is_file():
                code = status.read_text().strip()
                state = {"state": "success" if code == "0" else "failed", "detail": f"exit status {code}"}
            else:
                slurm = slurm_state(f"{job['id']}_{i}") or "no status"
                data_status = sweep.status_file("data", data_job) if data_job else None
                if data_status and data_status.is_file() and data_status.read_text().strip() != "0":
                    slurm = (f"not run: the data job {data_job} failed (exit status "
                             f"{data_status.read_text().strip()}; log {sweep.log('data', data_job)})")
                    log = sweep.log("data", data_job)
                state = {"state": "failed", "detail": slurm}
            states[i] = {**state, "log": str(log), "job": job["id"]}
    return states


def wait(sweep: Sweep, timeout: float | None = None, poll: float = 10.0) -> None:
    ids = [job["id"] for job in sweep.jobs]
    started = time.monotonic()
    while pending := queued(ids):
        if timeout is not None and time.monotonic() - started > timeout:
            raise DataError(f"sweep {sweep.name}: jobs {', '.join(sorted(pending))} still queued or running after "
                            f"{timeout:.0f} s (`squeue -j {','.join(sorted(pending))}`; collect again later)")
        time.sleep(poll)


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def collect(sweep: Sweep, timeout: float | None = None, poll: float = 10.0) -> dict[int, dict[str, Any]]:
    """Wait for every job of the sweep, `dvc exp pull` the experiments that succeeded, print `replab compare`
    for them, and name each failed grid point with its log. Raises DataError when any point failed."""
    wait(sweep, timeout, poll)
    states = task_states(sweep)
    done = [sweep.experiment(i) for i, s in sorted(states.items()) if s["state"] == "success"]
    failed = {i: s for i, s in sorted(states.items()) if s["state"] != "success"}
    if done:
        pull = ["exp", "pull", *([] if sweep.dvc_remote else ["--no-cache"]), sweep.git_remote, *done]
        result = _dvc(*pull)
        if result.returncode:
            raise DataError(f"`dvc {shlex.join(pull)}` failed: {(result.stderr or result.stdout).strip()}")
        print(f"pulled {len(done)} experiments from {sweep.git_remote}", flush=True)
        other_commit = _git("rev-parse", "HEAD") != sweep.commit
        compare(sweep.paper, done, baseline=not other_commit, all_commits=other_commit)
    for i, state in failed.items():
        print(f"--- {sweep.experiment(i)} ({' '.join(sweep.points[i - 1])}): {state['detail']}; "
              f"log: {state['log']}\n{_tail(state['log'])}", file=sys.stderr)
    if failed:
        raise DataError(f"sweep {sweep.name}: {len(failed)} of {len(states)} grid points failed: "
                        + "; ".join(f"{sweep.experiment(i)} ({' '.join(sweep.points[i - 1])}) log {s['log']}"
                                    for i, s in failed.items())
                        + f" (resubmit them: replab sweep {sweep.paper} --executor slurm --name {sweep.name} "
                        "--only-failed)")
    return states


# ---------------------------------------------------------------- the command


def sweep(paper: str, grid: Sequence[str], profile: str | None = None, fixed: Sequence[str] = (),
          name: str | None = None, resources: Resources = Resources(), dry_run: bool = False,
          collect_results: bool = False, only_failed: bool = False, allow_dirty: bool = False,
          git_remote: str = "origin", scratch: str | None = None, timeout: float | None = None,
          poll: float = 10.0) -> Sweep:
    """Submit a grid (or, with no grid and a name, collect / resubmit an earlier sweep)."""
    check_timeout(timeout)
    check_scratch(scratch)
    if only_failed or (collect_results and not grid):
        if grid:
            raise ParamError("sweep --only-failed: give --name of an earlier sweep, not a grid")
        if not name:
            raise ParamError("sweep: --collect without a grid / --only-failed need --name <earlier sweep>")
        earlier = load(name)
        if earlier.paper != paper:
            raise ParamError(f"sweep {name!r} is of paper {earlier.paper!r}, not {paper!r}")
        if only_failed:
            wait(earlier, timeout=0)  # resubmitting a point that may still succeed would run it twice
            failed = [i for i, s in task_states(earlier).items() if s["state"] != "success"]
            if not failed:
                print(f"sweep {name}: no failed grid points")
                return earlier
            submit(earlier, resources, failed, dry_run)
        if collect_results and not dry_run:
            collect(earlier, timeout, poll)
        return earlier
    if not grid:
        raise ParamError("sweep: give the grid as key=v1,v2,... (or --name with --collect / --only-failed)")
    planned = plan(paper, grid, profile, fixed, name, git_remote, scratch)
    if not dry_run:
        if not allow_dirty:
            check_clean(planned.repo, committed=True)
        if (planned.directory / MANIFEST).exists():
            raise ParamError(f"sweep --name {planned.name}: already used ({planned.directory}); choose another")
    submit(planned, resources, dry_run=dry_run)
    if collect_results and not dry_run:
        collect(planned, timeout, poll)
    return planned
