"""Atomic file output, checksums, and the checks on values that enter or leave a file.

Every file replab writes goes through a temp file in the same directory and an `os.replace`, so a stage
that dies half-way leaves either the old file or nothing, never a truncated one. JSON is written strict:
NaN / ±inf become null (missing). `require_finite` stops an evaluation on NaN scores with one line.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class DataError(RuntimeError):
    """A data file is missing, corrupt or does not match its pinned checksum (message names the file)."""


class PartialFailure(RuntimeError):
    """Some or all items of a command (papers of `replab bench`) failed after it started; whatever succeeded was
    printed and written. Exit status 1 (bad input is a ParamError or DataError instead, exit status 2)."""


def one_line(message: Any) -> str:
    """`message` as one printable line: a line break, tab or other control character (from a user's argument, a
    file name, a YAML value or a tool's output) shown as its Python escape, `\\n`, so an error stays one line in a
    terminal and in DVC's logs and still shows where the input had such a character."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))


def out_of_memory(err: BaseException, section: str = "") -> str | None:
    """One line for an allocation that failed (Python's MemoryError, PyTorch's CPU allocator, CUDA/MPS out of
    memory: usually sizes in params.yaml too large for the device); None for any other error. `section`: the
    params.yaml section whose sizes the command read (`data.writers`, `aae_ssl`), named in the line."""
    text = " ".join(str(err).split())
    if not (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    tried = re.search(r"(?:you )?tried to allocate ([\d.]+ ?[KMGTP]?i?B|\d+ bytes)", text)
    where = f"params.yaml's {section} sizes" if section else "the sizes in params.yaml"
    return (f"out of memory{f' (tried to allocate {tried.group(1)})' if tried else ''}: {where} "
            "(batch sizes, hidden and embedding sizes, data set sizes) are too large for this device's memory")


def not_writable(folder: str | os.PathLike | None) -> str | None:
    """Why a file cannot be made in the existing `folder` ("/x is not writable (Read-only file system)"), or None.
    A file is written there to be sure: os.access says yes for root, on special filesystems (/proc) and past an
    immutable attribute."""
    if folder is None or not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".replab-"):
            return None
    except OSError as err:
        return f"{folder} is not writable ({err.strerror})"


def require_writable(*folders: str | os.PathLike, what: str) -> None:
    """DataError unless files can be made and removed in each of `folders`, the folders inside it and its parent
    (where `atomic_dir` makes the new folder and swaps it in), or, for one that does not exist yet, in its nearest
    existing parent: checked before `what` (e.g. "train autoencoder simple-0") starts, so that a folder it cannot
    write stops it before any work, and before DVCLive empties a curves folder it then cannot refill."""
    for folder in map(Path, folders):
        if folder.is_dir():
            places = [folder.parent, folder, *(p for p in folder.rglob("*") if p.is_dir())]
        else:
            places = [next((p for p in folder.absolute().parents if p.is_dir()), None)]
        for place in places:
            if (problem := not_writable(place)) is not None:
                raise DataError(f"{problem}: {what} writes there (check the folder's permissions)")


# The file system refused a write for a reason outside replab's code: permissions, a read-only mount, a full disk
_UNWRITABLE = {errno.EACCES: "no permission", errno.EPERM: "not permitted (an immutable or protected file?)",
               errno.EROFS: "a read-only file system", errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "the disk quota is used up"}


def unwritable(err: OSError) -> str | None:
    """One line for an OSError of the file system refusing a write (`_UNWRITABLE`), naming the path, e.g.
    "models/autoencoder/simple-0: not permitted (an immutable or protected file?) …"; None for any other error,
    which is a fault to show in full, and for one naming no path (not a file's: a signal's or a thread's EPERM)."""
    if (why := _UNWRITABLE.get(err.errno)) is None or err.filename is None:
        return None
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{where}: {why} ({err.strerror}); replab must write there (check the folder's permissions and free space)"


class NonFiniteError(DataError):
    """Values that must be finite (scores, losses, latents of a trained model) hold NaN or ±inf. A DataError,
    so the command line reports it as one line (`error: …`, exit 2) instead of a traceback."""


def require_finite(values: Any, what: str, hint: str = "a diverged model? see its training curve") -> Any:
    """Return `values` (numpy array, torch tensor or number) unchanged if every element is finite, else raise
    NonFiniteError: one line "`what`: k of n values are NaN or infinite (first at flat index i); `hint`".

    `what` names the variant and the quantity, e.g. "autoencoder anomaly-conv-0: anomaly scores of class 3".
    Call it before a library that fails on NaN with a traceback (scikit-learn's "Input contains NaN") or
    crashes (t-SNE); data read from a file pass their own `hint` (what must be finite)."""
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
                             f"{hint}")
    return values


def finite(value: Any) -> float | None:
    """`value` as a float if it is a finite number, else None (None, NaN, ±inf, an integer beyond a float's range,
    which JSON allows, or a non-number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # (math.isfinite raises it too)
        return None
    return number if math.isfinite(number) else None


def first_non_finite(value: Any, where: str = "") -> tuple[str, Any] | None:
    """(its place, e.g. "state.encoder.w", the tensor) of the first floating-point or complex tensor in nested
    dicts/lists/tuples `value` (a state dict, a checkpoint) holding NaN or ±inf; None when there is none. Python
    floats are bookkeeping (an initial best of inf) and not checked. The tensors' flags are read once per device,
    not once per tensor: on a GPU every read is a sync (censor's 16-tensor state took 16 a repetition)."""
    leaves = list(_float_tensors(value, where))
    if not leaves:
        return None
    import torch  # loaded already: `value` holds tensors

    finite: dict[int, bool] = {}
    for device in dict.fromkeys(tensor.device for _, tensor in leaves):
        on_it = [i for i, (_, tensor) in enumerate(leaves) if tensor.device == device]
        flags = torch.stack([leaves[i][1].isfinite().all() for i in on_it])
        finite.update(zip(on_it, flags.tolist(), strict=True))
    return next(((place, tensor) for i, (place, tensor) in enumerate(leaves) if not finite[i]), None)


def _float_tensors(value: Any, where: str):
    """(place, tensor) of each floating-point or complex tensor in nested dicts/lists/tuples, depth first."""
    if isinstance(value, dict | list | tuple):
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            yield from _float_tensors(item, f"{where}.{key}" if where else str(key))
    elif hasattr(value, "is_floating_point") and (value.is_floating_point() or value.is_complex()):
        yield where, value


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """What `path` is when it exists and is not a regular file, or a link to one (a directory, a device such as
    /dev/null, a named pipe, a socket): an atomic write would replace it with a plain file. None otherwise
    (a regular file, a link to one, a dangling link, nothing); a path the system cannot look up (a name too long, a
    loop of links, no permission) says why."""
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout → /proc/self/fd/1 → a pipe or terminal
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        return f"a path the system cannot look up ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    return _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")


_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
               stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket"}


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """While a file or folder is written: SIGTERM (a job runner's stop, `kill`, `dvc queue kill`) raises SystemExit
    (status 143), so the writer's cleanup deletes its temp file or folder, which the default action would leave
    behind. Only in the main thread and only while SIGTERM has its default action (a caller's handler wins)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, on error delete it. A process killed
    in between (kill -9, a lost node) cannot delete its temp file: the next successful write of `path` on this
    host removes it (`remove_leftovers`). A symbolic link at `path` is replaced by the new file, never written
    through (DVC's symlink and hardlink caches link outputs to read-only cache files); a `path` that is, or links
    to, something other than a regular file (a device, a pipe) is a DataError before anything is written."""
    path = Path(path)
    if (kind := not_a_regular_file(path)) is not None:
        raise DataError(f"{path}: is {kind}, not a file; replab writes files only (give a file path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with terminate_cleanly():
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
    writer's leftovers, as `atomic_path` does). A device, pipe or socket at `path` is a DataError, as there. Both
    delete their temp file or folder on SIGTERM too (`terminate_cleanly`)."""
    path = Path(path)
    if (kind := not_a_regular_file(path)) not in (None, "a directory"):
        raise DataError(f"{path}: is {kind}, not a folder; replab writes folders of files only (give a folder path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        with terminate_cleanly():
            yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 → the mode mkdir would have given
        if path.exists():  # the old folder moves aside under a temp name of its own (a killed swap's is a leftover)
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp.old", dir=path.parent))
            try:
                os.replace(path, old)  # (onto the empty folder just made)
            except BaseException:
                old.rmdir()
                raise
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # the old folder back in its place: a failed write loses nothing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        remove_leftovers(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# A temp name: .<target name>.<host>-<pid>.<8 random characters of mkstemp>.tmp[<suffix>]
_TEMP_TAIL = r"(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?"  # after `<host>-`
_TEMP_NAME = re.compile(r"\..+\.(?P<host>[^/]+)-" + _TEMP_TAIL)


def _host_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname()}-"


def _temp_prefix(path: Path) -> str:
    return f"{_host_prefix(path)}{os.getpid()}."


def is_leftover(path: str | os.PathLike) -> bool:
    """Whether `path` is, or lies in, a temp file or directory of `atomic_path` / `atomic_dir` that no running
    process on this host is writing (a killed writer's, or another host's)."""
    host = socket.gethostname()
    return any((found := _TEMP_NAME.fullmatch(part)) and not (found["host"] == host and _running(int(found["pid"])))
               for part in Path(path).parts)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no process id at all
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(path: Path) -> None:
    """Delete the temp files and directories beside `path` that writers of `path` on this host left when they
    were killed (their process is gone). Another host's, or a live process's, are left alone. Never raises: the
    write it follows has succeeded."""
    try:
        _remove_leftovers(path)
    except OSError:
        pass


def _remove_leftovers(path: Path) -> None:
    prefix = _host_prefix(path)
    ours = re.compile(re.escape(prefix) + _TEMP_TAIL)
    for sibling in path.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        found = ours.fullmatch(sibling.name)
        if found and not _running(int(found["pid"])):
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


def number_text(x: float) -> str:
    """`x` as the short text that reads back as the same float: `:g`'s (1, 0.5, 1e-05) where that is exact, else
    `repr`'s (1.0000001, 1.2345678e-07). Names built from float params (attention_vat's `@eps=` runs and their dev
    scores) so stay as distinct as the values: `:g` alone keeps 6 significant digits and gave 1 and 1.0000001 one
    name, one of the two runs overwriting the other's curves and score."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def rerun_hint(stage: str = "") -> str:
    """How to rewrite a damaged output: `dvc repro -s -f <stage>`, that stage alone (`-s`: a forced `dvc repro
    <stage>` forces every stage upstream of it too, DVC's download stages among them, which delete the archive they
    verified before fetching it again)."""
    return (f"run `dvc repro -s -f {stage}`" if stage else
            "rerun the stage that writes it alone: `dvc repro -s -f <stage>`")


_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


class _NonFiniteToken(ValueError):
    pass


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object's dict, refusing a key given twice (json keeps the last in silence: a hand edit's second
    `"test_error"` would replace the first)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        counts = collections.Counter(key for key, _ in pairs)
        raise _RepeatedKey(next(key for key, _ in pairs if counts[key] > 1))
    return value


