"""`replab sweep` and `replab compare`: queue a param grid of one paper as DVC experiments, and set chosen
experiments of one paper side by side.

    replab sweep aae_ssl lambda_rec=1,3,7,10 --profile quick           # 4 queued `dvc exp run`s
    replab sweep aae_ssl lambda_rec=1,7 lambda_reg=0.5,1 --run -j 2    # 2×2 grid, run 2 at a time, wait
    replab compare aae_ssl rec-1 rec-2 --baseline --format md          # Markdown (or csv) table

Both sit on plain DVC: a sweep is one `dvc exp run --queue -S profile=<p> -S key=value …` per grid point
(printed, so it can be replayed by hand or sharded across machines), `--run` is `dvc queue start -j N` plus
polling `dvc queue status`. `compare` resolves names through `dvc exp show --json` and reads each
experiment's params.yaml and metrics/<paper>.json from its Git commit, so it also shows the experiments
pulled from other machines (`dvc exp pull`) and the values `dvc exp show` leaves out (lists).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replab.io import DataError, finite, is_leftover, number_text, read_json
from replab.params import (
    PARAMS_FILE,
    ParamError,
    check_meta_profile,
    check_profile,
    check_profile_files,
    check_writable,
    meta_profile,
    read_params,
    shown,
)

QUEUE_DONE = {"Success", "Failed"}
NOT_LISTED = "not listed"  # a name `dvc queue status` leaves out
WORKER_LOGS = ".dvc/tmp/exps/celery/dvc-exp-worker-*.out"
REFERENCE_KEYS = re.compile(r"^(paper_|article_)")  # the papers' own numbers, the same in every experiment


def _papers() -> tuple[str, ...]:
    from replab.papers import PAPERS

    return PAPERS


def _check_paper(paper: str) -> None:
    if paper not in _papers():
        raise ParamError(f"paper {paper!r}: unknown (allowed: {', '.join(_papers())})")


def run_detached(cmd: Sequence[str], cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """`cmd` for a command that leaves processes running (`dvc queue start`'s workers), stdout and stderr together
    in `.stdout`: its output goes through a temporary file, not pipes, which the workers would inherit and hold
    open, so that waiting for the pipes' end waited for the whole queue (and `--run` said nothing until every
    experiment had finished), forever when a worker does not exit (treeverse/dvc#10398)."""
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.run(list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              text=True).returncode
        out.seek(0)
        return subprocess.CompletedProcess(list(cmd), code, out.read(), "")


def _dvc(*args: str, check: bool = True, detached: bool = False) -> subprocess.CompletedProcess:
    """`dvc <args>`, its output captured; DataError with its last line if it fails (`check`). `detached`: through
    `run_detached`."""
    if detached:
        result = run_detached(["dvc", *args])
    else:
        result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if check and result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise DataError(f"`dvc {shlex.join(args)}` failed: {lines[-1]}")
    return result


def _read_params(path: str | Path = PARAMS_FILE) -> dict:
    return read_params(path) if Path(path).exists() else {}


# ---------------------------------------------------------------- sweep


def split_values(raw: str, key: str = "") -> list[str]:
    """`1,3,7` → ['1', '3', '7']; commas inside [...] or {...} belong to the value (`[100,600],[1000]`). A
    ParamError naming `key` (the grid's key) when a value is empty or a bracket is unclosed."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(raw):
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(raw[start:i].strip())
            start = i + 1
    values.append(raw[start:].strip())
    if any(v == "" for v in values) or depth != 0:
        named = f"{key}=" if key else ""
        raise ParamError(f"sweep {named}{raw}: expected {named}v1,v2,... (no empty value; lists in brackets, closed)")
    return values


def qualify(paper: str, key: str, top_level: Sequence[str]) -> str:
    """A key relative to the paper's section (`lambda_rec`, `exp2.epochs`) or a full dotted key
    (`aae_ssl.lambda_rec`, `runtime.threads`, `images`) → the full key."""
    head = key.split(".")[0]
    if head == paper or head in top_level:
        return key
    return f"{paper}.{key}"


def _missing(params: dict, key: str) -> tuple[str, list[str]] | None:
    """None when the dotted `key` is in `params`; else (the part of it that is, the keys allowed after that)."""
    node: Any = params
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            return ".".join(parts[:i]), sorted(node) if isinstance(node, dict) else []
        node = node[part]
    return None


def full_key(paper: str, item: str, params: dict | None = None) -> tuple[str, str]:
    """'lambda_rec=1,7' → ('aae_ssl.lambda_rec', '1,7'); with `params` (params.yaml) the key must exist."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ParamError(f"sweep {item!r}: expected key=value (grid: key=v1,v2,...)")
    top_level = [k for k in (params or {}) if k != paper] or ["runtime", "data", "images", "meta", "datasets"]
    if key.strip() == "profile":  # Hydra's group, no params.yaml key: every point of a sweep composes one profile
        raise ParamError(f"sweep {item}: the profile is chosen with --profile (one per sweep; default: params.yaml's "
                         "meta.profile), not as a grid or --set key")
    full = qualify(paper, key.strip(), top_level)
    section = full.partition(".")[0]
    if section != paper and section in _papers():  # `sweep attention_vat aae_ssl.lr=…` queued aae_ssl's sweep
        raise ParamError(f"sweep {paper} {item}: {full} is {section}'s (allowed: {paper}'s keys and the shared "
                         "sections runtime, data, images, datasets; sweep that paper for its keys)")
    if params and (missing := _missing(params, full)):
        where, allowed = missing
        within = f" under {where}" if where else ""
        listed = f"; allowed{within}: {', '.join(allowed)}" if allowed else f"; {where} holds no keys"
        raise ParamError(f"{PARAMS_FILE}: {full}: no such key (sweep keys are relative to `{paper}:` "
                         f"or full dotted keys{listed})")
    return full, raw


def expand_grid(paper: str, assignments: Sequence[str], params: dict | None = None) -> list[list[str]]:
    """['lambda_rec=1,7', 'lambda_reg=0.5,1'] → the cartesian product as Hydra overrides per point:
    [['aae_ssl.lambda_rec=1', 'aae_ssl.lambda_reg=0.5'], ['aae_ssl.lambda_rec=1', 'aae_ssl.lambda_reg=1'], ...].
    With `params` (params.yaml), every key must exist there."""
    axes = []
    for item in assignments:
        full, raw = full_key(paper, item, params)
        values = split_values(raw, full)
        if len(set(values)) != len(values):
            raise ParamError(f"sweep {item!r}: values must be distinct (a repeated value queues the same run twice)")
        axes.append([f"{full}={value}" for value in values])
    return [list(point) for point in itertools.product(*axes)]


def plan_grid(paper: str, grid: Sequence[str], profile: str | None = None,
              fixed: Sequence[str] = ()) -> tuple[str, list[str], list[list[str]]]:
    """(profile, fixed overrides, grid points) of a sweep, checked against params.yaml; the profile defaults to
    params.yaml's meta.profile. Shared by the queue and SLURM executors."""
    _check_paper(paper)
    params = _read_params()
    if profile is not None:
        check_profile(profile, f"sweep --profile {profile}")
    else:
        check_meta_profile(params)
    profile = profile or meta_profile(params) or "quick"
    fixed = ["=".join(full_key(paper, item, params)) for item in fixed]
    keys = [o.partition("=")[0] for o in fixed] + [full_key(paper, item, params)[0] for item in grid]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # the last override wins: the earlier values would be queued and silently not run
        raise ParamError(f"sweep: {repeated[0]} given twice (grid and --set keys must each appear once)")
    points = expand_grid(paper, grid, params)
    check_points(profile, fixed, points)
    return profile, fixed, points


def point_params(out: Path, profile: str, overrides: Sequence[str]) -> dict:
    """params.yaml of one sweep point, written at `out` as its `dvc exp run -S` will write it (composed from conf/
    with `profile=<profile>` first; params.yaml with the overrides applied where there is no conf/), and read back.
    ParamError, one line, when the overrides do not compose."""
    import shutil

    from dvc.utils.hydra import apply_overrides

    try:
        if Path("conf").is_dir():
            compose(out, [f"profile={profile}", *overrides], f"sweep {' '.join(overrides)}")
        else:
            read_params()  # (one line where there is none: not found, run from the repository root)
            shutil.copyfile(PARAMS_FILE, out)
            apply_overrides(out, list(overrides))
    except ParamError:
        raise
    except Exception as err:  # DVC's override parser names the override; keep it on one line
        raise ParamError(f"sweep {' '.join(overrides)}: {' '.join(str(err).split())}") from None
    return read_params(out)


def compose(out: str | Path, overrides: Sequence[str], where: str) -> None:
    """Write params.yaml composed from conf/ with Hydra `overrides` (as `dvc exp run -S` does) to `out`. Hydra's
    errors (an unknown key or profile, a bad interpolation) are one ParamError line starting with `where`."""
    from dvc.utils.hydra import compose_and_dump

    check_profile_files()  # a profile file's own faults, named by the file, before Hydra's reading of them
    for override in overrides:
        if override.startswith("profile="):
            check_profile(override.partition("=")[2], where)
    try:
        compose_and_dump(out, str(Path("conf").resolve()), None, "config", "", list(overrides))
    except Exception as err:  # Hydra's errors name the override; keep them on one line
        raise ParamError(f"{where}: conf/ does not compose: {' '.join(str(err).split())}") from None


def check_points(profile: str, fixed: Sequence[str], points: list[list[str]]) -> None:
    """Validate every param of each grid point's params.yaml (`point_params`, then `replab check`): a bad value is
    one line before anything is queued, not a failed run in a worker."""
    import tempfile

    from replab.papers import check_params

    seen: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for point in points:
            params = point_params(Path(tmp) / PARAMS_FILE, profile, [*fixed, *point])  # names the overrides itself
            where = f"sweep {' '.join(point) or '(no grid)'}"
            try:
                check_params(params)
            except ParamError as err:
                if fixed and _fails_alone(Path(tmp) / "fixed.yaml", profile, fixed, err):
                    where = f"sweep --set {' '.join(fixed)}"  # the grid's values are not at fault
                raise ParamError(f"{where}: {err}") from None
            same = seen.setdefault(json.dumps(_numbers_as_floats(params), sort_keys=True), point)
            if same is not point:  # `1,1.0` or `[100],[ 100]`: different text, one run
                raise ParamError(f"{where}: the same params.yaml as {' '.join(same)} (one run queued twice)")


def _fails_alone(out: Path, profile: str, fixed: Sequence[str], err: ParamError) -> bool:
    """Whether the `fixed` (--set) overrides alone, on the profile, fail the check as a grid point did (`err`)."""
    from replab.papers import check_params

    try:
        check_params(point_params(out, profile, list(fixed)))
    except ParamError as alone:
        return str(alone) == str(err)
    return False


def _numbers_as_floats(value: Any) -> Any:
    """`value` with every int as a float and -0.0 as 0.0: a float param's `1` and `1.0`, or `0` and `-0.0`, are the
    same run (an int param refuses 1.0, so no two distinct valid params.yaml files meet here)."""
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return float(value) + 0.0 if isinstance(value, int | float) and not isinstance(value, bool) else value


def check_name(name: str) -> str:
    """A sweep name becomes experiment names (and, on SLURM, job names and a directory): letters, digits, `_`,
    `.`, `-`."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ParamError(f"sweep --name {name!r}: allowed: letters, digits, _ . - (starting with a letter or digit)")
    return name


def check_timeout(timeout: float | None) -> float | None:
    """`sweep --timeout`: a finite number of seconds > 0, or None (wait as long as it takes)."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ParamError(f"sweep --timeout {timeout}: allowed: a number of seconds > 0")
    return timeout


def share_cpus(fixed: Sequence[str], points: list[list[str]], jobs: int, params: dict,
               cpus: int | None = None) -> list[str]:
    """`fixed`, plus `runtime.threads=<cpus ÷ jobs>` (at least 1) when `jobs` > 1 queue workers will share this
    machine's `cpus` (default: runtime.available_cpus) and neither the sweep (--set or grid) nor `params` (the
    runs' own, composed from the profile and --set: the workspace's params.yaml is not what they run) chose a thread
    count (a stage at runtime.threads: 0 would take the same share: runtime.default_threads; the
    explicit value shows in every `dvc exp run --queue` line the sweep prints). N workers with a thread per CPU each
    oversubscribe the cores, and GNU OpenMP's barriers spin while a sibling thread waits for its core: two
    smoke-profile `dvc repro -f` side by side on 2 cores took 588 s each with 2 threads, 145 s with 1."""
    keys = {o.partition("=")[0] for o in [*fixed, *itertools.chain.from_iterable(points)]}
    runtime = params.get("runtime")
    chosen = runtime.get("threads", 0) if isinstance(runtime, dict) else 0  # (a malformed one: `check` names it)
    if jobs <= 1 or "runtime.threads" in keys or chosen:
        return list(fixed)
    if cpus is None:
        from replab.runtime import available_cpus

        cpus = available_cpus()
    return [*fixed, f"runtime.threads={max(1, cpus // jobs)}"]


def queue_commands(points: list[list[str]], profile: str, fixed: Sequence[str] = (),
                   name: str | None = None) -> list[list[str]]:
    """One `dvc exp run --queue` per grid point; the profile is named in every run (Hydra recomposes
    params.yaml from conf/, starting from the default profile)."""
    commands = []
    for i, point in enumerate(points, 1):
        cmd = ["dvc", "exp", "run", "--queue"]
        if name:
            cmd += ["-n", f"{name}-{i}"]
        for override in [f"profile={profile}", *fixed, *point]:
            cmd += ["-S", override]
        commands.append(cmd)
    return commands


STATUS_TRIES = 3  # `dvc queue status` runs, STATUS_RETRY_S apart, before its failure is the sweep's
STATUS_RETRY_S = 2.0


def queue_status() -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed} from `dvc queue status`. A failed status is run again,
    up to STATUS_TRIES times: as its workers stop, DVC 3.67's status printed every run's Success and then failed
    reading a message file a stopping worker was writing (`unexpected error - Expecting value: line 1 column 1`),
    which had failed a sweep whose runs had all succeeded. DataError with its last line when every try fails."""
    for attempt in range(1, STATUS_TRIES + 1):
        result = _dvc("queue", "status", check=attempt == STATUS_TRIES)
        if not result.returncode:
            break
        time.sleep(STATUS_RETRY_S)
    status = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and re.fullmatch(r"[0-9a-f]{7,}", parts[0]):
            status[parts[1]] = parts[-1]
    return status


def wait_for_queue(names: Sequence[str], timeout: float | None = None, poll: float = 5.0,
                   grace: float = 60.0, say_every: float = 60.0) -> dict[str, str]:
    """Poll `dvc queue status` (each poll is a dvc process: keep it sparse) until every named experiment has
    finished; returns their states. A line on stderr whenever the counts change, and every `say_every` seconds
    (`sweep: 1 of 3 finished (1 Success), 2 Running, after 95 s`): the queue's runs print nothing here. A name
    missing from the queue for `grace` seconds in a row is an error: DVC's status can leave out, for a poll, a run
    that a worker is taking from the queue (Queued → Running), so one poll without it is no error."""
    started, said, last = time.monotonic(), None, -math.inf
    missing_since: dict[str, float] = {}  # name → when the polls began to leave it out
    while True:
        status = queue_status()
        states = {n: status.get(n, NOT_LISTED) for n in names}
        now = time.monotonic()
        missing_since = {n: missing_since.get(n, now) for n, s in states.items() if s == NOT_LISTED}
        counts = dict(sorted(Counter(states.values()).items()))
        if counts != said or time.monotonic() - last >= say_every:
            done = {k: v for k, v in counts.items() if k in QUEUE_DONE}
            print(f"sweep: {sum(done.values())} of {len(names)} finished"
                  + (f" ({', '.join(f'{v} {k}' for k, v in done.items())})" if done else "")
                  + "".join(f", {v} {k}" for k, v in counts.items() if k not in QUEUE_DONE)
                  + f", after {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            said, last = counts, time.monotonic()
        if all(s in QUEUE_DONE for s in states.values()):
            return states
        if gone := [n for n, since in missing_since.items() if now - since > grace]:
            raise DataError(f"sweep: {', '.join(gone)} not in `dvc queue status` for {grace:.0f} s (removed from the "
                            "queue?)")
        if timeout is not None and time.monotonic() - started > timeout:
            pending = ", ".join(f"{n} ({s})" for n, s in states.items() if s not in QUEUE_DONE)
            raise DataError(f"sweep: still pending after {timeout:.0f} s: {pending} "
                            "(see `dvc queue status`; stop with `dvc queue kill <name>`)")
        time.sleep(poll)


def failure_report(name: str, lines: int = 30) -> str:
    """The tail of a failed queued experiment's log, and where the rest is."""
    log = _dvc("queue", "logs", name, check=False)
    tail = "\n".join((log.stdout + log.stderr).strip().splitlines()[-lines:])
    return (f"--- {name}: last {lines} lines of `dvc queue logs {name}` "
            f"(Celery worker logs: {WORKER_LOGS}) ---\n{tail}")


