"""Seeding, device choice, threads, determinism and the run metadata stored in every metrics file."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from replab.params import ParamError, Runtime


def positive_int(text: str | None) -> int | None:
    """`text` as a count ≥ 1 when it is one written in ASCII digits, else None ("²".isdigit() is True, int("²")
    raises)."""
    return int(text) if text and text.isascii() and text.isdigit() and int(text) > 0 else None


def available_cpus() -> int:
    """The CPUs this process may use: the affinity mask (cgroups, taskset; else all cores), and inside a SLURM job
    at most what SLURM allocated: `--cpus-per-task` (SLURM_CPUS_PER_TASK), else the job's CPUs on this node
    (SLURM_CPUS_ON_NODE: one CPU or core for an array task without --cpus-per-task). Without CPU binding the
    affinity mask is the whole node, and tasks sharing it would each start a thread per core."""
    mask = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        if count := positive_int(os.environ.get(name, "")):
            return min(count, mask)
    return mask


# DVC's celery queue: `dvc queue start -j N` (also `dvc exp run --run-all -j N`) forks a daemon per worker, which
# keeps its command line and runs `dvc exp queue-worker dvc-exp-<repo hash>-<i>@localhost`; a worker runs one
# experiment at a time through `dvc exp exec-run`, whose children are the stages (DVC 3.x, dvc_task.proc).
_WORKER_NODE = re.compile(r"dvc-exp-[0-9a-f]+-\d+@")


def _cmdline(proc: Path, pid: str) -> list[str]:
    return (proc / pid / "cmdline").read_bytes().decode(errors="replace").split("\0")


def _parent(proc: Path, pid: str) -> str:
    # /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, parentheses and non-UTF-8 bytes
    return (proc / pid / "stat").read_bytes().rsplit(b")", 1)[1].split()[1].decode()


def _is_worker(args: list[str]) -> bool:
    return any(a == "exp" and b == "queue-worker" and _WORKER_NODE.match(c)
               for a, b, c in zip(args, args[1:], args[2:]))


def _jobs(args: list[str]) -> int | None:
    """N of a `dvc queue start` / `dvc exp run` command line as DVC's argparse reads it: `-j N`, `-jN`, `-j=N`,
    `--jobs N`, `--jobs=N` or an unambiguous prefix of `--jobs` (`--job 2`), the last one winning; 1 when absent
    (DVC's default); None for any other command or a value that is no positive integer."""
    if not ({"queue", "start"} <= set(args) or {"exp", "run"} <= set(args)):
        return None
    jobs: str | None = "1"
    for i, arg in enumerate(args):
        name, eq, inline = arg.partition("=")
        if name == "-j" or (len(name) >= 3 and "--jobs".startswith(name)):
            jobs = inline if eq else args[i + 1] if i + 1 < len(args) else None
        elif arg.startswith("-j") and not arg.startswith("--"):  # -jN
            jobs = arg[2:]
    return positive_int(jobs)


def dvc_queue_jobs(proc: Path | str = Path("/proc")) -> int:
    """N of the `dvc queue start -j N` (or `dvc exp run --run-all -j N`) whose worker this process runs under (a
    stage of a queued experiment: worker → `dvc exp exec-run` → the stage), read from the command line of the
    worker's parent; 0 outside a queue worker or where it cannot tell (no Linux /proc, a worker whose parent is
    gone or unreadable). The queue's N, not the workers alive when the stage starts: an idle worker exits only
    at DVC's next poll, and a count taken then would make a run's thread count, and with it its float rounding,
    depend on timing. Workers added to a running queue by a second `dvc queue start -j M` read M while the first
    ones keep N, and an N above the experiments queued leaves cores idle: start a queue once, with its N."""
    proc = Path(proc)
    try:
        pid = str(os.getpid())
        for _ in range(256):  # up the parent chain
            if _is_worker(_cmdline(proc, pid)):
                return _jobs(_cmdline(proc, _parent(proc, pid))) or 0
            pid = _parent(proc, pid)
            if pid in ("0", "1"):
                break
    except (OSError, IndexError, ValueError):
        pass
    return 0


def default_threads() -> int:
    """`runtime.threads: 0`: the CPUs this process may use (`available_cpus`), shared among the N workers of the
    DVC queue it runs under (`dvc_queue_jobs`), at least 1. `dvc queue start -j N` by hand would otherwise start
    N runs with a thread per core each, and GNU OpenMP's spinning barriers make such runs several times slower
    than with the cores shared out (two smoke pipelines on 2 cores: 588 against 145 s each; README, "Queued
    sweeps")."""
    return max(1, available_cpus() // max(1, dvc_queue_jobs()))


# The CPU thread pools besides torch's: the BLAS of numpy and scipy (OpenBLAS in their wheels; MKL or BLIS in some
# builds) and the OpenMP runtime of scikit-learn's compiled estimators. Each reads its variable when it loads.
THREAD_POOL_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def set_threads(n: int) -> None:
    """Give every CPU thread pool of this process `n` threads: torch's (`torch.set_num_threads`) and the BLAS and
    OpenMP pools of numpy, scipy and scikit-learn, both those loaded already (threadpoolctl) and those a later
    import loads (their environment variables, which a library reads when it loads; a stage's own subprocesses
    inherit them). `runtime.threads` and the queue's share of the CPUs (`default_threads`) are meant for the whole
    process: with torch's pool alone limited, the evaluations' scikit-learn clustering, t-SNE and probes ran each
    BLAS call on every core beside the other queued runs (the smoke profile's eval_split_vae beside a second busy
    process on 2 cores: 14.8 s with two BLAS threads, 6.2 s with one)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    for name in THREAD_POOL_ENV:
        os.environ[name] = str(n)
    threadpool_limits(limits=n)


def setup(runtime: Runtime, seed: int, process_settings: bool = True):
    """Seed everything, pick the device, set threads and determinism. Returns the torch.device. With
    `process_settings` (always, but in `replab bench --process-defaults`, which measures them) also glibc's malloc
    keeping freed blocks and deterministic mode without its NaN fill (below)."""
    if runtime.deterministic:
        # cuBLAS needs this before CUDA initialises to give reproducible GEMMs
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    device = choose_device(runtime.device)
    if process_settings:
        keep_freed_memory()
    set_threads(runtime.threads or default_threads())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if runtime.compile:
        torch.use_deterministic_algorithms(runtime.deterministic, warn_only=True)
    else:
        # The public call also configures torch._inductor, whose import costs ~1.5 s per stage process;
        # without torch.compile only this switch matters.
        torch._C._set_deterministic_algorithms(runtime.deterministic, warn_only=True)
    # Deterministic mode by default also fills every uninitialised allocation (torch.empty*, resize_) with NaN
    # (integers with their maximum), so that a kernel reading memory it never wrote is at least reproducible;
    # PyTorch's docs (torch.utils.deterministic) advise turning that off for valid programs. Every tensor here is
    # written before it is read (the committed metrics are the same without it), and the fill cost 7 % of an
    # attention_vat step: a 30 MB memset of oneDNN's LSTM workspace per call. (Without deterministic mode there
    # is no fill either way.)
    torch.utils.deterministic.fill_uninitialized_memory = not process_settings
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = runtime.tf32
        torch.backends.cudnn.allow_tf32 = runtime.tf32
        torch.backends.cudnn.benchmark = not runtime.deterministic
    return device


MMAP_THRESHOLDS = (256 << 20, 32 << 20)  # bytes: blocks up to this come from the heap (older glibc takes ≤ 32 MiB)
TRIM_THRESHOLD = 512 << 20  # bytes of free memory at the heap's top that glibc keeps instead of returning
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed large blocks (Linux with glibc; elsewhere it does nothing and returns False).
    By default glibc serves a block above its mmap threshold (128 KiB, adapting up to 32 MiB) by a fresh mmap that
    is unmapped on free, and returns free memory at the heap's top beyond its trim threshold, so a large tensor
    allocated every step faults in each of its 4 KiB pages every step. `mallopt` raising M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD keeps freed blocks in the heap: CPU training steps (2 threads, medians of 90) at paper sizes
    of censor 55 → 32 ms and attention_vat 45 → 32 ms (quick sizes: 57 → 33 ms, 7.5 → 6.9 ms), the other papers
    unchanged, peak memory +1–6 %. PyTorch's CPU tuning guide recommends jemalloc or tcmalloc for the same
    reason; this needs no preload. Left alone (False) when the environment sets malloc itself (MALLOC_*_,
    GLIBC_TUNABLES, another allocator in LD_PRELOAD). Returns whether glibc took the settings; the trim threshold
    is set only after an mmap threshold was taken (setting it alone would freeze glibc's adaptive threshold at
    128 KiB, worse than the default)."""
    import ctypes

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(os.environ.get(name) for name in MALLOC_ENV) or "malloc" in os.environ.get("LD_PRELOAD", ""):
        return False  # the user chose: jemalloc, tcmalloc and mimalloc all have "malloc" in their names
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    if not any(libc.mallopt(m_mmap_threshold, size) for size in MMAP_THRESHOLDS):
        return False
    return bool(libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))


def choose_device(name: str):
    """`auto` → cuda, then mps, then cpu. An explicit device that is absent is an error, never a fallback."""
    import torch

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ParamError("params.yaml: runtime.device = 'cuda': no CUDA device is visible "
                         "(allowed here: auto, cpu)")
    elif name == "mps" and not has_mps:
        raise ParamError("params.yaml: runtime.device = 'mps': MPS is not available (allowed here: auto, cpu)")
    return torch.device(name)


def seeded_generator(seed: int, device=None):
    """A torch.Generator independent of the global RNG (data subsets, noise) so variants stay comparable."""
    import torch

    gen = torch.Generator(device=device if device is not None else "cpu")
    gen.manual_seed(seed)
    return gen


@dataclass
class RunClock:
    """Measures wall time and throughput of a training run for the `run` block of metrics files."""

    samples: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, n: int) -> None:
        self.samples += n

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _cpuinfo_field(key: str, cpuinfo: str | Path) -> str:
    """The first non-empty `key` of Linux's /proc/cpuinfo ("" when there is none or no such file)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    except OSError:
        pass
    return ""


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name ("AMD EPYC 7B13") from Linux's /proc/cpuinfo; elsewhere Python's platform fields
    (`platform.processor()` is empty on Linux)."""
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()