def _non_finite(token: str, missing: bool) -> None:
    if not missing:
        raise _NonFiniteToken(token)


def _finite_float(text: str, missing: bool) -> float | None:
    value = float(text)  # 1e999 parses as inf
    return value if math.isfinite(value) else _non_finite(text, missing)


def read_json(path: str | os.PathLike, expect: type | None = None, stage: str = "",
              non_finite: str = "error", remedy: str = "") -> Any:
    """Parse a JSON file. A non-finite number (the non-standard NaN / Infinity tokens, or 1e999) is a DataError
    naming the file (`non_finite="error"`: replab writes a missing value as null, so such a number in a record or
    meta.json is damage, never a value to carry on), or reads as None (`"missing"`: metrics files, whose readers
    show and count missing values). With `expect` (dict or list), any other top-level value is a DataError naming
    the file; `stage` (the DVC stage that writes it, e.g. "prepare@mnist5k") goes into the hint of that error, or
    `remedy` in its place for a file no stage writes (`replab bench --json`'s). Bytes that are not UTF-8 text (a
    binary file) are a DataError saying so."""
    path = Path(path)
    missing = non_finite == "missing"
    hint = remedy or rerun_hint(stage)
    try:
        value = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys,
                           parse_constant=lambda token: _non_finite(token, missing),
                           parse_float=lambda text: _finite_float(text, missing))
    except _RepeatedKey as err:
        raise DataError(f"{path}: the key {json.dumps(str(err))} appears twice in one object, which replab never "
                        f"writes (JSON would keep the last in silence); {hint}") from None
    except _NonFiniteToken as err:
        raise DataError(f"{path}: holds the number {err}, which replab never writes (a missing value is null); "
                        f"{hint}") from None
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the stage that produces it: `dvc repro`)") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})"
                        + (f"; {hint}" if stage or remedy else "")) from None
    except UnicodeDecodeError as err:  # (a ValueError: before BEYOND_PYTHON)
        raise DataError(f"{path}: not UTF-8 text, as JSON is (an undecodable byte at offset {err.start}); "
                        f"{hint}") from None
    except BEYOND_PYTHON as err:
        raise DataError(f"{path}: valid JSON that Python cannot read ({beyond_python(err)})"
                        + (f"; {hint}" if stage or remedy else "")) from None
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err}); {hint}") from None
    if expect is not None and not isinstance(value, expect):
        raise DataError(f"{path}: top level is {_JSON_KINDS.get(type(value), type(value).__name__)}, expected "
                        f"{_JSON_KINDS.get(expect, expect.__name__)}; {hint}")
    return value


