"""Fetch pinned dataset files: mirrors in order, sha256-verified, atomic, quick to fail without a network.

HTTP(S) goes through pooch's `HTTPDownloader` (requests + tqdm progress bar). A `mirror` (a directory,
a `file://` URL or an `http(s)://` base URL) replaces the pinned URLs, for air-gapped clusters and for
tests. Every file is written to a temp file beside its target and renamed only once it verified, so
`dest_dir` never holds a partial or unverified file.

A source fails when it cannot deliver the file (unreachable, HTTP error, not in the mirror directory) and
equally when it delivers bytes that fail verification (checksum, decompressed checksum, not the archive
format its name says, an HTML error page, or the file's own `check`): either way one line on stderr says why
it was skipped and the next source is tried. Only when every source failed does `fetch` raise `FetchError`,
one line listing each source with its reason.

Deadline: requests' timeout bounds each read, so a host that trickles a byte every few seconds would never
time out. Each source therefore also gets an overall deadline (`fetch(deadline=…)`; by default
`default_deadline(file.size)`: DEADLINE_BASE_S plus the pinned size at DEADLINE_MIN_RATE bytes/s, or
DEADLINE_UNSIZED_S for an unsized file); past it the connection is shut and the source fails with one line.
A SIGTERM while a file is being written (in the main thread, with no handler of the caller's) exits through
the same cleanup as an error (`io.atomic_path`), so no `.part` temp file is left behind.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from replab.io import UNREADABLE_ZIP, DataError, atomic_path, sha256_file

# Short connect timeout: with no network every pinned host must fail within seconds, not minutes.
CONNECT_TIMEOUT = 3.0
# Overall deadline per file and source (all its attempts): generous, only meant to end a stalled transfer.
DEADLINE_BASE_S = 600.0
DEADLINE_MIN_RATE = 64 * 1024  # bytes/s: the slowest a pinned file's transfer may average
DEADLINE_UNSIZED_S = 3600.0


def default_deadline(size: int | None) -> float:
    """Seconds one source may take for a file of `size` bytes (None: unknown): see the module docstring."""
    return DEADLINE_UNSIZED_S if not size else DEADLINE_BASE_S + size / DEADLINE_MIN_RATE


@dataclass(frozen=True)
class RemoteFile:
    """One pinned file. `content_sha256` pins a .gz file's decompressed bytes, for mirrors that recompress
    (Debian's packages do): a copy is accepted if either hash matches. `size` is the upstream byte count,
    informational only since a recompressed copy differs.

    `check(path)`, if given, runs after the pins and the format check on every copy (a downloaded one
    before it is renamed into place, an existing one before it is reused); it raises DataError whose message
    says what is wrong with the bytes (e.g. an unpinned archive's members against their own pins). Without
    any pin, the format implied by the name is still checked (.gz, .zip, .mat) and an HTML page is rejected;
    but only a .gz and a .zip are thereby known complete (a transfer cut short without a Content-Length
    passes the .mat header test and any text file), so an unpinned file of another kind needs a `check` that
    reads it whole (fasttext.check_vec, emnist_writers' parse of the .mat)."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None = None
    content_sha256: str | None = None
    check: Callable[[Path], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SourceFailure:
    """Why one source gave no verified copy. `unreachable`: it delivered nothing (network, HTTP status, not in
    the mirror directory); otherwise it delivered bytes that failed verification."""

    source: str
    reason: str
    unreachable: bool
    missing: bool = False  # a local mirror (directory) without the file: no network involved, no offline hint


class FetchError(DataError):
    """Every source of a file failed; `failures` lists each with its reason (the message does too)."""

    def __init__(self, message: str, failures: tuple[SourceFailure, ...]):
        super().__init__(message)
        self.failures = failures

    @property
    def unreachable(self) -> bool:
        """True when no source delivered any bytes (nothing was rejected on verification)."""
        return all(f.unreachable for f in self.failures)


def offline_hint(key: str) -> str:
    return (f"no network? set {key} to a directory or file:// URL holding the files, "
            "or use the offline quick profile (the default params.yaml)")


_REASONS = {"ConnectTimeout": "connect timeout", "SSLError": "TLS error", "ProxyError": "proxy error"}


class _Unavailable(Exception):
    """This source could not deliver the file; the next one may."""


class _Rejected(Exception):
    """This source delivered bytes that fail verification; the next one may deliver the right ones."""


class _Missing(_Unavailable):
    """A local mirror directory does not hold the file."""


def fetch(file: RemoteFile, dest_dir: str | Path, mirror: str | None = None, *, progress: bool = True,
          retries: int = 2, timeout: float = 10.0, deadline: float | None = None,
          key: str = "the dataset's `mirror` param") -> Path:
    """Return `dest_dir/file.name`, verified; download it first unless a verified copy is already there.

    Sources: `mirror` (a directory, file:// or http(s):// base URL) if given, else the pinned `file.urls` in
    order. A source that is unreachable or whose bytes fail `verify` is skipped with one line on stderr; when
    all fail, FetchError (a DataError) lists each source and its reason, plus how to set the mirror param `key`
    (e.g. data.mnist.mirror) if any was unreachable.
    An existing copy that fails verification is deleted first (its reason is listed too). `timeout` bounds each
    read, `deadline` (seconds; default `default_deadline(file.size)`) the whole transfer from one source.
    A local `mirror` that does not exist or is a file is a DataError naming `key` (`check_mirror`). On failure a
    `dest_dir` (and parents) that this call created is removed again if it is left empty."""
    deadline = default_deadline(file.size) if deadline is None else deadline
    check_mirror(mirror, key, (file.name,))
    target = Path(dest_dir) / file.name
    created = missing_dirs(target.parent)  # removed again if nothing was fetched into them
    failures: list[SourceFailure] = []
    if target.is_file():
        reason = _rejection(file, target)
        if reason is None:
            return target
        # a stale or damaged copy (e.g. from an interrupted manual copy): never left behind unverified
        target.unlink()
        failures.append(SourceFailure(f"existing {target}", reason, unreachable=False))
        print(f"{file.name}: existing copy {target} removed: {reason}", file=sys.stderr)
    sources = [_mirror_source(mirror, file.name)] if mirror else list(file.urls)
    for i, source in enumerate(sources):
        try:
            with atomic_path(target, suffix=".part") as tmp:  # (deleted on SIGTERM too)
                if isinstance(source, Path):
                    _copy_local(source, tmp)
                else:
                    _http_get(source, tmp, progress=progress, retries=retries, timeout=timeout, deadline=deadline)
                reason = _rejection(file, tmp)
                if reason is not None:  # a check names the temp file, gone by the time the reason is read
                    raise _Rejected(reason.replace(str(tmp), file.name))
            return target
        except (_Unavailable, _Rejected) as err:
            failures.append(SourceFailure(str(source), str(err), isinstance(err, _Unavailable),
                                          missing=isinstance(err, _Missing)))
            if i + 1 < len(sources):
                print(f"{file.name}: skipped {source}: {err}; trying the next source", file=sys.stderr)
    listed = "; ".join(f"{f.source} ({f.reason})" for f in failures) or "no URL"
    if failures and all(f.missing for f in failures if f.unreachable) and any(f.missing for f in failures):
        tail = f"; the file is missing from the mirror: copy it there or set {key} to where it is"
    elif mirror and failures and all(f.unreachable for f in failures):  # not "no network? set the mirror": it is set
        tail = (f"; {key} = {mirror} is unreachable: give a folder or URL that holds the files, or set it back "
                "to null (then `dvc checkout` restores the copy DVC last recorded)")
    elif not failures or any(f.unreachable for f in failures):
        tail = f"; {offline_hint(key)}"
    else:
        tail = ""
    remove_empty(created)
    raise FetchError(f"{file.name}: download failed from {listed}{tail}", tuple(failures))


def check_mirror(mirror: str | None, key: str, names: tuple[str, ...]) -> None:
    """A local mirror (a directory or file:// URL) must be an existing directory: else DataError, one line naming
    `key` (the param's path) and, for a file, the `names` it should hold; any mirror must pass `mirror_problem`.
    No mirror: no check."""
    if mirror and (problem := mirror_problem(mirror)) is not None:
        raise DataError(f"{key}: mirror {mirror!r}: {problem}")
    root = local_root(mirror) if mirror else None
    if root is None or root.is_dir():
        return
    if not root.exists():
        raise DataError(f"{key}: mirror directory {root} does not exist")
    raise DataError(f"{key}: {root} is a file, not a directory (give the directory holding {', '.join(names)})")


def local_root(mirror: str) -> Path | None:
    """The directory of a local mirror (a path or file:// URL, `~` expanded); None for a URL of another scheme."""
    scheme = urlparse(mirror).scheme
    if scheme == "file":
        return Path(url2pathname(urlparse(mirror).path))
    return None if "://" in mirror or scheme in ("http", "https") else Path(mirror).expanduser()


def missing_dirs(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(dirs: list[Path]) -> None:
    """Remove each of `dirs` (deepest first) that is empty; stop at the first that is not (or is gone)."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


def verify(file: RemoteFile, path: str | Path, origin: str | Path | None = None) -> str:
    """Check `path` against the pins (and format / `check`) of `file`; return its sha256.

    DataError (one line naming the file, or `origin` if given) saying what failed."""
    label = f"{file.name} (from {origin})" if origin else str(path)
    reason = _rejection(file, path)
    if reason is not None:
        raise DataError(f"{label}: {reason}")
    return sha256_file(path)


def _rejection(file: RemoteFile, path: str | Path) -> str | None:
    """Why the bytes at `path` are not `file` (one line), or None when they verify."""
    actual = sha256_file(path)
    if actual != file.sha256:
        reason = _bytes_rejection(file, actual, path)
        if reason is not None:
            return reason
    if file.check is not None:
        try:
            file.check(Path(path))
        except DataError as err:
            return _one_line(err)
    return None


def _bytes_rejection(file: RemoteFile, actual: str, path: str | Path) -> str | None:
    """Why bytes whose sha256 `actual` is not the file pin fail (None: a .gz whose content pin matches, or an
    unpinned file of the right format). What the bytes are (empty, an HTML page, a truncated gzip) comes first
    where it is plain; for a pinned file the pins and sizes always follow, whatever its kind."""
    name = file.name.lower()
    what = _format_rejection(name, path)
    content = None
    if what is None and name.endswith(".gz"):
        try:
            content = _gunzip_sha256(path)  # also catches a truncated archive with a clear message
        except _Rejected as err:
            what = str(err)
    if file.sha256 is None and file.content_sha256 is None:
        return what
    if content is not None and content == file.content_sha256:
        return None  # a recompressed copy of the pinned content
    return _mismatch(file, actual, path, what, content if file.content_sha256 is not None else None)


def _mismatch(file: RemoteFile, actual: str, path: str | Path, what: str | None = None,
              content: str | None = None) -> str:
    """The checksum-mismatch reason, after `what` the bytes are (if known), with the sizes where the pin has one: a
    truncated or repackaged copy (another mirror's re-tarred archive) reads at a glance. `content`: the decompressed
    sha256 of a .gz with a content pin."""
    got = Path(path).stat().st_size
    sizes = f"{got:,} bytes, expected {file.size:,}" if file.size and got != file.size else ""
    if content is not None:
        reason = (f"checksum mismatch: decompressed sha256 {content}, expected {file.content_sha256} "
                  f"(file sha256 {actual}{'; ' + sizes if sizes else ''})")
    else:
        pins = " or ".join([p for p in (file.sha256,) if p] +
                           [f"decompressed sha256 {file.content_sha256}"] * (file.content_sha256 is not None))
        reason = f"checksum mismatch: sha256 {actual}, expected {pins}{f' ({sizes})' if sizes else ''}"
    return f"{what}; {reason}" if what else reason


# A UTF-8 byte order mark: some servers' error pages start with one, before `<!DOCTYPE html>`.
_BOM = b"\xef\xbb\xbf"


def _format_rejection(name: str, path: str | Path) -> str | None:
    """Is the file what its name says (a gzip, a zip, a MATLAB file), and not empty or an HTML error page?"""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        return "empty file"
    text = head.removeprefix(_BOM).lstrip()
    if not name.endswith((".html", ".htm")) and text[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page, not the file (an error or login page?)"
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                if not zf.namelist():
                    return "an empty zip archive"
        except UNREADABLE_ZIP as err:
            return f"not a zip archive, or truncated ({_one_line(err)})"
    if name.endswith(".mat") and not head.startswith(b"MATLAB"):
        return "not a MATLAB .mat file (no `MATLAB` header)"
    return None


def _gunzip_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except (EOFError, OSError, zlib.error) as err:
        raise _Rejected(f"truncated or corrupt gzip ({_one_line(err)})") from None
    return digest.hexdigest()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


MIRROR_KINDS = "a directory, file:// or http(s)://"


def mirror_problem(mirror: str) -> str | None:
    """Why a `mirror` param names no usable source, as the end of a one-line message (None: it does): a scheme
    other than MIRROR_KINDS (ftp://, s3://, …), a control character (a pasted newline), an http(s) URL without a
    valid host or port, a file:// URL with a host (`file://data/x` is the host `data`, not a relative path).
    check_params refuses such a mirror before any download stage runs, instead of the download failing on it."""
    if any(not c.isprintable() for c in mirror):
        return f"contains a control character (allowed: {MIRROR_KINDS}, on one line)"
    parsed = urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        try:
            parsed.port  # noqa: B018 (raises ValueError for a port that is no number or out of range)
        except ValueError:
            return "has an invalid port (expected http(s)://host[:port]/path)"
        host = parsed.hostname or ""
        if not host or host.startswith((".", "*")) or any(c.isspace() for c in host):
            return "has no valid host (expected http(s)://host[:port]/path)"
    elif parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return (f"names the host {parsed.netloc!r} (a file:// URL takes an absolute path, file:///abs/path; "
                    "or give the directory's path alone)")
    elif local_root(mirror) is None:
        return f"unsupported scheme (allowed: {MIRROR_KINDS})"
    return None


def _mirror_source(mirror: str, name: str) -> str | Path:  # (a mirror that passed check_mirror)
    if urlparse(mirror).scheme in ("http", "https"):
        return f"{mirror.rstrip('/')}/{name}"
    return local_root(mirror) / name


def _copy_local(src: Path, tmp: Path) -> None:
    if not src.is_file():
        raise _Missing(f"not found in mirror directory {src.parent}")
    shutil.copyfile(src, tmp)


class _Watchdog:
    """Shuts the connection of the response in flight once `deadline` (a time.monotonic() value) passes: a
    blocked read then returns, and `expired` tells the caller why. (A server that stalls before its headers is
    only bounded by the per-read timeout.)"""

    def __init__(self, deadline: float):
        self.deadline, self.expired, self.response = deadline, False, None
        self._lock = threading.Lock()

    def hook(self, response, *args, **kwargs):  # requests' "response" hook: headers read, body not yet
        with self._lock:
            self.response = response
            if self.expired:
                self._shut()
        return response

    def _shut(self) -> None:
        raw = getattr(self.response, "raw", None)
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        if sock is None:  # urllib3 released the connection: reach the socket through the body stream
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass

    @contextmanager
    def armed(self) -> Iterator[None]:
        timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self.response is not None:
                self._shut()


def _http_get(url: str, tmp: Path, *, progress: bool, retries: int, timeout: float,
              deadline: float = DEADLINE_UNSIZED_S) -> None:
    import pooch
    import requests

    watchdog = _Watchdog(time.monotonic() + deadline)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                                      hooks={"response": watchdog.hook})
    cut = False  # the last attempt delivered part of the body: a dropped transfer, not an unreachable host
    for attempt in range(retries + 1):
        if progress:
            print(f"fetching {url}", file=sys.stderr)
        watchdog.response = None
        try:
            with watchdog.armed():
                downloader(url, str(tmp), None)
            if watchdog.expired:  # the shut connection may end the stream without an error
                raise requests.Timeout()
            # urllib3 2 refuses a short body itself (ChunkedEncodingError below); this holds whatever its version
            if (reason := _incomplete(watchdog.response, tmp)) is None:
                return
            cut = True
        except requests.HTTPError as err:
            status = err.response.status_code
            # Only server-side hiccups are worth a retry; 403/404 will not change in seconds.
            if status < 500 and status != 429:
                raise _Unavailable(f"HTTP {status}") from None
            reason, cut = f"HTTP {status}", False
        except requests.ConnectionError as err:
            # No byte arrived (refused, unresolvable, connect timeout, TLS failure): the host is unreachable,
            # so move on to the next URL at once; this is what keeps an offline run failing in seconds.
            if not watchdog.expired and (not tmp.is_file() or tmp.stat().st_size == 0):
                raise _Unavailable(_REASONS.get(type(err).__name__, "unreachable")) from None
            # requests reports a stalled stream as ConnectionError too
            reason = _incomplete(watchdog.response, tmp) or "connection lost"
            cut = True
        except (requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as err:
            reason = _incomplete(watchdog.response, tmp) or type(err).__name__
            cut = reason != type(err).__name__
        except requests.RequestException as err:  # no request could be made (InvalidURL, …): no retry helps
            raise _Unavailable(_one_line(err)) from None
        if watchdog.expired:
            done = tmp.stat().st_size if tmp.is_file() else 0
            raise _Rejected(f"not complete within the {deadline:g} s deadline ({done} bytes received; a stalled "
                            "or very slow host)") from None
        if attempt < retries:
            time.sleep(min(2.0**attempt, 8.0))
    raise (_Rejected if cut else _Unavailable)(f"{reason} after {retries + 1} attempts")


def _incomplete(response, tmp: Path) -> str | None:
    """Why the body written to `tmp` is not the one the response's Content-Length announced (a connection dropped
    mid-transfer), or None: it matches, or cannot be compared (no Content-Length; a Content-Encoding that requests
    decoded, so the bytes on disk are not the bytes counted)."""
    headers = getattr(response, "headers", None) or {}
    announced = str(headers.get("Content-Length", "")).strip()
    if not announced.isdigit() or headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    got = tmp.stat().st_size if tmp.is_file() else 0
    if got == int(announced):
        return None
    return f"incomplete transfer ({got:,} of the {int(announced):,} bytes its Content-Length announced)"