def worker_log_sizes() -> dict[str, int]:
    """{Celery worker log: its size in bytes} now; DVC appends to these logs across sweeps."""
    return {str(log): log.stat().st_size for log in sorted(Path().glob(WORKER_LOGS))}


def collection_errors(since: dict[str, int], lines: int = 20) -> str:
    """The last 'Failed to collect experiment' traceback written to the Celery worker logs after the sizes in
    `since` (worker_log_sizes before `dvc queue start`), or ''. DVC's worker logs a failed collection and still
    reports the task as Success."""
    for log in sorted(Path().glob(WORKER_LOGS)):
        with log.open("rb") as f:
            f.seek(since.get(str(log), 0))
            text = f.read().decode(errors="replace").splitlines()
        hits = [i for i, line in enumerate(text) if "Failed to collect experiment" in line]
        if hits:
            return f"{log}:\n" + "\n".join(text[hits[-1]:hits[-1] + lines])
    return ""


def workspace_state() -> tuple[str, str]:
    """(HEAD's commit, sha256 of `git diff HEAD --binary`): what a queued or `--temp` run is given (the commit
    plus the tracked changes)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], capture_output=True)
    if head.returncode or diff.returncode:
        raise DataError(f"sweep: `git rev-parse HEAD` / `git diff HEAD` failed: {head.stderr.strip() or 'no commit?'}")
    return head.stdout.strip(), hashlib.sha256(diff.stdout).hexdigest()


def collected_names(baseline: str) -> set[str]:
    """Names of the experiments DVC has collected on the commit `baseline`: its Git refs
    refs/exps/<sha[:2]>/<sha[2:]>/<name> (what `dvc exp show` lists, read without a dvc process)."""
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", prefix], capture_output=True, text=True)
    if refs.returncode:
        raise DataError(f"sweep: `git for-each-ref {prefix}` failed: {refs.stderr.strip()}")
    return {ref[len(prefix):] for ref in refs.stdout.split()}


def run_until(cmd: Sequence[str], deadline: float | None, grace: float = 60.0) -> int | None:
    """Run `cmd` (its output straight to the terminal/log) until it exits or `deadline` (time.monotonic()) passes;
    then send its process group SIGINT, as Ctrl-C would (DVC stops the stage command and cleans up its copy), and
    SIGKILL after `grace` seconds. Returns the exit status, or None when the deadline stopped it."""
    proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: the stage command DVC starts goes too
    try:
        return proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return None


def rerun_uncollected(names: Sequence[str], commands: Sequence[Sequence[str]], queued: tuple[str, str],
                      logs: dict[str, int], deadline: float | None = None) -> None:
    """Experiments the queue reported as Success but never collected (no Git ref on the commit they were queued
    on, `queued` = workspace_state() then; seen with two workers): when HEAD and the tracked files are still as
    they were queued, run each again, one at a time, as `dvc exp run --temp` under the same name (a fresh copy of
    the same commit and changes under .dvc/tmp/exps/, collected by that process); otherwise, or if one is still
    missing, DataError naming them. `logs`: worker_log_sizes() before the queue started; `deadline`
    (time.monotonic(), from `sweep --timeout`): a rerun still going then is stopped, and DataError names the runs
    not done and their commands."""
    lost = [n for n in names if n not in collected_names(queued[0])]
    if not lost:
        return
    queued_as = dict(zip(names, commands, strict=True))
    reruns = []
    for n in lost:
        cmd = ["--temp" if arg == "--queue" else arg for arg in queued_as[n]]
        if "-n" not in cmd:
            cmd[4:4] = ["-n", n]  # after `dvc exp run --temp`: keep the name the queue gave it
        reruns.append(cmd)
    why = collection_errors(logs)
    print(f"sweep: the queue reported {', '.join(lost)} as Success but did not collect "
          f"{'it' if len(lost) == 1 else 'them'} into this repository"
          + (f"; the worker log says:\n{why}" if why else f" (no traceback in {WORKER_LOGS})"),
          file=sys.stderr, flush=True)
    if workspace_state() != queued:
        raise DataError(f"sweep: lost {', '.join(lost)}, and HEAD or the tracked files changed since they were "
                        f"queued on {queued[0][:7]}, so they are not rerun here; from that state run: "
                        + "; ".join(shlex.join(cmd) for cmd in reruns))
    for i, (n, cmd) in enumerate(zip(lost, reruns)):
        if deadline is not None and time.monotonic() >= deadline:
            code = None
        else:
            print(f"running {n} again (the same commit and changes): {shlex.join(cmd)}", file=sys.stderr, flush=True)
            code = run_until(cmd, deadline)
        if code is None:
            raise DataError(f"sweep: --timeout reached before {', '.join(lost[i:])} ran again to the end; from "
                            "that state run: " + "; ".join(shlex.join(c) for c in reruns[i:]))
        if code:
            raise DataError(f"sweep: rerunning {n} failed (exit {code}; its output is above): {shlex.join(cmd)}")
    still = [n for n in lost if n not in collected_names(queued[0])]
    if still:
        raise DataError(f"sweep: still missing from `dvc exp show` after a rerun: {', '.join(still)} "
                        f"(worker logs: {WORKER_LOGS})")


def unseen_paths(cwd: str | Path | None = None, committed: bool = False) -> list[str]:
    """Files a queued run would not see: untracked files Git does not ignore. (`dvc exp run --queue` gives each
    run the commit plus the workspace's tracked and staged changes, recorded in the experiment's commit; untracked
    files stay behind, and the run executes its own copy's code, src/replab/__main__.py.) With `committed`
    (runs that clone the commit, as SLURM tasks do), also tracked files changed or staged since HEAD."""
    paths = set(_git_paths(["ls-files", "--others", "--exclude-standard", "-z"], cwd))
    if committed:
        paths.update(_git_paths(TRACKED_CHANGES, cwd))
    return sorted(paths)


TRACKED_CHANGES = ["diff", "HEAD", "--name-only", "-z"]  # tracked files changed or staged since HEAD


def _git_paths(args: list[str], cwd: str | Path | None) -> list[str]:
    """The NUL-separated paths `git <args>` prints; DataError when git fails."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        raise DataError(f"sweep: `git {args[0]}` failed: {result.stderr.strip() or 'not a Git repository?'}")
    return [p for p in result.stdout.split("\0") if p]


def _first(paths: Sequence[str], shown: int) -> str:
    """"a, b and 3 more": the first `shown` of `paths`, the rest counted."""
    return ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


class UnseenFiles(DataError):
    """Files in the workspace that the runs a sweep starts would not see (`check_clean`)."""


def check_clean(cwd: str | Path | None = None, shown: int = 8, committed: bool = False) -> None:
    """Raise DataError naming the untracked files that queued runs would silently lack (with `committed`: every
    uncommitted change, which runs of the commit alone lack)."""
    paths = unseen_paths(cwd, committed)
    leftovers = [p for p in paths if is_leftover(p)]
    if leftovers:
        raise UnseenFiles(f"sweep: leftovers of a killed write (or of one on another host): "
                          f"{_first(leftovers, shown)} (delete them; on this host the next write of the "
                          "same file also removes them)")
    if paths:
        what = "runs of the commit would not see these uncommitted changes" if committed else \
            "queued runs would not see these untracked files"
        hint = "commit them" if committed else "`git add` or commit them"
        raise UnseenFiles(f"sweep: {what}: {_first(paths, shown)} ({hint}, or rerun with --allow-dirty)")


def note_tracked_changes(cwd: str | Path | None = None, shown: int = 8) -> None:
    """A note (stderr) naming the tracked files changed since HEAD, which every queued run takes with it: a
    previous experiment's dvc.lock and metrics left in the workspace reran its stages in each run of the sweep."""
    try:
        changed = _git_paths(TRACKED_CHANGES, cwd)
    except DataError:  # not a Git repository (a dry run may be planned anywhere): nothing to name
        return
    if changed:
        print(f"note: each queued run starts from HEAD plus the workspace's uncommitted changes to "
              f"{_first(changed, shown)} (commit them, or `git stash` to run HEAD as it is)", file=sys.stderr,
              flush=True)


def sweep(paper: str, grid: Sequence[str], profile: str | None = None, fixed: Sequence[str] = (),
          name: str | None = None, run: bool = False, jobs: int = 1, dry_run: bool = False,
          timeout: float | None = None, allow_dirty: bool = False) -> list[str]:
    """Queue the grid (print each command), optionally run the queue and wait. Returns experiment names.
    Refuses (DataError) when untracked files would be missing from the queued runs, unless `allow_dirty`."""
    from replab.runtime import available_cpus

    cpus = available_cpus()
    if not 1 <= jobs <= cpus:  # each worker is a DVC process with a training stage in it
        raise ParamError(f"sweep -j {jobs}: allowed: 1 … {cpus} queue workers (this machine's CPUs)")
    if name is not None:
        check_name(name)
    check_timeout(timeout)
    profile, fixed, points = plan_grid(paper, grid, profile, fixed)
    with tempfile.TemporaryDirectory() as tmp:  # the runs' params (recomposed from conf/ by `-S`), not the workspace's
        shared = share_cpus(fixed, points, jobs, point_params(Path(tmp) / PARAMS_FILE, profile, list(fixed)))
    if shared != fixed:
        print(f"{shared[-1]}: {jobs} queue workers share this machine's CPUs (--set runtime.threads=N to choose)",
              flush=True)
    commands = queue_commands(points, profile, shared, name)
    if not allow_dirty:
        try:
            check_clean()
        except DataError as err:  # a dry run outside a Git repository, too, only prints what it would queue
            if not dry_run:
                raise
            if isinstance(err, UnseenFiles):
                print(f"note: a real run would stop here: {err}", file=sys.stderr, flush=True)
    note_tracked_changes()
    queued = workspace_state() if run and not dry_run else ("", "")
    names = []
    for cmd in commands:
        print(shlex.join(cmd), flush=True)
        if dry_run:
            continue
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise DataError(f"`{shlex.join(cmd)}` failed: {(result.stderr or result.stdout).strip()}")
        found = re.search(r"Queued experiment '([^']+)'", result.stdout + result.stderr)
        if not found:
            raise DataError(f"`{shlex.join(cmd)}`: no experiment name in its output: {result.stdout.strip()!r}")
        names.append(found.group(1))
        print(f"  queued {names[-1]}", flush=True)
    if dry_run or not run:
        if not dry_run:
            print(f"start with: dvc queue start -j {jobs}   (then: dvc queue status, dvc queue logs <name>)")
        return names
    print(f"dvc queue start -j {jobs}", flush=True)
    logs = worker_log_sizes()
    deadline = None if timeout is None else time.monotonic() + timeout  # the queue and any reruns together
    _dvc("queue", "start", "-j", str(jobs), detached=True)
    states = wait_for_queue(names, timeout)
    failed = [n for n, s in states.items() if s != "Success"]
    for n in names:
        print(f"{n}: {states[n]}")
    if failed:
        for n in failed:
            print(failure_report(n), file=sys.stderr)
        raise DataError(f"sweep: {len(failed)} of {len(names)} experiments failed: {', '.join(failed)} "
                        f"(`dvc queue logs <name>`; worker logs {WORKER_LOGS})")
    rerun_uncollected(names, commands, queued, logs, deadline)
    print(f"compare: replab compare {paper} {' '.join(names)} --baseline")
    return names


# ---------------------------------------------------------------- compare


def list_experiments(all_commits: bool = False) -> list[dict[str, Any]]:
    """Rows of `dvc exp show --json`: {'name', 'rev', 'kind': workspace | baseline | experiment, 'baseline'}. With
    `all_commits` (-A) it first says on stderr how many commits DVC reads: over hundreds that takes minutes."""
    if all_commits:
        commits = subprocess.run(["git", "rev-list", "--count", "--all"], capture_output=True, text=True).stdout.strip()
        print(f"compare -A: reading the experiments of {commits or 'every'} commit(s) with `dvc exp show -A` (over "
              "hundreds this takes minutes)", file=sys.stderr, flush=True)
    shown = json.loads(_dvc("exp", "show", "--json", *(["-A"] if all_commits else [])).stdout or "[]")
    rows = []
    for commit in shown:
        rev = commit["rev"]
        if rev == "workspace":
            rows.append({"name": "workspace", "rev": "workspace", "kind": "workspace", "baseline": None})
            continue
        rows.append({"name": commit.get("name") or rev[:7], "rev": rev, "kind": "baseline", "baseline": rev})
        for exp in commit.get("experiments") or []:
            for entry in exp.get("revs") or []:
                if entry.get("rev") and entry.get("data"):  # queued/running ones have no commit yet
                    rows.append({"name": entry.get("name") or exp.get("name") or entry["rev"][:7],
                                 "rev": entry["rev"], "kind": "experiment", "baseline": rev})
    return rows


def resolve(specs: Sequence[str], rows: list[dict[str, Any]], baseline: bool = False) -> list[dict[str, Any]]:
    """Experiment names, (short) revs, `workspace`, `HEAD` or the branch name → rows of list_experiments.
    No specs: every experiment of the shown baselines. `baseline`: first the commit each chosen experiment was run
    on (with -A not always HEAD's), or HEAD's when none is an experiment. A name or short rev that fits rows of
    several revs (an experiment name reused on another commit) is a DataError listing them: one is never picked
    silently."""
    chosen: list[dict[str, Any]] = []
    base = [r for r in rows if r["kind"] == "baseline"]
    if not specs:
        chosen += [r for r in rows if r["kind"] == "experiment"]
    for spec in specs:
        if spec == "HEAD" and base:
            hits = base[:1]
        else:
            hits = [r for r in rows if r["name"] == spec] or \
                   [r for r in rows if len(spec) >= 4 and r["rev"].startswith(spec)]
        if not hits:
            known = ", ".join(r["name"] for r in rows if r["kind"] == "experiment") or "none"
            raise DataError(f"experiment {spec!r}: not found in `dvc exp show` (experiments: {known}; "
                            "pulled from elsewhere? `dvc exp pull <git remote> <name>`; other commits: -A)")
        if len({r["rev"] for r in hits}) > 1:
            fits = ", ".join(_where(r) + (f" on {r['baseline'][:7]}" if r["kind"] == "experiment" else "")
                             for r in hits)
            raise DataError(f"experiment {spec!r}: names {len(hits)} runs ({fits}); name one by its rev")
        chosen.append(hits[0])
    if baseline:
        own = [r for row in chosen for r in base if row["kind"] == "experiment" and r["rev"] == row["baseline"]]
        chosen = (own or base[:1]) + chosen
    unique, seen = [], set()
    for row in chosen:
        if row["rev"] not in seen:
            unique.append(row)
            seen.add(row["rev"])
    return unique


def _where(row: dict[str, Any]) -> str:
    """How a row is named in errors and notes: `workspace`, `rec-1 (a1b2c3d)`, or the short rev alone."""
    if row["rev"] == "workspace":
        return "workspace"
    rev = row["rev"][:7]
    return f"{row['name']} ({rev})" if row.get("name") and row["name"] != rev else rev


def _read_summary(path: Path) -> dict:
    """metrics/<paper>.json (the report stage writes it) as the report reads it: NaN / ±Infinity as None (missing)."""
    return read_json(path, expect=dict, stage="report", non_finite="missing")


def read_at(row: dict[str, Any], path: str) -> dict | None:
    """params.yaml or metrics/<paper>.json as of the row's experiment/commit (`git show rev:path`), or from disk for
    the workspace; None when the file is not there. Read by the project's readers, `read_params` (ParamError) and
    `read_json` (DataError), so a file that does not parse is their one line, naming the file and, at a commit,
    `_where` it was read (`metrics/aae_ssl.json at rec-1 (a1b2c3d): not valid JSON (…)`)."""
    reader = read_params if path.endswith((".yaml", ".yml")) else _read_summary
    if row["rev"] == "workspace":
        return reader(Path(path)) if Path(path).exists() else None
    shown = subprocess.run(["git", "show", f"{row['rev']}:{path}"], capture_output=True)  # bytes: the reader decodes
    if shown.returncode:
        return None
    with tempfile.TemporaryDirectory(prefix="replab-compare-") as tmp:
        file = Path(tmp) / Path(path).name
        file.write_bytes(shown.stdout)
        try:
            return reader(file)
        except (DataError, ParamError) as err:  # the readers' messages start with the file read: name the commit's
            message = str(err).removeprefix(str(file))
            raise type(err)(f"{path} at {_where(row)}{message}") from None


def flatten(value: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts → {dotted.key: leaf}; lists become one `a; b` cell."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{sep}{key}" if prefix else str(key), sep))
        return out
    if isinstance(value, list):
        return {prefix: "; ".join(map(str, value))}
    return {prefix: value}