class YAMLSyntaxError(ValueError):
    """Text that is not valid YAML 1.2 (or repeats a key); the message is one line."""


# Valid JSON or YAML that Python cannot hold: an integer of more digits than int() converts (ValueError; 4,300 by
# default, sys.get_int_max_str_digits) or brackets nested deeper than the recursion limit (RecursionError). Catch
# after json.JSONDecodeError and YAMLSyntaxError, which are ValueErrors too.
BEYOND_PYTHON = (ValueError, RecursionError)


def beyond_python(err: BaseException) -> str:
    """What a BEYOND_PYTHON error of a JSON or YAML parser means, in a few words (its own message advises a
    Python setting)."""
    if isinstance(err, RecursionError):
        return "nested too deeply"
    return f"an integer of more than {sys.get_int_max_str_digits():,} digits"


def _FloatRangeConstructor() -> type:
    """ruamel's SafeConstructor, refusing a float literal beyond float64 (a subclass: DVC's own parser is untouched)."""
    from ruamel.yaml.constructor import SafeConstructor

    class FloatRangeConstructor(SafeConstructor):
        def construct_yaml_float(self, node):
            value = super().construct_yaml_float(node)
            mantissa = re.split(r"[eE]", node.value)[0]
            if value == 0 and re.search(r"[1-9]", mantissa) or math.isinf(value) and "inf" not in node.value.lower():
                raise YAMLSyntaxError(f"at line {node.start_mark.line + 1}: {node.value} is beyond float64's range (it "
                                      f"would read as {value}; allowed: 0 or magnitudes 2.2e-308 … 1.8e308)")
            return value

        def construct_yaml_int(self, node):
            try:
                return super().construct_yaml_int(node)
            except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
                raise YAMLSyntaxError(f"at line {node.start_mark.line + 1}: an integer of {len(node.value):,} "
                                      f"characters (Python reads at most {sys.get_int_max_str_digits():,} digits)"
                                      ) from None

    FloatRangeConstructor.add_constructor("tag:yaml.org,2002:float", FloatRangeConstructor.construct_yaml_float)
    FloatRangeConstructor.add_constructor("tag:yaml.org,2002:int", FloatRangeConstructor.construct_yaml_int)
    return FloatRangeConstructor


