"""Resume after a kill: periodic checkpoints of one training stage, beside (not among) its DVC outputs.

A training loop saves at its safe points (the end of an iteration, an epoch, a repetition), at most every
`runtime.checkpoint_every` seconds, everything it needs to continue exactly: module and optimiser states, its
counters and bookkeeping, the torch.Generators it draws from, the global RNGs (python, numpy, torch CPU and
CUDA) and a copy of the variant's DVCLive files. Rerun with the same params (`dvc repro` after the kill), the
stage resumes from the last checkpoint — on the same machine with deterministic algorithms, to the same final
metrics as an uninterrupted run — and DVCLive continues its curves (`resume=True`). A checkpoint written for
other params, other training code or other kernels is discarded: its fingerprint is the sha256 of the paper's params
section, the variant, the runtime settings that change results, the paper's model.py + train.py and the replab code
its `train` reaches (an edit of runtime.py's optimizer), the processed data and `machine_facts` (the SIMD level).

    checkpoints/<paper>/<key>/checkpoint.pt    (git-ignored, not a dvc.yaml output; deleted once the trained
                                               model is saved)

Not an output, not even a `persist: true` one: `dvc exp run`, `dvc checkout` and `dvc exp apply` force the workspace
to dvc.lock's outputs first, which reset a persistent folder to the empty one recorded there and so deleted the
checkpoint of the very run being repeated; DVC never touches an undeclared file.

Usage in a paper's train.py (attention_vat: the same lines):

    ckpt = Checkpoints(variant, cfg, runtime)                  # loads a matching checkpoint, if any
    with ckpt.open_live() as live:                             # DVCLive, resumed when the checkpoint was
        state = ckpt.resume("fit")                             # after building models: the loop's state or None
        ...                                                    # (restores the RNGs when it returns a state)
        for step in range(start, steps + 1):
            ...
            ckpt.maybe_save("fit", lambda: {...}, guard)       # at a safe point; cheap when not due
    rt.save_trained(...)
    ckpt.finish()

Loops that run inside another (autoencoder's per-class anomaly models) keep the outer state in `ckpt.context`,
saved with every checkpoint and returned by `ckpt.resumed_context`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

FILE = "checkpoint.pt"


def code_files(paper: str) -> list[Path]:
    """The training code of a paper: its model.py and train.py (a checkpoint of other code is discarded)."""
    root = Path(__file__).resolve().parent / "papers" / paper
    return [root / "model.py", root / "train.py"]


def data_digest(variant, cfg) -> dict[str, str | None]:
    """{dataset: sha256 over data/processed/<dataset>'s files (relative path + content), None when absent} for the
    data sets a variant trains on (its `dataset` axis or its section's `dataset`). The data params alone would miss
    a changed download; a checkpoint trained on other data (`-S data.writers.shear=0.3`, then killed, then rerun
    without it) resumed as if it were this run's."""
    from replab.io import file_digests

    names = {variant.axes.get("dataset"), getattr(cfg, "dataset", None)} - {None}
    digests: dict[str, str | None] = {}
    for name in sorted(names):
        files = file_digests(Path("data/processed") / str(name))
        digests[name] = hashlib.sha256(json.dumps([list(item) for item in files.items()]).encode()).hexdigest() \
            if files else None
    return digests


def machine_facts() -> dict[str, Any]:
    """What changes a run's float results on one machine besides params and code: the SIMD level PyTorch dispatches
    to (ATEN_CPU_CAPABILITY can lower it), replab's CPU kernel choice (`functional.ONEDNN_LINEAR`), the thread count
    and the torch and numpy versions. A checkpoint written under other facts is another run's."""
    import torch

    from replab.functional import ONEDNN_LINEAR

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "onednn_linear": ONEDNN_LINEAR,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "numpy": np.__version__}


def run_facts(variant, cfg, runtime) -> dict[str, Any]:
    """What determines a paper's training runs besides its params and variant: the result-relevant runtime, the code
    (model.py and train.py whole, and every statement of replab the paper's `train` reaches: `code_closure`), the
    processed data and `machine_facts`. Shared by `fingerprint` and attention_vat's Fig. 2 reuse (`fit_context`)."""
    from replab.code_closure import fingerprint as code_fingerprint

    code = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in code_files(variant.paper) if p.exists()}
    return {"runtime": {k: getattr(runtime, k) for k in ("device", "deterministic", "tf32", "compile", "compile_mode")},
            "code": code, "reached": code_fingerprint(f"replab.papers.{variant.paper}.train", "train"),
            "data": data_digest(variant, cfg), "machine": machine_facts()}