def cpu_vendor(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The x86 CPU's vendor string ("GenuineIntel", "AuthenticAMD", …: /proc/cpuinfo's `vendor_id`, CPUID's); ""
    where Linux does not say (other systems, other architectures)."""
    return _cpuinfo_field("vendor_id", cpuinfo)


def run_metadata(device, seed: int, data_source: str, clock: RunClock | None = None) -> dict:
    """Everything needed to compare runs across machines side by side in `dvc exp show`."""
    import torch

    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        device_name = "Apple MPS"
    else:
        device_name = cpu_name()
    meta = {
        "device": device.type,
        "device_name": device_name,
        # the SIMD level PyTorch's and oneDNN's CPU kernels dispatch to: their float rounding, so the CPU results,
        # differ between levels (AVX2 vs AVX512) for the same seed
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "seed": seed,
        "data_source": data_source,
    }
    if clock is not None:
        meta["seconds"] = round(clock.seconds, 3)
        meta["samples_per_s"] = round(clock.samples / max(clock.seconds, 1e-9), 1)
    return meta


def device_label(run: dict) -> str:
    """A run block's device name, with the CPU's SIMD level for CPU runs ("AMD EPYC 7B13, AVX2"): CPU results are
    comparable between machines of the same level only."""
    simd = run.get("cpu_capability") if run["device"] == "cpu" else None
    return f"{run['device_name']}, {simd}" if simd else run["device_name"]


def open_live(live_dir, resume: bool = False):
    """DVCLive for per-step training curves; dvc.yaml is hand-written, and inside `dvc repro`/`exp run`
    the pipeline (not DVCLive) records the experiment."""
    from dvclive import Live

    return Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=resume, report=None)


LOG_INTERVAL_S = 30.0  # stderr not a terminal (DVC's logs, SLURM files): one bar line per this many seconds


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(iterable=None, *, enabled: bool = True, **kwargs):
    """tqdm on stderr, off when `runtime.progress` is false. On a terminal the bar redraws in place every second,
    as wide as the terminal. Into a file or pipe (DVC's stage logs, `dvc repro > log 2>&1`, SLURM files) every
    redraw is a line of its own ending in a newline (no carriage returns, no padding), at most one every
    `LOG_INTERVAL_S` seconds plus the final state once; the line has no bar graphic and no width limit, so a long
    postfix stays whole (`desc: 42% 42/100 [elapsed<remaining, rate, postfix]`); `set_postfix`/`set_description`
    update the next line instead of writing one of their own."""
    from tqdm.auto import tqdm

    if _is_terminal(kwargs.get("file") or sys.stderr):
        return tqdm(iterable, disable=not enabled, **{"dynamic_ncols": True, "mininterval": 1.0, **kwargs})
    # ncols 0: tqdm's stats-only line (no bar, never trimmed)
    kwargs = {"ncols": 0, "mininterval": LOG_INTERVAL_S, "maxinterval": LOG_INTERVAL_S, **kwargs}
    return _log_bar(tqdm)(iterable, disable=not enabled, **kwargs)


_LOG_BARS: dict[type, type] = {}


def _log_bar(tqdm: type) -> type:
    """tqdm for a log: each display is one appended line (tqdm's own rewrites one line with '\\r' and pads it,
    which a log file keeps as one ever longer line); nested bars take no cursor moves; closing writes the final
    state unless the last line already showed it (tqdm repeats it), also for `leave=False` (nothing to erase in a
    log); postfix and description changes wait for the next timed line (tqdm redraws on each by default: a training
    loop that sets its postfix at every validation would add a line each time)."""
    if tqdm not in _LOG_BARS:
        class LogBar(tqdm):
            _logged = None  # (n, description, postfix) of the last line written

            def _state(self) -> tuple:
                return self.n, self.desc, self.postfix

            def display(self, msg=None, pos=None):
                if msg == "":  # tqdm clearing the line: nothing to erase in a log
                    return False
                self.fp.write((self.__str__() if msg is None else msg).rstrip() + "\n")
                getattr(self.fp, "flush", lambda: None)()
                self._logged = self._state()
                return True

            def clear(self, nolock=False):
                pass

            def close(self):
                if getattr(self, "disable", True):  # closed, or __init__ failed
                    return
                shown = hasattr(self, "sp") and self.last_print_t >= self.start_t + self.delay  # as tqdm's close
                if shown and self._logged != self._state():
                    with self._lock:
                        self._ema_dt = lambda: None  # the overall rate, as tqdm's closing line
                        with contextlib.suppress(ValueError):  # a closed log file: nothing to write into
                            self.display()
                self.leave = False  # the final line is written: tqdm's close only tidies up
                super().close()

            def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
                super().set_postfix(ordered_dict, refresh=False, **kwargs)

            def set_postfix_str(self, s="", refresh=False):
                super().set_postfix_str(s, refresh=False)

            def set_description(self, desc=None, refresh=False):
                super().set_description(desc, refresh=False)

            def set_description_str(self, desc=None, refresh=False):
                super().set_description_str(desc, refresh=False)

        _LOG_BARS[tqdm] = LogBar
    return _LOG_BARS[tqdm]


def save_trained(model_dir, state: dict, record: dict) -> None:
    """Write model.pt (weights + what is needed to rebuild the model) and train.json as one directory swap;
    train.json also gets model.pt's sha256 (`model_sha256`), which `load_trained` checks. A weight that is NaN or
    ±inf is a NonFiniteError naming the model and the tensor: nothing is written."""
    from replab.io import atomic_dir, first_non_finite, require_finite, sha256_file, write_json, write_torch

    if (bad := first_non_finite(state)) is not None:
        place, tensor = bad
        require_finite(tensor, f"{model_dir}: model.pt {place}")
    with atomic_dir(model_dir) as tmp:
        write_torch(tmp / "model.pt", state)
        write_json(tmp / "train.json", {**record, "model_sha256": sha256_file(tmp / "model.pt")})


def _read_model_file(path: Path, device) -> tuple[object, str]:
    """(torch.load of a model.pt (weights only), the file's sha256), from one read of it; a missing or damaged file
    is a one-line DataError naming it."""
    import hashlib
    import io
    import zipfile

    import torch

    from replab.io import DataError

    try:
        data = path.read_bytes()
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True), hashlib.sha256(data).hexdigest()
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the training stage first: `dvc repro`)") from None
    except Exception as err:  # torch raises several types, with multi-line advice, for damaged files
        if path.is_dir():
            detail = "a directory"
        elif path.stat().st_size == 0:
            detail = "an empty file"
        elif not zipfile.is_zipfile(path):
            detail = "not a torch zip archive"
        else:
            detail = f"{type(err).__name__}: {' '.join(str(err).split('.')[0].split())[:120]}"
        raise DataError(f"{path}: truncated or not a model file ({detail}); rerun the training stage") from None


def _same(value, expected) -> bool:
    """A train.json value equals a variant's axis value (1 and 1.0 alike; "100", null or true never equal 100)."""
    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if number(value) and number(expected):
        return value == expected
    return type(value) is type(expected) and value == expected


def load_trained(model_dir, device, state_keys: tuple[str, ...] = (), axes: dict | None = None) -> tuple[dict, dict]:
    """(model.pt's dict, train.json's dict) of a trained variant's folder. One-line DataError naming the file when
    either is damaged, model.pt lacks one of `state_keys`, train.json's `axes` values (model, n_labeled, seed, …)
    are not the variant's, or model.pt is not the file its train.json was written with (`model_sha256`, required:
    another variant's model.pt copied in, or an edited one): another variant's files are never
    evaluated and credited to this one. A NaN or ±inf weight is a NonFiniteError naming the file and tensor (as
    `save_trained` refuses to write one): its measures would otherwise be NaN, written as null."""
    from replab.io import DataError, first_non_finite, read_json, require_finite

    model_dir = Path(model_dir)
    path = model_dir / "model.pt"
    state, digest = _read_model_file(path, device)
    hint = "rerun the training stage"
    if not isinstance(state, dict):
        raise DataError(f"{path}: holds a {type(state).__name__}, not a model's dict; {hint}")
    missing = [k for k in state_keys if k not in state]
    if missing:
        raise DataError(f"{path}: {missing[0]}: missing (a model.pt holds {', '.join(state_keys)}); {hint}")
    record = read_json(model_dir / "train.json", expect=dict)
    for axis, expected in (axes or {}).items():
        if axis not in record:
            raise DataError(f"{model_dir / 'train.json'}: {axis}: missing (this variant's is {expected!r}); {hint}")
        if not _same(record[axis], expected):
            raise DataError(f"{model_dir / 'train.json'}: {axis} = {record[axis]!r}, but this variant's is "
                            f"{expected!r} (another variant's files in {model_dir}?); {hint}")
    if "model_sha256" not in record:  # every train.json is written with it: without it, no check could be made
        raise DataError(f"{model_dir / 'train.json'}: model_sha256: missing (model.pt's sha256, written with it by "
                        f"training); {hint}")
    if digest != record["model_sha256"]:
        raise DataError(f"{path}: not the model.pt its train.json was written with (sha256 {digest[:12]}…, "
                        f"train.json's model_sha256 {str(record['model_sha256'])[:12]}…): another variant's or an "
                        f"edited file; {hint}")
    if (bad := first_non_finite(state)) is not None:
        place, tensor = bad
        require_finite(tensor, f"{path}: {place}", f"a diverged model's weights; {hint}")
    return state, record


MODEL_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)  # of a damaged arch/weights


def model_error(path, paper: str, err: Exception):
    """The one-line DataError for a model.pt whose arch or weights do not build a `paper` network (torch's size
    mismatch message spans lines): raise it `from None` in a `load_model`'s `except MODEL_ERRORS`."""
    from replab.io import DataError

    text = " ".join(str(err).split())
    text = text if len(text) <= 240 else text[:240] + "…"
    return DataError(f"{path}: not a model of {paper} with this config ({type(err).__name__}: {text}); rerun the "
                     "training stage")


def maybe_compile(module, runtime: Runtime):
    """`runtime.compile: true` → `torch.compile(module, mode=runtime.compile_mode)`: a module, sharing its weights,
    or a function that calls modules (fewer kernel launches: small GPU models are launch-bound; `reduce-overhead`
    replays the compiled forward and backward graphs as CUDA graphs). The caller trains through the wrapper and
    keeps the module for state_dict() and evaluation; a wrapped module's other methods are not compiled. With
    `runtime.deterministic` the compiled code draws dropout masks and other random numbers from PyTorch's eager
    generator (Inductor's `fallback_random`; by default it has its own), so the numbers equal the eager ones to
    float rounding (tests/test_runtime.py)."""
    if module is None or not runtime.compile:
        return module
    import torch
    import torch._inductor.config

    torch._inductor.config.fallback_random = runtime.deterministic
    return torch.compile(module, mode=runtime.compile_mode)


def new_iteration(runtime: Runtime) -> None:
    """Marks the start of a training iteration for torch.compile's CUDA graphs (`compile_mode: reduce-overhead`).
    Unmarked, PyTorch starts a new graph generation at the first compiled call after any backward and frees the
    previous generation's outputs: an iteration that runs a compiled module, then another network's backward (a
    discriminator's or an adversary's step), then reads the first module's outputs would read overwritten memory
    ("accessing tensor output of CUDAGraphs that has been overwritten by a subsequent run"). Once any loop marks
    its iterations, generations start only at marks, for the rest of the process (every compiled loop of replab
    marks). A no-op unless `runtime.compile`; on a CPU it only moves a counter."""
    if runtime.compile:
        import torch

        torch.compiler.cudagraph_mark_step_begin()


def cuda_graph_on(runtime: Runtime, device) -> bool:
    """Whether a training loop replays its iterations as CUDA graphs (`runtime.cuda_graph` on a CUDA device; on
    other devices the flag changes nothing). Optimizers of such a loop need `capturable=True`: their step counts
    and bias corrections then stay on the device, which a graph can replay."""
    return runtime.cuda_graph and device.type == "cuda"


class StepGraph:
    """One training iteration replayed as a CUDA graph (`runtime.cuda_graph`): `step(*inputs)` runs the whole iteration
    (forward passes, backward passes, gradient clipping, optimizer steps) on tensor inputs (index batches) and returns
    its losses (tensors, or tuples and dicts of them). Small models on a GPU are bound by kernel launches (each some
    microseconds of CPU time, hundreds a step) and Python; a replay launches every kernel of the iteration at once
    (PyTorch's "whole network capture", torch.cuda.graphs).

    A graph holds fixed shapes: each shape of the inputs gets its own (`captures`, each with its own memory pool, as
    they replay in any order), up to `max_graphs`; calls of any other shape run eagerly. The first `WARMUP` calls of a
    shape run eagerly on a side stream, PyTorch's recipe: what the first steps make lazily (the optimizers' moments,
    cuBLAS's handles and workspaces for that stream) must exist before capture, which then runs on the same stream (as
    `torch.cuda.make_graphed_callables` does). Three, so that `replab bench`'s FLOP-counted step (its third warm-up
    step) runs eagerly under the counter. The next call of the shape captures `step` on its inputs, while fewer than
    `max_graphs` shapes have a graph (a shape called fewer than four times takes none), and replays it; each later call
    copies its inputs into the captured ones and replays. The outputs are the captured tensors, overwritten by the next
    call of that shape: read or copy them first. `step` must step optimizers built with `capturable=True`
    (`cuda_graph_on`), draw random numbers from PyTorch's default generator (dropout, `torch.randn` without
    `generator=`) or from `generators`, which each capture registers (replays advance them as eager calls do), read
    tensors that stay the same objects between calls (refill one with `copy_` rather than binding a new one), and read
    nothing into Python. Without `cuda_graph_on`, a plain call. Raises ParamError when a capture fails (a step that
    syncs)."""

    WARMUP = 3

    class Capture:
        """One input shape's graph, the inputs it reads (refilled before each replay) and the outputs it writes."""

        def __init__(self, graph, inputs: list):
            self.graph, self.inputs, self.outputs = graph, inputs, None

    def __init__(self, step, runtime: Runtime, device, what: str, generators: tuple = (), max_graphs: int = 1):
        self.step, self.what, self.generators, self.max_graphs = step, what, tuple(generators), max_graphs
        self.enabled = cuda_graph_on(runtime, device)
        self.shape_calls: dict[tuple, int] = {}  # input shapes → their calls so far
        self.captures: dict[tuple, StepGraph.Capture] = {}  # input shapes → their graph
        self.side = None

    @property
    def calls(self) -> int:
        """Calls of the shapes that have a graph (warm-up, capture and replays)."""
        return sum(self.shape_calls[shapes] for shapes in self.captures)

    @property
    def replays(self) -> int:
        """Calls replayed (each capture's own call included)."""
        return self.calls - self.WARMUP * len(self.captures)

    def _eager(self, inputs):
        import warnings

        import torch

        if self.side is None:
            self.side = torch.cuda.Stream()
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side), warnings.catch_warnings():
            # eager on purpose (warm-up, another shape): PyTorch's advice to build the optimizers without capturable,
            # said once per optimizer at its first uncaptured step, does not apply
            warnings.filterwarnings("ignore", "This instance was constructed with capturable=True", UserWarning)
            outputs = self.step(*inputs)
        torch.cuda.current_stream().wait_stream(self.side)
        return outputs

    def _capture(self, inputs) -> StepGraph.Capture:
        import torch

        capture = StepGraph.Capture(torch.cuda.CUDAGraph(), [x.clone() for x in inputs])
        for generator in self.generators:
            capture.graph.register_generator_state(generator)
        try:
            with torch.cuda.graph(capture.graph, stream=self.side):
                capture.outputs = self.step(*capture.inputs)
        except RuntimeError as err:
            while err.__context__ is not None:  # the step's own error, not capture_end's "a previous error"
                err = err.__context__
            text = " ".join(str(err).split())[:240]
            raise ParamError(f"{self.what}: runtime.cuda_graph: the training iteration cannot be captured as a "
                             f"CUDA graph ({type(err).__name__}: {text}); set runtime.cuda_graph: false") from err
        return capture

    def __call__(self, *inputs):
        if not self.enabled:
            return self.step(*inputs)
        shapes = tuple(x.shape for x in inputs)
        calls = self.shape_calls[shapes] = self.shape_calls.get(shapes, 0) + 1
        capture = self.captures.get(shapes)
        if capture is None:
            if calls <= self.WARMUP or len(self.captures) >= self.max_graphs:
                return self._eager(inputs)
            capture = self.captures[shapes] = self._capture(inputs)
        else:
            for captured, x in zip(capture.inputs, inputs, strict=True):
                captured.copy_(x)
        capture.graph.replay()
        return capture.outputs


def keep_capturable(runtime: Runtime, device, *optimizers) -> None:
    """After `load_state_dict` of a checkpoint: each param group's `capturable`, and where its step counts live, as this
    run needs them. PyTorch restores the saved groups' settings and puts an unfused optimizer's step counts where the
    saved setting kept them, so a run resumed with runtime.cuda_graph from a checkpoint taken without it would fail
    its first step ("params and state_steps must be on supported devices") or its capture ("capturable is False"),
    and one resumed without it would read a device step count every step. Capturable: on the parameter's device;
    otherwise on the CPU, as a fresh optimizer keeps them (fused ones: on the device either way)."""
    import torch

    capturable = cuda_graph_on(runtime, device)
    for opt in optimizers:
        for group in opt.param_groups if opt is not None else ():
            group["capturable"] = capturable
            for p in group["params"]:
                state = opt.state.get(p, {})
                if torch.is_tensor(step := state.get("step")) and not group.get("fused"):
                    state["step"] = step.to(p.device if capturable else "cpu", torch.float32)


def optimizer(optimizer_class, params, **kwargs):
    """`optimizer_class(params, **kwargs)` for a `torch.optim` optimizer (Adam, RMSprop, …): the same update
    kernels, state_dict and hooks, without the torch.compile guards PyTorch wraps around `step`,
    `add_param_group`, `zero_grad` and `(load_)state_dict`. Those guards import `torch._dynamo` on first use
    (sympy, torch.fx, FSDP: 2.5 s of a training process's start-up on a 2-core Intel Xeon) for graph breaks that
    do nothing outside a compiled region; replab compiles models (`maybe_compile`), never an optimizer step.
    Raises what `optimizer_class` raises for bad arguments."""
    return _eager_optimizer_class(optimizer_class)(params, **kwargs)


@functools.cache
def _eager_optimizer_class(optimizer_class: type) -> type:
    import inspect

    import torch

    def unguarded(name: str):  # the method as written, under the guard decorators (each keeps __wrapped__)
        return inspect.unwrap(next(c.__dict__[name] for c in optimizer_class.__mro__ if name in c.__dict__))

    step = unguarded("step")

    @functools.wraps(step)
    def eager_step(self, *args, **kwargs):  # the no-grad mode of torch's guard, without its graph breaks
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return step(self, *args, **kwargs)

    methods = {name: unguarded(name) for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict")}
    return type(optimizer_class.__name__, (optimizer_class,),
                {**methods, "step": eager_step, "__module__": __name__, "__qualname__": optimizer_class.__name__})


def clip_grad_norm_(parameters, max_norm: float):
    """`torch.nn.utils.clip_grad_norm_` (L2 over all gradients; scale them by max_norm / norm when the norm is
    larger); returns the total norm. On the CPU, where reading the norm costs no device sync, gradients that need
    no clipping are left untouched instead of being multiplied by 1 (that rescale was 2 % of a paper-size aae_ssl
    step); elsewhere it is the library call."""
    import torch

    params = [p for p in parameters if p.grad is not None]
    if not params or params[0].device.type != "cpu":
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params]
    total = torch.nn.utils.get_total_norm(grads)
    if not total <= max_norm:  # also rescales (to NaN) when the norm is not finite, as the library call does
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


class LossGuard:
    """Stops a diverged run: `update(step, loss)` after every step records, on the device and without a sync, the
    first step whose loss is not finite; `check()` (at logging, evaluation and checkpoint points, and before
    saving) reads that flag once and raises ParamError naming the variant, the step and the param to look at, e.g.
    `aae_ssl aae_yz-100-0: loss is nan at iteration 37 (lower aae_ssl.lr?)`. The `watch`ed networks ({name: module,
    anything with `named_parameters()`}) are checked too: a step whose loss was finite can still make the weights
    NaN or infinite, and the evaluation that follows would fail inside its measure (scikit-learn's ValueError) or
    log NaN: `attention_vat … : weight classifier.weight is not finite after iteration 32 (lower …?)`. On the CPU,
    where reading a loss costs no sync, `update` reads it on the host: one read instead of six small ops a step;
    elsewhere (`sync_free`, default: a device other than the CPU) the flag stays on the device."""

    def __init__(self, what: str, device, hint: str = "", watch: dict | None = None, sync_free: bool | None = None):
        import torch

        self.what, self.hint = what, hint
        self.watch = {name: net for name, net in (watch or {}).items() if net is not None}
        self.on_host = torch.device(device).type == "cpu" if sync_free is None else not sync_free
        # the first non-finite step (−1: none) and its loss: Python numbers on the CPU, 0-d tensors elsewhere
        self.first = -1 if self.on_host else torch.full((), -1, dtype=torch.long, device=device)
        self.value = 0.0 if self.on_host else torch.zeros((), device=device)
        self.step = 0  # the last step recorded

    def update(self, step: int, *losses) -> None:
        import torch

        self.step = step
        if self.on_host:
            if self.first < 0 and not math.isfinite(value := sum(float(x.detach()) for x in losses)):
                self.first, self.value = step, value
            return
        loss = torch.stack([x.detach().float().reshape(()) for x in losses]).sum()
        new = ~torch.isfinite(loss) & (self.first < 0)
        self.first = torch.where(new, step, self.first)
        self.value = torch.where(new, loss, self.value)

    def check(self) -> None:
        from replab.io import first_non_finite

        hint = f" ({self.hint})" if self.hint else ""
        first = int(self.first)
        if first >= 0:
            raise ParamError(f"{self.what}: loss is {float(self.value)} at iteration {first}{hint}")
        if bad := first_non_finite({name: dict(net.named_parameters()) for name, net in self.watch.items()}):
            raise ParamError(f"{self.what}: weight {bad[0]} is not finite after iteration {self.step}{hint}")