def parse_yaml(text: str) -> Any:
    """YAML text → Python values, read exactly as DVC reads params.yaml (ruamel.yaml's safe loader, YAML 1.2).

    PyYAML (YAML 1.1) disagrees with DVC on values DVC itself writes: `dvc exp run -S lr=1e-5` stores `1e-05`,
    a float to DVC and the string '1e-05' to PyYAML; `yes`/`on`/`off` are booleans to PyYAML and strings to DVC;
    `010` is 8 to PyYAML and 10 to DVC. Reading with DVC's parser makes the value a stage trains with the value
    `dvc exp show` and `dvc params diff` show. A repeated key is an error (PyYAML keeps the last silently).

    Raises `YAMLSyntaxError` with the parser's message on one line, also for a number written beyond float64's range
    (`1e-400`, `1e400`), which the parser would read as 0.0 or inf without a word.
    """
    from ruamel.yaml import YAML, YAMLError

    yaml = YAML(typ="safe")
    yaml.Constructor = _FloatRangeConstructor()
    try:
        return yaml.load(text)
    except YAMLError as err:
        # ruamel's messages span lines and end with a pointer to its docs; a one-line error keeps the essentials
        message = " ".join(str(err).split("To suppress this check")[0].split())
        message = message.replace('in "<unicode string>", line', "at line")
        mark = getattr(err, "problem_mark", None)
        if mark is not None and text[mark.index:mark.index + 1] == "\t":  # ruamel names no character
            message += ": a tab (YAML indents with spaces only)"
        raise YAMLSyntaxError(message) from None


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