def fingerprint(variant, cfg, runtime, facts: dict[str, Any] | None = None) -> str:
    """sha256 of what determines a training run: params section, variant and its `run_facts` (given or computed)."""
    what = {"paper": variant.paper, "key": variant.key, "axes": variant.axes,
            "cfg": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg,
            **(facts if facts is not None else run_facts(variant, cfg, runtime))}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def rng_state() -> dict[str, Any]:
    """The global RNGs: python, numpy (as a tensor, so the file loads with weights_only), torch CPU and CUDA."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                     cached), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(_as_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """random.setstate wants the nested tuples random.getstate gave (a checkpoint may hand back lists)."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def read_tree(root: Path) -> dict[str, str]:
    """Every text file under `root` by relative path (DVCLive's metrics, TSV curves, summary)."""
    files = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file():
            try:
                files[str(path.relative_to(root))] = path.read_text()
            except UnicodeDecodeError:  # DVCLive writes text only; anything else is not needed to resume
                continue
    return files


def live_name_problem(root: Path, rel: str) -> str | None:
    """Why `rel`, a DVCLive file name restored from a checkpoint, may not be written under `root` (absolute, empty,
    `..`, or through a link out of it), or None."""
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or PurePosixPath(rel).is_absolute() or Path(rel).is_absolute() or ".." in parts or "\0" in rel:
        return "is not a relative path inside the live dir"
    base = root.resolve()
    if not (base / rel).resolve().is_relative_to(base):
        return "leads outside the live dir"
    return None


def non_finite(value, where: str) -> str | None:
    """The place (`state.encoder.w`) of the first tensor in `value` holding NaN or ±inf, or None
    (replab.io.first_non_finite)."""
    from replab.io import first_non_finite

    bad = first_non_finite(value, where)
    return None if bad is None else bad[0]


def restorable(state: Any) -> None:
    """Raise unless `state` restores the global RNGs (set_rng_state); the RNGs are left as they were (the CUDA
    ones are only checked for their type: setting them would initialise CUDA)."""
    import torch

    cuda = state.get("cuda", [])
    if not isinstance(cuda, list | tuple) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                                     for t in cuda):
        raise TypeError("'cuda' is not a list of byte tensors")
    before = rng_state()
    before.pop("cuda", None)
    try:
        set_rng_state({key: value for key, value in state.items() if key != "cuda"})
    finally:
        set_rng_state(before)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        if live_name_problem(root, rel) is not None:  # a checkpoint's names are checked when it is loaded
            raise ValueError(f"{root}: refusing to write {rel!r} outside it")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SAVED_KEYS = {"fingerprint", "loop", "where", "state", "context", "rng", "live"}  # what `Checkpoints.save` writes


def restore_failure(err: BaseException, loop_code) -> bool:
    """Whether `err` was raised loading a saved state: inside a `load_state_dict` (modules, optimisers, batch
    iterators) or directly in the loop function that called `resume` (`loop_code`: a C call like
    Generator.set_state). replab's own one-line errors and running out of memory are not."""
    from replab.io import DataError
    from replab.params import ParamError

    if isinstance(err, DataError | ParamError | MemoryError) or type(err).__name__ == "OutOfMemoryError" \
            or "out of memory" in str(err).lower():
        return False
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return any(code.co_name == "load_state_dict" for code in frames) or (bool(frames) and frames[-1] is loop_code)


class SavedState(dict):
    """A checkpoint's loop state; a key the loop expects but the file lacks is one DataError line naming the file
    (a checkpoint edited or written by other code under the same fingerprint), not a KeyError traceback."""

    def __init__(self, state: dict, path: Path):
        super().__init__(state)
        self.path = path

    def __missing__(self, key):
        from replab.io import DataError

        raise DataError(f"{self.path}: checkpoint lacks {key!r} (written by other code?); delete it to start over")


