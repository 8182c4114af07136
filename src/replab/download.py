"""Fetch pinned dataset files: mirrors in order, sha256-verified, atomic, quick to fail without a network.

HTTP(S) goes through pooch's `HTTPDownloader` (requests + tqdm progress bar). A `mirror` (a directory,
a `file://` URL or an `http(s)://` base URL) replaces the pinned URLs, for air-gapped clusters and for
tests. Every file is written to a temp file beside its target and renamed only once it verified, so
`dest_dir` never holds a partial or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from replab.io import DataError, atomic_path, sha256_file

# Short connect timeout: with no network every pinned host must fail within seconds, not minutes.
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class RemoteFile:
    """One pinned file. `content_sha256` pins a .gz file's decompressed bytes, for mirrors that recompress
    (Debian's packages do): a copy is accepted if either hash matches. `size` is the upstream byte count,
    informational only since a recompressed copy differs."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None = None
    content_sha256: str | None = None


def offline_hint(key: str) -> str:
    return (f"no network? set {key} to a directory or file:// URL holding the files, "
            "or use the offline quick profile (the default params.yaml)")


_REASONS = {"ConnectTimeout": "connect timeout", "SSLError": "TLS error", "ProxyError": "proxy error"}


class _Unavailable(Exception):
    """This source could not deliver the file; the next one may."""


def fetch(file: RemoteFile, dest_dir: str | Path, mirror: str | None = None, *, progress: bool = True,
          retries: int = 2, timeout: float = 10.0,
          hint: str = offline_hint("the dataset's `mirror` param")) -> Path:
    """Return `dest_dir/file.name`, verified; download it first unless a verified copy is already there."""
    target = Path(dest_dir) / file.name
    if target.is_file():
        try:
            verify(file, target)
            return target
        except DataError:
            pass  # a stale or damaged copy (e.g. from an interrupted manual copy): fetch it again
    sources = [_mirror_source(mirror, file.name)] if mirror else list(file.urls)
    failures = []
    for source in sources:
        try:
            with atomic_path(target, suffix=".part") as tmp:
                if isinstance(source, Path):
                    _copy_local(source, tmp, file.name)
                else:
                    _http_get(source, tmp, progress=progress, retries=retries, timeout=timeout)
                verify(file, tmp, origin=source)
            return target
        except _Unavailable as err:
            failures.append(f"{source} ({err})")
    raise DataError(f"{file.name}: download failed from {', '.join(failures) or 'no URL'}; {hint}")


def verify(file: RemoteFile, path: str | Path, origin: str | Path | None = None) -> str:
    """Check `path` against the pins of `file`; return its sha256. DataError (one line) if neither matches."""
    label = f"{file.name} (from {origin})" if origin else str(path)
    actual = sha256_file(path)
    if actual == file.sha256 or (file.sha256 is None and file.content_sha256 is None):
        return actual
    if file.name.endswith(".gz"):
        content = _gunzip_sha256(path, label)  # also catches a truncated archive with a clear message
        if file.content_sha256 is not None:
            if content == file.content_sha256:
                return actual
            raise DataError(f"{label}: checksum mismatch: decompressed sha256 {content}, "
                            f"expected {file.content_sha256} (file sha256 {actual})")
    raise DataError(f"{label}: checksum mismatch: sha256 {actual}, expected {file.sha256}")


def _gunzip_sha256(path: str | Path, label: str) -> str:
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{label}: truncated or corrupt gzip ({err})") from None
    return digest.hexdigest()


def _mirror_source(mirror: str, name: str) -> str | Path:
    scheme = urlparse(mirror).scheme
    if scheme in ("http", "https"):
        return f"{mirror.rstrip('/')}/{name}"
    if scheme == "file":
        return Path(url2pathname(urlparse(mirror).path)) / name
    if "://" in mirror:
        raise DataError(f"{name}: mirror {mirror!r} has an unsupported scheme (use a directory, file:// "
                        "or http(s)://)")
    return Path(mirror).expanduser() / name


def _copy_local(src: Path, tmp: Path, name: str) -> None:
    if not src.is_file():
        raise DataError(f"{name}: not found in mirror directory {src.parent} (expected {src})")
    shutil.copyfile(src, tmp)


def _http_get(url: str, tmp: Path, *, progress: bool, retries: int, timeout: float) -> None:
    import pooch
    import requests

    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(min(CONNECT_TIMEOUT, timeout), timeout))
    for attempt in range(retries + 1):
        if progress:
            print(f"fetching {url}", file=sys.stderr)
        try:
            downloader(url, str(tmp), None)
            return
        except requests.HTTPError as err:
            status = err.response.status_code
            # Only server-side hiccups are worth a retry; 403/404 will not change in seconds.
            if status < 500 and status != 429:
                raise _Unavailable(f"HTTP {status}") from None
            reason = f"HTTP {status}"
        except requests.ConnectionError as err:
            # No byte arrived (refused, unresolvable, connect timeout, TLS failure): the host is unreachable,
            # so move on to the next URL at once; this is what keeps an offline run failing in seconds.
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise _Unavailable(_REASONS.get(type(err).__name__, "unreachable")) from None
            reason = "connection lost"  # requests reports a stalled stream as ConnectionError too
        except (requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as err:
            reason = type(err).__name__
        if attempt < retries:
            time.sleep(min(2.0**attempt, 8.0))
    raise _Unavailable(f"{reason} after {retries + 1} attempts")