# what zipfile raises on an archive it cannot read: cut or overwritten (BadZipFile, EOFError), a corrupt deflate stream
# (zlib.error), a directory or no permission (OSError), an encrypted member (RuntimeError), one of a compression
# method or zip version it does not implement (NotImplementedError) or a ZIP64 archive it refuses (LargeZipFile)
UNREADABLE_ZIP = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, RuntimeError,
                  NotImplementedError)

# what np.load raises on a damaged file: a cut or overwritten zip (BadZipFile, EOFError), a corrupt deflate
# stream (zlib.error), a bad header or pickled objects (ValueError), a directory or no permission (OSError), a
# header whose shape asks for terabytes (MemoryError: np.load allocates the array before it reads the data)
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, MemoryError)


def read_npz(path: str | os.PathLike, stage: str = "") -> dict[str, np.ndarray]:
    """Every array of an .npz file, read at once; a missing, truncated or foreign file is a one-line DataError
    naming it (`stage`: the DVC stage that writes it, for the hint)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"PK":  # else np.load tries other formats and reports the wrong one (pickle)
                raise zipfile.BadZipFile("no zip header")
        npz = np.load(path, allow_pickle=False)
        with npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the stage that produces it: `dvc repro`)") from None
    except _UNREADABLE as err:
        raise DataError(f"{path}: truncated or not an .npz archive ({' '.join(str(err).split())}); "
                        f"{rerun_hint(stage)}") from None


def read_npy(path: str | os.PathLike, stage: str = "") -> np.ndarray:
    """One .npy array; a missing, truncated or foreign file is a one-line DataError naming it."""
    path = Path(path)
    try:
        value = np.load(path, allow_pickle=False)
        if not isinstance(value, np.ndarray):
            value.close()
            raise ValueError("an .npz archive")
        return value
    except FileNotFoundError:
        raise DataError(f"{path}: missing (run the stage that produces it: `dvc repro`)") from None
    except _UNREADABLE as err:
        raise DataError(f"{path}: truncated or not an .npy array ({' '.join(str(err).split())}); "
                        f"{rerun_hint(stage)}") from None


_DTYPES = {"integer": "iu", "float": "f"}  # a kind of dtype; any other `dtype` is one exact numpy dtype


def npz_array(path: str | os.PathLike, arrays: dict[str, np.ndarray], key: str, *, dtype: str,
              shape: tuple[int | str, ...], noun: str, row: str, values: tuple[int | None, int | None] | None = None,
              of: str = "", like: str | None = None, nonempty: bool = False) -> np.ndarray:
    """`arrays[key]` (read from the file `path`) if it has the expected form, else a one-line DataError naming
    the file, the array and what is allowed. Checked in this order, each over the whole array (vectorised):

    present · finite (float arrays; `noun` says what must be, e.g. "pixels") · `dtype` ("uint8", "float32", …
    exactly, or "integer" / "float" for any of that kind) · `shape` (ints must match, names such as "N" are any
    size: ("N", 28, 28)) · as many rows as `arrays[like]` (one per `row`, e.g. "image") · at least one row if
    `nonempty` · every value within `values` = (low, high), inclusive, None = unbounded (`of` explains them).
    """
    if key not in arrays:
        raise DataError(f"{path}: array `{key}` missing (has {', '.join(f'`{k}`' for k in arrays) or 'none'})")
    a = arrays[key]
    if a.dtype.kind in "fc":
        require_finite(a, f"{path}: {key}", hint=f"{noun} must be finite")
    low, high = values if values is not None else (None, None)
    allowed = (f"{low} … {high}" if low is not None and high is not None else f"≥ {low}" if low is not None
               else f"≤ {high}" if high is not None else "")
    kinds = _DTYPES.get(dtype)
    if kinds == "iu" and values == (0, 1):  # 0/1 marks may be stored as booleans
        kinds += "b"
    if a.dtype.kind not in kinds if kinds else a.dtype != np.dtype(dtype):
        raise DataError(f"{path}: {key} is {a.dtype} (expected {dtype} {noun}{' ' + allowed if allowed else ''})")
    if a.ndim != len(shape) or any(isinstance(s, int) and s != n for s, n in zip(shape, a.shape, strict=True)):
        expected = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        raise DataError(f"{path}: {key} has shape {a.shape} (expected {expected})")
    if like is not None and len(a) != len(arrays[like]):
        raise DataError(f"{path}: {key} has {len(a)} rows, {like} has {len(arrays[like])} (one per {row})")
    if nonempty and len(a) == 0:
        raise DataError(f"{path}: {key} has 0 rows (expected at least one {row})")
    # min and max first: the (rare) mask of offending values is only built when there is one
    if a.size and ((low is not None and a.min() < low) or (high is not None and a.max() > high)):
        flat = a.reshape(-1)
        bad = (flat < low if low is not None else False) | (flat > high if high is not None else False)
        first = int(np.argmax(bad))
        at = int(np.unravel_index(first, a.shape)[0])
        raise DataError(f"{path}: {key} holds {flat[first]} at row {at} (allowed: {allowed}{', ' + of if of else ''})")
    return a


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save `obj` to `path` atomically; equal values give equal bytes wherever and however they were made
    (`canonical`; and saved through a file object: given a path, torch.save names the archive's folder after it,
    and here that is the temporary file's random name, so equal weights got a new md5 in dvc.lock on every run)."""
    import torch

    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        torch.save(canonical(obj), fh)