def _metric_cells(summary: dict, fmt: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """Flattened summary metrics; {mean, std, n} → one `mean ± std` cell (md) or .mean/.std columns (csv). Also the
    cells (their keys) holding a missing value: null in the file, or NaN / ±inf, which `_read_summary` reads as null;
    shown as – (md) or empty (csv); and the cells whose mean or std is not a number at all or whose std is negative
    (a hand edit: the report writes numbers or null there), not shown either and listed apart."""
    cells: dict[str, Any] = {}
    missing: list[str] = []
    damaged: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and {"mean", "std"} <= set(node):
            raw = node["mean"], node["std"]
            numbers = [v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in raw]
            mean, std = map(finite, raw)  # None for null, NaN, ±inf and an integer beyond a float's range
            if not all(numbers) or (std is not None and std < 0):  # not a number, or a negative spread
                damaged.append(path)
                std = None if std is not None and std < 0 else std
            if fmt == "md":
                # as in the report: a metric missing in every seed (NaN written as null) reads "–", and one seed
                # shows its value alone (a std of 0 would read as no spread)
                one = node.get("n") == 1
                cells[path] = ("–" if mean is None else _fmt(mean) if one
                               else f"{_fmt(mean)} ± –" if std is None else _mean_std(mean, std))
                if mean is None or (std is None and not one):
                    missing.append(path)
            else:
                cells[f"{path}.mean"], cells[f"{path}.std"] = mean, std
                missing.extend(f"{path}.{k}" for k, v in (("mean", mean), ("std", std)) if v is None)
        elif isinstance(node, dict):
            for key, item in node.items():
                walk(item, f"{path}.{key}" if path else str(key))
        else:
            flat = flatten(node, path)
            cells.update(flat)
            missing.extend(key for key, value in flat.items() if value is None)

    for key, value in summary.items():
        if key != "run" and not REFERENCE_KEYS.match(key):
            walk(value, key)
    return cells, [k for k in missing if k.removesuffix(".mean").removesuffix(".std") not in damaged], damaged


def _mean_std(mean: Any, std: Any) -> str:
    """'mean ± std', the mean at 4 significant digits and the std at the same decimals (12.10 ± 0.28, not
    12.1 ± 0.2828); as `_fmt` each where either is not a finite number."""
    if finite(mean) is None or finite(std) is None or not (1e-4 <= abs(mean) < 1e4 or mean == 0):
        return f"{_fmt(mean)} ± {_fmt(std)}"  # (4 significant digits of 5e-320 are 323 decimals)
    decimals = max(0, 3 - math.floor(math.log10(abs(mean)))) if mean else 4
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _exact(value: Any) -> Any:
    """A float param as the short text that reads back as the same float (`io.number_text`); other values as they
    are."""
    return number_text(value) if isinstance(value, float) else value


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"  # (1e300: 301 digits with .0f)
    return shown(value) if isinstance(value, int) else str(value)  # (an int of hundreds of digits abbreviated)


def metrics_pattern(metrics: str | None) -> re.Pattern | None:
    """`compare --metrics` as a compiled regex (None: every metric); ParamError naming the option otherwise."""
    if not metrics:
        return None
    try:
        return re.compile(metrics)
    except (re.error, OverflowError, RecursionError) as err:  # (x{99999999999}; a thousand nested groups)
        shown_pattern = repr(metrics) if len(metrics) <= 60 else f"{metrics[:60]!r}…"
        raise ParamError(f"compare --metrics {shown_pattern}: not a regular expression ({err})") from None


def compare_table(paper: str, chosen: list[dict[str, Any]], fmt: str = "md", metrics: str | None = None,
                  all_params: bool = False, notes: list[str] | None = None,
                  only_changed: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows: experiment, rev, profile, the paper's (and runtime) params that differ between the
    chosen rows (all of them with all_params), the summary metrics of metrics/<paper>.json, and its run block
    (with `only_changed`, of those two only the fields that differ between the rows, as `dvc exp show
    --only-changed`: a paper's summary holds over a hundred).

    A row without metrics/<paper>.json has empty metric cells (– in Markdown), and so has a missing value (null,
    NaN or ±inf in the file): one line per row says which, appended to `notes` (`compare` prints them). DataError
    when no row has the file or one does not parse (ParamError for a params.yaml that does not)."""
    pattern = metrics_pattern(metrics)
    summary_file = f"metrics/{paper}.json"
    records, absent = [], []
    for row in chosen:
        params = read_at(row, PARAMS_FILE) or {}
        summary = read_at(row, summary_file)
        if summary is None:
            absent.append(_where(row))
        summary = summary or {}
        section = flatten({paper: params.get(paper, {}), "runtime": params.get("runtime", {})})
        cells, missing, damaged = _metric_cells(summary, fmt)
        records.append((row, meta_profile(params, "", f"{_where(row)}: {PARAMS_FILE}"), section, cells, missing,
                        flatten(summary.get("run", {}), "run"), damaged))
    if len(absent) == len(chosen):  # a table of – alone: say so instead
        raise DataError(f"{summary_file}: missing in every chosen experiment ({', '.join(absent)}) "
                        "(run `dvc repro report`)")

    def varying(keys: list[str], field: int) -> list[str]:  # the keys whose values differ between the rows
        return [k for k in keys if len({json.dumps(rec[field].get(k), sort_keys=True, default=str)
                                        for rec in records}) > 1]

    param_keys = list(dict.fromkeys(k for rec in records for k in rec[2]))
    changed_params = varying(param_keys, 2)
    if not all_params:
        param_keys = changed_params
    metric_keys = list(dict.fromkeys(k for rec in records for k in rec[3]))
    if pattern is not None:
        matched = [k for k in metric_keys if pattern.search(k)]
        if metric_keys and not matched:
            raise ParamError(f"compare --metrics {metrics!r}: matches no summary metric of metrics/{paper}.json "
                             f"(its names: {', '.join(metric_keys[:3])}, …)")
        metric_keys = matched
    run_keys = list(dict.fromkeys(k for rec in records for k in rec[5]))
    if only_changed:
        metric_keys, run_keys = varying(metric_keys, 3), varying(run_keys, 5)
        if notes is not None and not (changed_params or metric_keys or run_keys) and len(records) > 1:
            notes.append("--only-changed: these experiments differ in no param, summary metric or run field")
    headers = ["experiment", "rev", "profile", *param_keys, *metric_keys, *run_keys]
    rows = []
    for row, profile, section, cells, missing, run, damaged in records:
        rev = row["rev"] if row["rev"] == "workspace" else row["rev"][:7]
        # a param as given (39.0625, not the metrics' 4 significant digits: 39.06), in both formats
        rows.append([row["name"], rev, profile, *(_exact(section.get(k)) for k in param_keys),
                     *(cells.get(k) for k in metric_keys), *(run.get(k) for k in run_keys)])
        if notes is None:
            continue
        if _where(row) in absent:
            notes.append(f"{_where(row)}: {summary_file} missing (run `dvc repro report`)")
            continue
        as_missing = "shown as –" if fmt == "md" else "empty cells"
        if shown := [k for k in missing if k in metric_keys]:
            notes.append(f"{_where(row)}: {len(shown)} value{'s' * (len(shown) > 1)} missing in {summary_file} "
                         f"(null or not finite there; {as_missing}): {_listed(shown)}")
        if shown := [k for k in damaged if k in metric_keys or f"{k}.mean" in metric_keys]:
            notes.append(f"{_where(row)}: {len(shown)} mean ± std in {summary_file} not numbers or a negative std "
                         "(a hand edit? the report writes numbers or null there: rerun `dvc repro report`; "
                         f"{'the damaged values not shown' if fmt == 'md' else 'empty cells'}): {_listed(shown)}")
    return headers, rows


def _listed(keys: Sequence[str]) -> str:
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def render(headers: list[str], rows: list[list[Any]], fmt: str = "md", transpose: bool = False,
           notes: Sequence[str] = ()) -> str:
    """The table as CSV or Markdown; Markdown lists `notes` under it (CSV has no place for them)."""
    if transpose:
        headers, rows = (["field", *(str(r[0]) for r in rows)],
                         [[h, *(r[i] for r in rows)] for i, h in enumerate(headers) if i > 0])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return buffer.getvalue()
    from replab.report import md_table

    def cell(value: Any) -> str:
        return _fmt(value).replace("|", "\\|") if value is not None else "–"

    table = md_table(headers, [[cell(v) for v in row] for row in rows]) + "\n"
    return table + "".join(f"\n- {note}" for note in notes) + "\n" * bool(notes)


def compare(paper: str, specs: Sequence[str], fmt: str = "md", out: str | None = None, baseline: bool = False,
            all_commits: bool = False, metrics: str | None = None, all_params: bool = False,
            transpose: bool = False, only_changed: bool = False) -> str:
    _check_paper(paper)
    if fmt not in ("md", "csv"):
        raise ParamError(f"compare --format {fmt!r}: allowed: md, csv")
    metrics_pattern(metrics)  # a bad regex fails before any experiment is read
    if out is not None:
        check_writable(out, "compare --out")  # missing folders are made, as for bench --json
    chosen = resolve(specs, list_experiments(all_commits), baseline)
    if not chosen:
        raise DataError("compare: no experiments here (run some, or `dvc exp pull <git remote>`)")
    notes: list[str] = []
    if not specs and all(row["kind"] == "baseline" for row in chosen):  # --baseline alone, and no experiment yet
        notes.append(f"no experiments of HEAD besides the baseline (run some, or `dvc exp pull <git remote>`); the "
                     f"results of `dvc repro` in this checkout: `replab compare {paper} workspace HEAD`")
    headers, rows = compare_table(paper, chosen, fmt, metrics, all_params, notes, only_changed)
    text = render(headers, rows, fmt=fmt, transpose=transpose, notes=notes)
    if fmt == "csv" or out:  # not in the printed table: say them here
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    if out:
        from replab.io import atomic_path

        with atomic_path(out, suffix=Path(out).suffix) as tmp:
            tmp.write_text(text)
        print(f"wrote {out} ({len(chosen)} experiment{'' if len(chosen) == 1 else 's'})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return text
