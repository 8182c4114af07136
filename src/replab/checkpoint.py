"""Resume after a kill: periodic checkpoints of one training stage, beside (not among) its DVC outputs.

A training loop saves at its safe points (the end of an iteration, an epoch, a repetition), at most every
`runtime.checkpoint_every` seconds, everything it needs to continue exactly: module and optimiser states, its
counters and bookkeeping, the torch.Generators it draws from, the global RNGs (python, numpy, torch CPU and
CUDA) and a copy of the variant's DVCLive files. Rerun with the same params (`dvc repro` after the kill), the
stage resumes from the last checkpoint — on the same machine with deterministic algorithms, to the same final
metrics as an uninterrupted run — and DVCLive continues its curves (`resume=True`). A checkpoint written for
other params or other training code is discarded: its fingerprint is the sha256 of the paper's params section,
the variant, the runtime settings that change results, the paper's model.py + train.py and the processed data.

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

import dataclasses
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
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
    from replab.io import sha256_file

    names = {variant.axes.get("dataset"), getattr(cfg, "dataset", None)} - {None}
    digests: dict[str, str | None] = {}
    for name in sorted(names):
        root = Path("data/processed") / str(name)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        digests[name] = hashlib.sha256(json.dumps([[str(p.relative_to(root)), sha256_file(p)] for p in files])
                                       .encode()).hexdigest() if files else None
    return digests


def fingerprint(variant, cfg, runtime) -> str:
    """sha256 of what determines a training run: params section, variant, result-relevant runtime, code, data."""
    code = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in code_files(variant.paper) if p.exists()}
    what = {
        "paper": variant.paper, "key": variant.key, "axes": variant.axes,
        "cfg": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg,
        "runtime": {k: getattr(runtime, k) for k in ("device", "deterministic", "tf32", "compile", "compile_mode")},
        "code": code,
        "data": data_digest(variant, cfg),
    }
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


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SAVED_KEYS = {"fingerprint", "loop", "where", "state", "context", "rng", "live"}  # what `Checkpoints.save` writes


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
        self.dir = Path("checkpoints") / variant.paper / variant.key
        self.path = self.dir / FILE
        self.live_dir = Path(variant.live_dir)
        self.every = float(runtime.checkpoint_every)
        self.fingerprint = fingerprint(variant, cfg, runtime)
        self.name = f"{variant.paper} {variant.key}"
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.context: dict[str, Any] = {}
        self.saved = 0
        self.clock = None
        self._last = time.monotonic()
        self.loaded = self._load()
        if self.loaded is not None:
            write_tree(self.live_dir, self.loaded["live"])  # DVC removed the curves before rerunning the stage

    def _load(self) -> dict | None:
        import torch

        if not self.path.exists():
            return None
        try:
            loaded = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for unreadable files
            self.log(f"{self.path}: unreadable checkpoint ({type(err).__name__}), discarded; starting over")
            self.discard()
            return None
        if not isinstance(loaded, dict) or not SAVED_KEYS <= loaded.keys():
            self.log(f"{self.path}: not a replab checkpoint, discarded; starting over")
            self.discard()
            return None
        if loaded.get("fingerprint") != self.fingerprint:
            self.log(f"{self.path}: written for other params or training code, discarded; starting over")
            self.discard()
            return None
        self.log(f"{self.name}: resuming from {self.path} ({loaded['loop']}, {loaded['where']})")
        return loaded

    @property
    def resuming(self) -> bool:
        return self.loaded is not None

    @property
    def resumed_context(self) -> dict[str, Any]:
        return self.loaded["context"] if self.loaded is not None else {}

    def open_live(self):
        """DVCLive on the variant's curves, continuing them when resuming."""
        from replab import runtime as rt

        return rt.open_live(self.live_dir, resume=self.resuming)

    def resume(self, loop: str) -> dict | None:
        """The saved state of `loop` when the checkpoint was taken inside it (restoring the global RNGs), else
        None. Call after building the loop's modules (their initialisation draws from the global RNG)."""
        if self.loaded is None or self.loaded["loop"] != loop:
            return None
        set_rng_state(self.loaded["rng"])
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
        if not self.due():
            return False
        if guard is not None:
            guard.check()  # never checkpoint a diverged run
        self.save(loop, state(), where)
        return True

    def save(self, loop: str, state: dict, where: str = "") -> None:
        from replab.io import write_torch

        write_torch(self.path, {"fingerprint": self.fingerprint, "loop": loop, "where": where, "state": state,
                                "context": self.context, "rng": rng_state(), "live": read_tree(self.live_dir),
                                "seconds": self.clock.seconds if self.clock is not None else 0.0})
        self.saved += 1
        self._last = time.monotonic()

    def discard(self) -> None:
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