def canonical(obj: Any, _storages: set | None = None) -> Any:
    """`obj` (dicts, lists, tuples, tensors, scalars) rebuilt so that its pickle depends on its values alone. Pickle
    writes an object seen before as a reference to it, so equal values that were or were not one object serialised
    differently: a resumed censor run's model.pt (state dict keys unpickled from its checkpoint beside the keys of
    fresh `state_dict()` calls) had the uninterrupted run's weights in other bytes, hence another DVC hash. Here
    every string is interned (equal strings: one object), every container is a new one (a container never shared),
    and a tensor whose storage is another's or larger than itself (a view) is cloned; a dict subclass keeps its type
    and attributes (`state_dict()`'s OrderedDict and its `_metadata`); other objects are left as they are."""
    import sys

    import torch

    seen = set() if _storages is None else _storages
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, torch.Tensor) and obj.layout == torch.strided:  # (a sparse tensor has no one storage)
        storage = obj.untyped_storage()
        key = (obj.device, storage.data_ptr())
        shared = key in seen or storage.nbytes() != obj.numel() * obj.element_size()
        seen.add(key)
        return obj.detach().clone() if shared else obj.detach()
    if type(obj) in (dict, collections.OrderedDict):
        new = type(obj)((canonical(k, seen), canonical(v, seen)) for k, v in obj.items())
        for name, value in getattr(obj, "__dict__", {}).items():
            setattr(new, name, canonical(value, seen))
        return new
    if type(obj) in (list, tuple):
        return type(obj)(canonical(v, seen) for v in obj)
    return obj


MANIFEST = "manifest.json"  # a processed data folder's {"sha256": {file: digest}}, written by `replab prepare`


def file_digests(folder: str | os.PathLike) -> dict[str, str]:
    """{path relative to `folder` (posix): sha256} of every file under it, in sorted path order; {} when `folder`
    is not a directory."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def write_manifest(folder: str | os.PathLike) -> None:
    """Record the sha256 of every file under `folder` (a processed data set, once prepare has written it) in
    folder/MANIFEST, which `check_manifest` verifies where the data are loaded."""
    digests = {name: digest for name, digest in file_digests(folder).items() if name != MANIFEST}
    write_json(Path(folder) / MANIFEST, {"sha256": digests})


def check_manifest(folder: str | os.PathLike, stage: str) -> None:
    """DataError naming the first file of a processed data folder that is not the one prepare wrote (its MANIFEST):
    changed, truncated, deleted or added since (a hand edit that kept the format, e.g. half the test rows, or
    shuffled labels, would otherwise be trained and evaluated on without a word). The manifest itself is required:
    deleting it, or emptying its listing, had turned the check off."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise DataError(f"{folder / MANIFEST}: missing (prepare writes it beside the files it lists; "
                        f"{rerun_hint(stage)})")
    listed = read_json(folder / MANIFEST, expect=dict, stage=stage).get("sha256")
    if not isinstance(listed, dict) or not listed or not all(isinstance(v, str) for v in listed.values()):
        raise DataError(f"{folder / MANIFEST}: sha256: expected a non-empty object of file names and digests; "
                        f"{rerun_hint(stage)}")
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing (prepare wrote it; {rerun_hint(stage)})")
        if (found := sha256_file(path)) != digest:
            raise DataError(f"{path}: not the file prepare wrote (sha256 {found[:12]}…, {MANIFEST} lists "
                            f"{digest[:12]}…): edited since; {rerun_hint(stage)}")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    if added := sorted(present - set(listed) - {MANIFEST}):
        raise DataError(f"{folder / added[0]}: not written by prepare ({MANIFEST} does not list it); "
                        f"{rerun_hint(stage)}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
