"""replab.download.fetch against a loopback HTTP server and local mirrors (no internet needed)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import threading
import time

import pytest

from conftest import QuietHandler, closed_port_url
from replab import download
from replab.download import RemoteFile, fetch, offline_hint
from replab.io import DataError

PAYLOAD = bytes(range(256)) * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gz(data: bytes, filename: str = "", mtime: int = 0) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename=filename, mode="wb", fileobj=buf, mtime=mtime) as fh:
        fh.write(data)
    return buf.getvalue()


@pytest.fixture
def upstream(server):
    """A gzip served as upstream ships it (stored filename, mtime) and its RemoteFile pins."""
    root, base = server
    data = gz(PAYLOAD, filename="blob", mtime=1_000_000)
    (root / "blob.gz").write_bytes(data)
    return RemoteFile("blob.gz", (base + "blob.gz",), sha(data), len(data), content_sha256=sha(PAYLOAD))


def test_fetch_over_http_then_reuses_verified_copy(upstream, server, tmp_path):
    dest = tmp_path / "raw"
    path = fetch(upstream, dest, progress=False)
    assert path == dest / "blob.gz" and gzip.decompress(path.read_bytes()) == PAYLOAD
    (server[0] / "blob.gz").unlink()  # a second fetch must not touch the network
    assert fetch(upstream, dest, progress=False) == path
    assert sorted(p.name for p in dest.iterdir()) == ["blob.gz"]


def test_pinned_urls_are_tried_in_order(upstream, server, tmp_path):
    f = RemoteFile(upstream.name, (closed_port_url() + "blob.gz", server[1] + "nope/blob.gz", *upstream.urls),
                   upstream.sha256)
    # default progress=True: exercises pooch's tqdm bar too
    assert fetch(f, tmp_path).read_bytes() == (server[0] / "blob.gz").read_bytes()


def test_wrong_checksum_names_file_and_leaves_nothing(upstream, tmp_path):
    bad = RemoteFile(upstream.name, upstream.urls, "0" * 64)
    dest = tmp_path / "raw"
    with pytest.raises(DataError) as err:
        fetch(bad, dest, progress=False)
    msg = str(err.value)
    assert "blob.gz" in msg and "0" * 64 in msg and upstream.sha256 in msg and "\n" not in msg
    assert list(dest.iterdir()) == []


def test_corrupt_existing_copy_is_replaced(upstream, tmp_path):
    (tmp_path / "blob.gz").write_bytes(b"garbage")
    assert fetch(upstream, tmp_path, progress=False).read_bytes() != b"garbage"


@pytest.mark.parametrize("content_pin", [True, False])
def test_truncated_gzip_is_rejected(server, tmp_path, content_pin):
    root, base = server
    full = gz(PAYLOAD, filename="blob", mtime=1)
    (root / "blob.gz").write_bytes(full[: len(full) // 2])
    f = RemoteFile("blob.gz", (base + "blob.gz",), sha(full),
                   content_sha256=sha(PAYLOAD) if content_pin else None)
    with pytest.raises(DataError, match="blob.gz") as err:
        fetch(f, tmp_path / "raw", progress=False)
    assert "truncated" in str(err.value) and "\n" not in str(err.value)
    assert list((tmp_path / "raw").iterdir()) == []


@pytest.mark.parametrize("as_url", [False, True], ids=["directory", "file-url"])
def test_local_mirror_replaces_pinned_urls(upstream, server, tmp_path, as_url):
    f = RemoteFile(upstream.name, (closed_port_url() + "blob.gz",), upstream.sha256)  # must not be used
    mirror = server[0].as_uri() if as_url else str(server[0])
    assert fetch(f, tmp_path / "raw", mirror=mirror, progress=False).read_bytes() == \
        (server[0] / "blob.gz").read_bytes()


def test_http_mirror_replaces_pinned_urls(upstream, server, tmp_path):
    f = RemoteFile(upstream.name, (closed_port_url() + "blob.gz",), upstream.sha256)
    assert fetch(f, tmp_path, mirror=server[1].rstrip("/"), progress=False).is_file()


def test_mirror_directory_without_the_file(upstream, tmp_path):
    with pytest.raises(DataError, match=r"blob\.gz: not found in mirror directory"):
        fetch(upstream, tmp_path / "raw", mirror=str(tmp_path), progress=False)


def test_recompressed_gzip_accepted_by_content_hash(upstream, tmp_path):
    """Debian recompresses upstream .gz files (no stored name, other mtime): only the content pin matches."""
    mirror = tmp_path / "debian"
    mirror.mkdir()
    (mirror / "blob.gz").write_bytes(gz(PAYLOAD, filename="", mtime=0))
    assert sha(gz(PAYLOAD)) != upstream.sha256
    assert fetch(upstream, tmp_path / "raw", mirror=str(mirror), progress=False).is_file()
    no_content_pin = RemoteFile(upstream.name, upstream.urls, upstream.sha256)
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(no_content_pin, tmp_path / "raw2", mirror=str(mirror), progress=False)
    recompressed_other = RemoteFile(upstream.name, upstream.urls, upstream.sha256, content_sha256="1" * 64)
    with pytest.raises(DataError, match="decompressed sha256"):
        fetch(recompressed_other, tmp_path / "raw3", mirror=str(mirror), progress=False)


def test_unreachable_fails_fast_with_hint(tmp_path):
    urls = (closed_port_url() + "blob.gz", closed_port_url() + "blob.gz")
    f = RemoteFile("blob.gz", urls, "0" * 64)
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        fetch(f, tmp_path / "raw", progress=False, hint=offline_hint("data.mnist.mirror"))
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert msg.startswith("blob.gz: download failed from ") and "\n" not in msg
    assert all(u in msg for u in urls)
    assert "set data.mnist.mirror to a directory or file:// URL" in msg and "quick profile" in msg
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


def test_transient_server_errors_are_retried(tmp_path, monkeypatch):
    """A 503 is retried (with backoff, skipped here); a 404 moves on to the next URL at once."""
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    data, statuses = gz(PAYLOAD), [503, 503, 200]

    class Flaky(QuietHandler):
        def do_GET(self):
            status = statuses.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(data) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        f = RemoteFile("blob.gz", (f"http://127.0.0.1:{httpd.server_address[1]}/blob.gz",), sha(data))
        assert fetch(f, tmp_path, retries=2, progress=False).read_bytes() == data
        statuses[:] = [503, 503]
        with pytest.raises(DataError, match=r"HTTP 503 after 2 attempts"):
            fetch(f, tmp_path / "again", retries=1, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_unsupported_mirror_scheme(upstream, tmp_path):
    with pytest.raises(DataError, match="unsupported scheme"):
        fetch(upstream, tmp_path, mirror="s3://bucket/data", progress=False)
