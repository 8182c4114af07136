"""Atomic file output, checksums, and the checks on values that enter or leave a file.

Every file replab writes goes through a temp file in the same directory and an `os.replace`, so a stage
that dies half-way leaves either the old file or nothing, never a truncated one. JSON is written strict:
NaN / ±inf become null (missing). `require_finite` stops an evaluation on NaN scores with one line.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class DataError(RuntimeError):
    """A data file is missing, corrupt or does not match its pinned checksum (message names the file)."""


class NonFiniteError(DataError):
    """Values that must be finite (scores, losses, latents of a trained model) hold NaN or ±inf. A DataError,
    so the command line reports it as one line (`error: …`, exit 2) instead of a traceback."""


def require_finite(values: Any, what: str) -> Any:
    """Return `values` (numpy array, torch tensor or number) unchanged if every element is finite, else raise
    NonFiniteError: one line "`what`: k of n values are NaN or infinite (first at flat index i) ...".

    `what` names the variant and the quantity, e.g. "autoencoder anomaly-conv-0: anomaly scores of class 3".
    Call it before a library that fails on NaN with a traceback (scikit-learn's "Input contains NaN") or
    crashes (t-SNE)."""
    if hasattr(values, "detach"):  # a torch tensor, checked where it lives (no torch import here)
        flat = values.detach().reshape(-1)
        bad_mask = ~flat.isfinite() if flat.is_floating_point() or flat.is_complex() else None
        bad = int(bad_mask.sum().item()) if bad_mask is not None else 0
        first = int(bad_mask.nonzero()[0, 0].item()) if bad else -1
        total = flat.numel()
    else:
        flat = np.asarray(values).reshape(-1)
        if flat.dtype.kind not in "fc":
            return values  # integers and booleans are always finite
        bad_mask = ~np.isfinite(flat)
        bad = int(bad_mask.sum())
        first = int(np.argmax(bad_mask)) if bad else -1
        total = flat.size
    if bad:
        raise NonFiniteError(f"{what}: {bad} of {total} values are NaN or infinite (first at flat index {first}); "
                             "a diverged model? see its training curve")
    return values


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, on error delete it. A process killed
    in between (kill -9, a lost node) cannot delete its temp file: the next successful write of `path` on this
    host removes it (`remove_leftovers`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 → the mode open() would have given
        os.replace(tmp, path)
        remove_leftovers(path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temp directory beside `path`; on success it replaces `path` as a whole (and removes a killed
    writer's leftovers, as `atomic_path` does)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 → the mode mkdir would have given
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        remove_leftovers(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# A temp name: .<target name>.<host>-<pid>.<8 random characters of mkstemp>.tmp[<suffix>] (before the writer
# was in the name: without <host>-<pid>.)
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?")


def _host_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}-"


def _temp_prefix(path: Path) -> str:
    return f"{_host_prefix(path)}{os.getpid()}."


def is_leftover(path: str | os.PathLike) -> bool:
    """Whether `path` is, or lies in, a temp file or directory of `atomic_path` / `atomic_dir`."""
    return any(_TEMP_NAME.fullmatch(part) for part in Path(path).parts)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(path: Path) -> None:
    """Delete the temp files and directories beside `path` that writers of `path` on this host left when they
    were killed (their process is gone). Another host's, or a live process's, are left alone."""
    prefix = _host_prefix(path)
    ours = re.compile(rf"{re.escape(prefix)}(\d+)\.[a-z0-9_]{{8}}\.tmp(?:\.[A-Za-z0-9]+)?")
    for sibling in path.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        found = ours.fullmatch(sibling.name)
        if found and not _running(int(found[1])):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic | np.ndarray):
        return _jsonable(value.tolist())  # np.float64(nan) is a float too: convert, then check it below
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN / Infinity; DVC shows null as missing (`-`), NaN leaks into --json
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as strict JSON (atomically): NaN and ±inf, Python or numpy, become null (= missing)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a non-standard NaN / Infinity token (from another writer) reads as None (missing)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(), parse_constant=lambda _token: None)
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the stage that produces it: `dvc repro`)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


class YAMLSyntaxError(ValueError):
    """Text that is not valid YAML 1.2 (or repeats a key); the message is one line."""


def parse_yaml(text: str) -> Any:
    """YAML text → Python values, read exactly as DVC reads params.yaml (ruamel.yaml's safe loader, YAML 1.2).

    PyYAML (YAML 1.1) disagrees with DVC on values DVC itself writes: `dvc exp run -S lr=1e-5` stores `1e-05`,
    a float to DVC and the string '1e-05' to PyYAML; `yes`/`on`/`off` are booleans to PyYAML and strings to DVC;
    `010` is 8 to PyYAML and 10 to DVC. Reading with DVC's parser makes the value a stage trains with the value
    `dvc exp show` and `dvc params diff` show. A repeated key is an error (PyYAML keeps the last silently).

    Raises `YAMLSyntaxError` with the parser's message on one line.
    """
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError as err:
        # ruamel's messages span lines and end with a pointer to its docs; a one-line error keeps the essentials
        message = " ".join(str(err).split("To suppress this check")[0].split())
        message = message.replace('in "<unicode string>", line', "at line")
        raise YAMLSyntaxError(message) from None


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the stage that produces it: `dvc repro`)") from None
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz ({err})") from None


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