class Checkpoints:
    """Periodic, resumable training state of one variant (see the module docstring)."""

    def __init__(self, variant, cfg, runtime, log: Callable[[str], None] | None = None):
        self.dir = variant.checkpoint_dir
        self.path = self.dir / FILE
        self.live_dir = Path(variant.live_dir)
        self.every = float(runtime.checkpoint_every)
        self.facts = run_facts(variant, cfg, runtime)  # (attention_vat's Fig. 2 matches runs on them too)
        self.fingerprint = fingerprint(variant, cfg, runtime, self.facts)
        self.name = f"{variant.paper} {variant.key}"
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.context: dict[str, Any] = {}
        self.saved = 0
        self.clock = None
        self._restoring = None  # the code object of the function that called `resume`, until its first maybe_save
        self._last = time.monotonic()
        self.loaded = self._load()
        if self.loaded is not None:
            write_tree(self.live_dir, self.loaded["live"])  # DVC removed the curves before rerunning the stage

    def _load(self) -> dict | None:
        import torch

        for folder in (self.dir.parent.parent, self.dir.parent, self.dir):  # checkpoints/, the paper's, the variant's
            if (folder.exists() or folder.is_symlink()) and not folder.is_dir():  # a file in the way: writing the
                self.log(f"{folder}: not a folder (where checkpoints go), discarded; starting over")  # first
                folder.unlink()  # checkpoint, or discarding it after training, failed with a traceback
                return None
        if not self.path.exists() and not self.path.is_symlink():
            return None
        if not self.path.is_file():
            return self._reject("not a file")
        try:
            loaded = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for unreadable files
            return self._reject(f"unreadable checkpoint ({type(err).__name__})", prefix=False)
        if not isinstance(loaded, dict) or not SAVED_KEYS <= loaded.keys():
            return self._reject("not a replab checkpoint", prefix=False)
        if loaded.get("fingerprint") != self.fingerprint:
            return self._reject("written for other params or training code", prefix=False)
        if (problem := self._problem(loaded)) is not None:
            return self._reject(problem)
        self.log(f"{self.name}: resuming from {self.path} ({loaded['loop']}, {loaded['where']})")
        return loaded

    def _reject(self, why: str, prefix: bool = True) -> None:
        """Log one line saying why the checkpoint is unusable, remove it (file or whatever is there) and return None:
        training starts over."""
        self.log(f"{self.path}: {'unusable checkpoint: ' if prefix else ''}{why}, discarded; starting over")
        self.discard()
        return None

    def _problem(self, loaded: dict) -> str | None:
        """What makes a checkpoint with a matching fingerprint unusable (wrong structure, a DVCLive file name outside
        the live dir, a NaN or infinite tensor, RNG states that do not restore), or None."""
        for key, kind in (("loop", str), ("where", str), ("state", dict), ("context", dict), ("rng", dict),
                          ("live", dict)):
            if not isinstance(loaded[key], kind):
                return f"{key!r} is a {type(loaded[key]).__name__}, not a {kind.__name__}"
        seconds = loaded.get("seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
                or seconds < 0:
            return f"'seconds' is {seconds!r}, not a finite number >= 0"
        for rel, text in loaded["live"].items():
            if not isinstance(rel, str) or not isinstance(text, str):
                return f"'live' holds {rel!r}: {type(text).__name__} (file names and texts must be strings)"
            if (problem := live_name_problem(self.live_dir, rel)) is not None:
                return f"'live' file name {rel!r} {problem}"
        if (where := non_finite(loaded["state"], "state") or non_finite(loaded["context"], "context")) is not None:
            return f"{where} holds NaN or infinite values"
        try:
            restorable(loaded["rng"])
        except Exception as err:  # random, numpy and torch raise several types for a bad state
            return f"'rng' does not restore ({type(err).__name__}: {' '.join(str(err).split())[:100]})"
        return None

    @property
    def resuming(self) -> bool:
        return self.loaded is not None

    @property
    def resumed_context(self) -> dict[str, Any]:
        return self.loaded["context"] if self.loaded is not None else {}

    @contextlib.contextmanager
    def open_live(self, sub: str | None = None, resume: bool | None = None):
        """DVCLive on the variant's curves (`sub`: a folder of its own in them, for a stage that trains several
        models), continuing them when resuming (`resume`: whether this one was the one interrupted; default
        whether there is a checkpoint). A saved state that does not load into the loop's modules (a tensor of
        another shape: `load_state_dict`'s RuntimeError, a generator state that does not restore), raised inside
        this block between `resume` and the loop's first `maybe_save`, discards the checkpoint and is one
        DataError line saying why (the rerun starts over) instead of a traceback."""
        from replab import runtime as rt

        live_dir = self.live_dir / sub if sub is not None else self.live_dir
        with rt.open_live(live_dir, resume=self.resuming if resume is None else resume) as live:
            try:
                yield live
            except Exception as err:
                if self._restoring is None or not restore_failure(err, self._restoring):
                    raise
                raise self.unusable(err) from None

    def unusable(self, err: BaseException):
        """Discard the checkpoint whose state failed to load into the modules (`err`); the DataError to raise."""
        from replab.io import DataError

        self._restoring = None
        self.discard()
        self.loaded = None
        why = " ".join(str(err).split())
        return DataError(f"{self.path}: unusable checkpoint: its state does not load into the {self.name} loop "
                         f"({type(err).__name__}: {why[:300]}{'…' if len(why) > 300 else ''}), discarded; rerun to "
                         "start over")

    def resume(self, loop: str) -> dict | None:
        """The saved state of `loop` when the checkpoint was taken inside it (restoring the global RNGs), else
        None. Call after building the loop's modules (their initialisation draws from the global RNG)."""
        if self.loaded is None or self.loaded["loop"] != loop:
            return None
        set_rng_state(self.loaded["rng"])
        self._restoring = sys._getframe(1).f_code  # the loop loading the state into its modules (open_live)
        return SavedState(self.loaded["state"], self.path)

    def track(self, clock):
        """Count the training time before the kill in this RunClock (`run.seconds` of the metrics); returns it.
        Samples are loop state: a loop that adds them step by step saves and restores `clock.samples` itself."""
        self.clock = clock
        if self.loaded is not None:
            clock.started = time.perf_counter() - float(self.loaded.get("seconds", 0.0))
        return clock

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def maybe_save(self, loop: str, state: Callable[[], dict], guard=None, where: str = "") -> bool:
        """At a safe point of `loop`: when due, check the loss (`guard`) and save `state()`. True if saved."""
        self._restoring = None  # the loop runs: the saved state loaded
        if not self.due():
            return False
        if guard is not None:
            guard.check()  # never checkpoint a diverged run
        self.save(loop, state(), where)
        return True

    def save(self, loop: str, state: dict, where: str = "") -> None:
        """Write the checkpoint; a NaN or infinite tensor in `state` or the context is a NonFiniteError (one line
        naming the checkpoint and the tensor) and nothing is written: a rerun would resume the diverged run."""
        from replab.io import NonFiniteError, write_torch

        if (bad := non_finite(state, "state") or non_finite(self.context, "context")) is not None:
            raise NonFiniteError(f"{self.path}: not saved, {bad} holds NaN or infinite values ({self.name}, {loop}"
                                 f"{', ' + where if where else ''}); a diverged run? see its training curve")
        write_torch(self.path, {"fingerprint": self.fingerprint, "loop": loop, "where": where, "state": state,
                                "context": self.context, "rng": rng_state(), "live": read_tree(self.live_dir),
                                "seconds": self.clock.seconds if self.clock is not None else 0.0})
        self.saved += 1
        self._last = time.monotonic()

    def discard(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.path.unlink(missing_ok=True)

    def finish(self) -> None:
        """The trained model is saved: the checkpoint is no longer needed, nor its folder (and the paper's, once
        empty)."""
        self.discard()
        for folder in (self.dir, self.dir.parent):
            try:
                folder.rmdir()
            except OSError:  # absent, or still holding another variant's checkpoint
                break
        self.loaded = None


