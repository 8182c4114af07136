""".ci/gpu-bench, the GPU measurements in one run: its variables are checked once, before anything runs, and a run
that reaches BENCH_TIMEOUT says so (its JSON names the papers it left out: tests/test_bench.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from replab import bench

SCRIPT = REPO / ".ci" / "gpu-bench"
ALL_RUNS = "tests, eager, seeds2, seeds5, step-graph, step-graph-papers, step-graph-compiled, cuda-graphs"


def gpu_bench(tmp_path, out, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


@pytest.mark.parametrize(("env", "message"), [
    ({"PROFILE": "nonesuch"}, "gpu-bench: PROFILE=nonesuch (allowed: paper, quick, smoke: conf/profile/)"),
    ({"PROFILE": "../quick"}, "gpu-bench: PROFILE=../quick (allowed: paper, quick, smoke: conf/profile/)"),
    ({"PROFILE": ""}, "gpu-bench: PROFILE= (allowed: paper, quick, smoke: conf/profile/)"),  # not paper by default
    ({"STEPS": ""}, f"gpu-bench: STEPS= (allowed: a whole number 1 … {bench.MAX_STEPS}, replab bench --steps)"),
    ({"BENCH_TIMEOUT": ""}, "gpu-bench: BENCH_TIMEOUT= (allowed: whole seconds ≥ 1)"),
    *[({"STEPS": steps}, f"gpu-bench: STEPS={steps} (allowed: a whole number 1 … {bench.MAX_STEPS}, replab bench "
                         "--steps)") for steps in ("0", "abc", str(bench.MAX_STEPS + 1))],
    ({"BENCH_TIMEOUT": "0"}, "gpu-bench: BENCH_TIMEOUT=0 (allowed: whole seconds ≥ 1)"),  # timeout 0: no limit
    ({"BENCH_TIMEOUT": "1.5"}, "gpu-bench: BENCH_TIMEOUT=1.5 (allowed: whole seconds ≥ 1)"),
    *[({"RUNS": runs}, f"gpu-bench: RUNS={runs}: {bad} (allowed, separated by spaces: {ALL_RUNS})")
      for runs, bad in (("eager seeds3", "seeds3"), ("eager,seeds2", "eager,seeds2"), ("*", "*"), ("t*", "t*"))],
    *[({"RUNS": runs}, f"gpu-bench: RUNS is empty (allowed, separated by spaces: {ALL_RUNS})")
      for runs in ("", " ", "\t", "\n")],
    ({"PYTHON": "/nonexistent/python"}, "gpu-bench: PYTHON=/nonexistent/python: not found (give an interpreter "
                                        "with PyTorch)"),
])
def test_a_bad_variable_is_one_line_before_anything_runs(tmp_path, env, message):
    done = gpu_bench(tmp_path, tmp_path / "out", **env)
    assert (done.returncode, done.stdout + done.stderr) == (1, message + "\n")
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_is_a_file_is_named(tmp_path):
    (tmp_path / "results").write_text("kept")
    done = gpu_bench(tmp_path, tmp_path / "results")
    assert (done.returncode, done.stdout + done.stderr) == (
        1, f"gpu-bench: {tmp_path / 'results'}: not a directory (give a folder for the results)\n")
    assert (tmp_path / "results").read_text() == "kept"


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path):
    done = gpu_bench(tmp_path, "/proc/replab-results")
    assert (done.returncode, done.stdout + done.stderr) == (
        1, "gpu-bench: /proc/replab-results: cannot be created or written\n")


def test_a_run_past_bench_timeout_says_it_timed_out(tmp_path):
    """An interpreter whose bench never finishes (it runs the script's import check, then sleeps): each of the seven
    runs (the CUDA tests first) is stopped at BENCH_TIMEOUT and named as timed out, not as failed; exit status 1."""
    slow = tmp_path / "python"
    slow.write_text(f'#!/bin/sh\n[ "$1" = - ] && exec {sys.executable} "$@"\nsleep 30\n')
    slow.chmod(0o755)
    done = gpu_bench(tmp_path, tmp_path / "out", PYTHON=str(slow), BENCH_TIMEOUT="1", PROFILE="smoke")
    out = tmp_path / "out"
    timed_out = [line for line in done.stdout.splitlines() if "timed out" in line]
    assert done.returncode == 1 and timed_out == [
        f"== tests timed out after 1 s (BENCH_TIMEOUT; log: {out}/tests.log)"] + [
        f"== {name} timed out after 1 s (BENCH_TIMEOUT; log: {out}/smoke-{name}.log)"
        for name in ("eager", "aae_ssl-seeds2", "aae_ssl-seeds5", "aae_ssl-step-graph", "step-graph-papers",
                     "aae_ssl-step-graph-compiled", "cuda-graphs")]
    assert "failed" not in done.stdout
    assert (out / "smoke-eager.log").read_text().endswith("timed out after 1 s (BENCH_TIMEOUT; "
                                                          f"log: {out}/smoke-eager.log)\n")


def test_a_stopped_script_stops_the_run_in_progress(tmp_path):
    """`timeout` runs each measurement in a process group of its own: a TERM to the script's group (Ctrl-C, a
    cancelled job) used to leave it running, on a GPU for up to BENCH_TIMEOUT. Now the script's trap stops it."""
    import signal
    import time

    started = tmp_path / "started"
    slow = tmp_path / "python"
    slow.write_text(f'#!/bin/sh\n[ "$1" = - ] && exec {sys.executable} "$@"\necho $$ > {started}\nexec sleep 60\n')
    slow.chmod(0o755)
    script = subprocess.Popen(["bash", str(SCRIPT), str(tmp_path / "out")], stdout=subprocess.PIPE, text=True,
                              cwd=tmp_path, start_new_session=True,
                              env={**os.environ, "PYTHON": str(slow), "PROFILE": "smoke", "RUNS": "eager seeds2"})
    deadline = time.monotonic() + 60
    while not (started.exists() and started.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    run = int(started.read_text())
    os.killpg(script.pid, signal.SIGTERM)  # the script's group, as a terminal's Ctrl-C or a job runner does
    out, _ = script.communicate(timeout=30)
    while time.monotonic() < deadline:
        try:
            os.kill(run, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(run, signal.SIGKILL)
        pytest.fail("the run in progress outlived the stopped script")
    assert script.returncode == 143 and out.rstrip().endswith("gpu-bench: stopped")
    assert "aae_ssl-seeds2" not in out  # the runs after it never started


def test_runs_picks_the_runs_and_their_order(tmp_path):
    slow = tmp_path / "python"
    slow.write_text(f'#!/bin/sh\n[ "$1" = - ] && exec {sys.executable} "$@"\nsleep 30\n')
    slow.chmod(0o755)
    done = gpu_bench(tmp_path, tmp_path / "out", PYTHON=str(slow), BENCH_TIMEOUT="1", PROFILE="smoke",
                     RUNS="step-graph  eager step-graph-papers")
    started = [line for line in done.stdout.splitlines() if line.startswith("== ") and "timed out" not in line]
    assert started == ["== aae_ssl-step-graph: replab bench --profile smoke --steps 50 aae_ssl --cuda-graph --seeds 5",
                       "== eager: replab bench --profile smoke --steps 50 ",
                       "== step-graph-papers: replab bench --profile smoke --steps 50 split_vae censor autoencoder "
                       "attention_vat --cuda-graph"]


def test_the_runs_end_in_readmes_step_time_table(tmp_path):
    """step-times.md: the committed CPU run (docs/bench/paper-cpu.json) beside the runs that wrote results, as
    `replab bench --show … --markdown` sets them; a run that stopped before its first paper (bench wrote its JSON,
    empty, at the start) is left out and the others' columns stay. The runs here are a stand-in interpreter that
    writes, as a run's JSON, the CPU file's results of the papers the run names (all when it names none), and for
    aae_ssl's replayed step an empty, incomplete file and exit status 1, as a run that timed out. A later call
    tables its own runs, not the files an earlier one left."""
    from replab.papers import PAPERS

    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import json, subprocess, sys
args = sys.argv[1:]
if "--json" not in args:
    sys.exit(subprocess.call([{sys.executable!r}, *args]))
data = json.load(open({str(REPO / "docs" / "bench" / "paper-cpu.json")!r}))
named = [a for a in args if a in {list(PAPERS)!r}] or {list(PAPERS)!r}
stopped = "--cuda-graph" in args and named == ["aae_ssl"]
data["results"] = [] if stopped else [r for r in data["results"] if r["paper"] in named]
data["complete"] = not stopped
json.dump(data, open(args[args.index("--json") + 1], "w"))
sys.exit(1 if stopped else 0)
""")
    fake.chmod(0o755)
    out = tmp_path / "out dir"
    done = gpu_bench(tmp_path, out, PYTHON=str(fake), RUNS="eager step-graph step-graph-papers")
    assert done.returncode == 1 and "== aae_ssl-step-graph failed, exit status 1" in done.stdout, done.stdout
    assert "paper-aae_ssl-step-graph.json: no results (the run stopped before its first paper); left out" in (
        done.stderr)
    table = (out / "step-times.md").read_text().splitlines()
    columns = ["docs/bench/paper-cpu.json", str(out / "paper-eager.json"), str(out / "paper-step-graph-papers.json")]
    assert [cell.rsplit("(`", 1)[1].rstrip("`)") for cell in table[0].strip("| ").split(" | ")[1:]] == columns
    rows = {row.split(" | ")[0]: row.split(" | ")[1:] for row in table[2:table.index("")]}
    assert table[table.index("") + 1:] == [f"- {out / 'paper-aae_ssl-step-graph.json'}: no results (the run stopped "
                                           "before its first paper); left out"]
    aae = rows["| aae_ssl (aae_yz Nl=100 hidden=1000 z=50)"]
    assert aae[0] == aae[1] != "–" and aae[2] == "– |"  # step-graph-papers has no aae_ssl
    split_vae = rows["| split_vae (exp2 hidden=500 d=10 batch=256)"]
    assert split_vae[0] == split_vae[1] == split_vae[2][:-2] == "9.47 ms, 1.27× the peer"
    assert len(rows) == 6 and not list(out.glob("*.part"))
    # a later call with fewer runs tables its own runs only, not the files the first left in the folder
    assert gpu_bench(tmp_path, out, PYTHON=str(fake), RUNS="eager").returncode == 0
    assert (out / "step-times.md").read_text().splitlines()[0].count("(`") == 2
    # a run that fails before bench writes its JSON leaves no earlier call's file to be tabled as its own
    assert (out / "paper-step-graph-papers.json").exists()
    broken = tmp_path / "broken"
    broken.write_text(f"#!/bin/sh\ncase \"$*\" in *--json*) exit 3 ;; *) exec {fake} \"$@\" ;; esac\n")
    broken.chmod(0o755)
    assert gpu_bench(tmp_path, out, PYTHON=str(broken), RUNS="eager step-graph-papers").returncode == 1
    assert not (out / "paper-step-graph-papers.json").exists() and not (out / "paper-eager.json").exists()
    assert (out / "step-times.md").read_text().splitlines()[0].count("(`") == 2  # the earlier table stays


# What a CUDA image with PyTorch is assumed to hold (.ci/gpu-wheels' header; packaging comes with its matplotlib);
# everything else pytest and its plugin need at run time must be among the wheels the script fetches.
IMAGE_HOLDS = {"packaging", "numpy", "pyyaml", "attrs"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503's normalised distribution name


def gpu_wheels_packages() -> set[str]:
    """The distributions .ci/gpu-wheels downloads: `name==version` and `$(pin name …)` entries of its list."""
    text = (REPO / ".ci" / "gpu-wheels").read_text()
    listed = text[text.index("pure=("):text.index(")\nmkdir")]
    names = re.findall(r"([A-Za-z0-9_.-]+)==", listed) + re.findall(r"\$\(pin ([A-Za-z0-9_.-]+)", listed)
    return {canonical(n) for n in names}


@pytest.mark.parametrize("distribution", ["pytest", "pytest-timeout"])
def test_gpu_wheels_bring_what_the_cuda_tests_import(distribution):
    """The `tests` run on a bare CUDA image: each run-time requirement of pytest and pytest-timeout (this environment's
    versions, as pinned) is fetched or held by the image. pytest 9's pygments was not, and the run stopped before any
    test."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    wheels = gpu_wheels_packages()
    assert distribution in wheels
    for spec in requires(distribution) or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": "", "python_version": "3.12",
                                                               "sys_platform": "linux"}):
            continue
        name = canonical(req.name)
        assert name in wheels | IMAGE_HOLDS, f".ci/gpu-wheels: {distribution} needs {name}, which it does not fetch"


def test_the_suite_runs_without_pytest_xdist(tmp_path):
    """A CUDA image's pytest has no xdist: conftest's xdist hook is optional, so collection does not stop at
    "unknown hook 'pytest_xdist_auto_num_workers'"."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                          "-o", "addopts=", "--collect-only", "tests/test_gpu_bench.py"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "test_the_suite_runs_without_pytest_xdist" in run.stdout
