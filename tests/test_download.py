"""replab.download.fetch against a loopback HTTP server and local mirrors (no internet needed)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import QuietHandler, closed_port_url, one_line_naming, zip_claiming
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
    assert not dest.exists() or list(dest.iterdir()) == []


def test_a_mismatch_of_a_sized_pin_says_both_sizes(upstream, server, tmp_path):
    """A truncated or repackaged copy (a mirror's re-tarred archive): the sizes tell which at a glance."""
    raw = b"not the pinned bytes"
    (server[0] / "blob.zip").write_bytes(raw)
    pin = RemoteFile("blob.zip", (server[1] + "blob.zip",), "0" * 64, 789_539)
    with pytest.raises(DataError) as err:
        fetch(pin, tmp_path / "raw", progress=False)
    assert str(err.value).endswith(f"(not a zip archive, or truncated (File is not a zip file); checksum mismatch: "
                                   f"sha256 {sha(raw)}, expected {'0' * 64} (20 bytes, expected 789,539))")


@pytest.mark.parametrize("name", ["blob.gz", "blob.zip", "blob.bin"])
@pytest.mark.parametrize("bad, what", [
    (b"\xef\xbb\xbf<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page, not the file"),
    (b"", "empty file"),
], ids=["html-with-bom", "empty"])
def test_every_pinned_kind_says_what_the_bytes_are_with_pins_and_sizes(server, tmp_path, name, bad, what):
    """A pinned .gz's HTML page read `truncated or corrupt gzip (Not a gzipped file (b'<!'))`, an empty one
    `decompressed sha256 e3b0…` (gzip reads 0 bytes as empty content): neither said what it was, nor the pins or
    sizes a .zip's mismatch gives."""
    (server[0] / name).write_bytes(bad)
    pin = RemoteFile(name, (server[1] + name,), "a" * 64, 9_912_422,
                     content_sha256="c" * 64 if name.endswith(".gz") else None)
    with pytest.raises(DataError) as err:
        fetch(pin, tmp_path / "raw", progress=False)
    msg = str(err.value)
    pins = f"{'a' * 64} or decompressed sha256 {'c' * 64}" if name.endswith(".gz") else "a" * 64
    assert msg.endswith(f"({what}{' (an error or login page?)' if bad else ''}; checksum mismatch: sha256 {sha(bad)}, "
                        f"expected {pins} ({len(bad):,} bytes, expected 9,912,422))"), msg
    assert "\n" not in msg and (not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir()))


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
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


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
    with pytest.raises(DataError, match=r"blob\.gz: download failed from \S+blob\.gz \(not found in mirror directory"):
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


def test_unreachable_fails_fast_with_hint(tmp_path, network_attempts):
    urls = (closed_port_url() + "blob.gz", closed_port_url() + "blob.gz")
    f = RemoteFile("blob.gz", urls, "0" * 64)
    with pytest.raises(DataError) as err:
        fetch(f, tmp_path / "raw", progress=False, key="data.mnist.mirror")
    assert network_attempts.urls == list(urls) and network_attempts.sleeps == []  # one try per host, no back-off
    msg = str(err.value)
    assert msg.startswith("blob.gz: download failed from ") and "\n" not in msg
    assert all(u in msg for u in urls)
    assert "set data.mnist.mirror to a directory or file:// URL" in msg and "quick profile" in msg
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []


def test_transient_server_errors_are_retried(tmp_path, network_attempts):
    """A 503 is retried with exponential back-off (recorded, not slept)."""
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
        assert network_attempts.urls == [f.urls[0]] * 3 and network_attempts.sleeps == [1.0, 2.0]
        statuses[:] = [503, 503]
        with pytest.raises(DataError, match=r"HTTP 503 after 2 attempts"):
            fetch(f, tmp_path / "again", retries=1, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_unsupported_mirror_scheme(upstream, tmp_path):
    with pytest.raises(DataError, match="unsupported scheme"):
        fetch(upstream, tmp_path, mirror="s3://bucket/data", progress=False)


@pytest.mark.parametrize("name", ["mnist", "rt_snippets", "usc_had"])
def test_an_unsupported_mirror_scheme_is_a_param_error_before_any_download(name):
    """`-S data.rt_snippets.mirror=ftp://x/y` passed check_params; its download stage then failed, after DVC had
    deleted data/raw/rt_snippets."""
    from replab.data.registry import load_data_params
    from replab.params import ParamError

    params = {"data": {"split_seed": 0, name: {"mirror": "ftp://x/y"}}}
    with pytest.raises(ParamError) as err:
        load_data_params(name, params=params)
    assert str(err.value) == (f"params.yaml: data.{name}.mirror = 'ftp://x/y': unsupported scheme (allowed: a "
                              "directory, file:// or http(s)://)")
    for fine in ("/srv/mirror", "file:///srv/mirror", "file://localhost/srv/mirror", "https://example.org/mirror",
                 "http://127.0.0.1:8000/x", "http://[::1]:8000/x", "relative/dir with space"):
        params["data"][name]["mirror"] = fine
        assert load_data_params(name, params=params)[0].mirror == fine


@pytest.mark.parametrize("mirror, problem", [
    # these passed check_params; the download then raised requests' InvalidURL as a traceback
    ("http://", "has no valid host (expected http(s)://host[:port]/path)"),
    ("https://exa mple.com/", "has no valid host (expected http(s)://host[:port]/path)"),
    ("http://.example.org/x", "has no valid host (expected http(s)://host[:port]/path)"),
    ("http://example.org:99999/x", "has an invalid port (expected http(s)://host[:port]/path)"),
    ("http://example.org:http/x", "has an invalid port (expected http(s)://host[:port]/path)"),
    # read as the host `relative` and the path /x: "mirror directory /x does not exist"
    ("file://relative/x", "names the host 'relative' (a file:// URL takes an absolute path, file:///abs/path; or give "
                          "the directory's path alone)"),
    ("/srv/mirror\n", "contains a control character (allowed: a directory, file:// or http(s)://, on one line)"),
])
def test_a_malformed_mirror_is_a_param_error_before_any_download(mirror, problem, upstream, tmp_path):
    from replab.data.registry import load_data_params
    from replab.params import ParamError

    params = {"data": {"split_seed": 0, "mnist": {"mirror": mirror}}}
    with pytest.raises(ParamError) as err:
        load_data_params("mnist", params=params)
    assert str(err.value) == f"params.yaml: data.mnist.mirror = {mirror!r}: {problem}"
    with pytest.raises(DataError) as err:  # fetch refuses it too, and creates nothing
        fetch(upstream, tmp_path / "raw" / "mnist", mirror=mirror, progress=False, key="data.mnist.mirror")
    assert str(err.value) == f"data.mnist.mirror: mirror {mirror!r}: {problem}"
    assert not (tmp_path / "raw").exists()


def test_a_url_requests_cannot_send_is_a_failed_source_not_a_traceback(tmp_path, network_attempts):
    """Any error of requests' is one source's failure: InvalidURL escaped fetch and left an empty folder."""
    f = RemoteFile("blob.gz", ("http://exa mple.com/blob.gz",), "0" * 64)
    with pytest.raises(DataError) as err:
        fetch(f, tmp_path / "raw" / "blob", progress=False)
    assert str(err.value).startswith("blob.gz: download failed from http://exa mple.com/blob.gz (")
    assert "\n" not in str(err.value) and network_attempts.sleeps == []  # no retry
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------------------------------------
# A source that answers with the wrong bytes is skipped like an unreachable one

IDX = "train-images-idx3-ubyte.gz"
HTML = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>try later</body></html>\n"


@pytest.fixture
def two_mirrors(server):
    """Mirror 1 (`m1/`) and mirror 2 (`m2/`) on the loopback server; mirror 2 serves the right gzip."""
    root, base = server
    data = gz(PAYLOAD, filename="train-images-idx3-ubyte", mtime=1_000_000)
    for m in ("m1", "m2"):
        (root / m).mkdir()
    (root / "m2" / IDX).write_bytes(data)
    f = RemoteFile(IDX, (base + f"m1/{IDX}", base + f"m2/{IDX}"), sha(data), len(data),
                   content_sha256=sha(PAYLOAD))
    return root / "m1" / IDX, f, data


@pytest.mark.parametrize("bad, reason", [
    (gz(PAYLOAD[::-1]), "checksum mismatch: decompressed sha256"),  # other bytes, a valid gzip
    (HTML, "an HTML page, not the file"),  # an error page answered with status 200
    (gz(PAYLOAD, filename="train-images-idx3-ubyte", mtime=1_000_000)[:300], "truncated or corrupt gzip"),
], ids=["other-bytes", "html-page", "truncated"])
def test_a_source_with_wrong_bytes_is_skipped_for_the_next(two_mirrors, tmp_path, capsys, bad, reason):
    first, f, data = two_mirrors
    first.write_bytes(bad)
    dest = tmp_path / "raw"
    assert fetch(f, dest, progress=False).read_bytes() == data  # the file from mirror 2
    assert sorted(p.name for p in dest.iterdir()) == [IDX]  # no temp file of mirror 1 left behind
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(lines) == 1 and f.urls[0] in lines[0] and reason in lines[0], lines


def test_a_pinned_file_without_content_pin_skips_a_mismatch(two_mirrors, tmp_path, capsys):
    first, f, data = two_mirrors
    first.write_bytes(gz(PAYLOAD))  # recompressed: no content pin, so only the file pin decides
    f = RemoteFile(f.name, f.urls, f.sha256)
    assert fetch(f, tmp_path, progress=False).read_bytes() == data
    err = capsys.readouterr().err
    assert f"skipped {f.urls[0]}: checksum mismatch: sha256 {sha(gz(PAYLOAD))}, expected {f.sha256}" in err


def test_every_source_failing_lists_each_with_its_reason(two_mirrors, tmp_path):
    first, f, _ = two_mirrors
    first.write_bytes(HTML)
    (first.parent.parent / "m2" / IDX).write_bytes(gz(PAYLOAD[::-1]))
    closed = closed_port_url() + IDX
    f = RemoteFile(f.name, (closed, *f.urls), f.sha256, content_sha256=f.content_sha256)
    dest = tmp_path / "raw"
    with pytest.raises(download.FetchError) as err:
        fetch(f, dest, progress=False, key="data.mnist.mirror")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{IDX}: download failed from {closed} (unreachable); ")
    assert f"{f.urls[1]} (an HTML page, not the file" in msg
    assert f"{f.urls[2]} (checksum mismatch: decompressed sha256 {sha(PAYLOAD[::-1])}" in msg
    assert "data.mnist.mirror" in msg  # one source was unreachable: the offline hint applies
    assert [(x.source, x.unreachable) for x in err.value.failures] == [(closed, True), (f.urls[1], False),
                                                                       (f.urls[2], False)]
    assert not err.value.unreachable
    assert not dest.exists() or list(dest.iterdir()) == []
    with pytest.raises(download.FetchError) as err:  # all answered, none right: no offline hint
        fetch(RemoteFile(f.name, f.urls[1:], f.sha256, content_sha256=f.content_sha256), dest, progress=False,
              key="data.mnist.mirror")
    assert "no network" not in str(err.value) and len(err.value.failures) == 2


def test_an_existing_copy_that_fails_is_removed_and_listed(upstream, tmp_path):
    dest = tmp_path / "raw"
    dest.mkdir()
    (dest / "blob.gz").write_bytes(gz(b"stale"))
    f = RemoteFile(upstream.name, (closed_port_url() + "blob.gz",), upstream.sha256,
                   content_sha256=upstream.content_sha256)
    with pytest.raises(download.FetchError) as err:
        fetch(f, dest, progress=False)
    assert f"existing {dest / 'blob.gz'} (checksum mismatch: decompressed sha256 {sha(b'stale')}" in str(err.value)
    assert list(dest.iterdir()) == []  # never left there unverified
    assert fetch(upstream, dest, progress=False).is_file()


@pytest.mark.parametrize("name, bad, reason", [
    ("data.zip", HTML, "an HTML page, not the file"),
    ("data.zip", b"PK\x03\x04 not really a zip", "not a zip archive"),
    ("data.mat", HTML, "an HTML page, not the file"),
    ("data.mat", b"\x00" * 200, "not a MATLAB .mat file"),
    ("data.gz", b"Service Unavailable", "truncated or corrupt gzip"),
    ("data.txt", b"", "empty file"),
    # an error page behind a UTF-8 byte order mark passed for the file
    ("data.txt", b"\xef\xbb\xbf" + HTML, "an HTML page, not the file"),
])
def test_unpinned_files_are_checked_for_their_format(server, tmp_path, capsys, name, bad, reason):
    root, base = server
    good = {"data.zip": _zip_bytes(), "data.mat": b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + bytes(100),
            "data.gz": gz(PAYLOAD), "data.txt": b"one line\n"}[name]
    for m, data in (("m1", bad), ("m2", good)):
        (root / m).mkdir()
        (root / m / name).write_bytes(data)
    f = RemoteFile(name, (base + f"m1/{name}", base + f"m2/{name}"), None)
    assert fetch(f, tmp_path / "raw", progress=False).read_bytes() == good
    assert f"skipped {f.urls[0]}: {reason}" in capsys.readouterr().err
    with pytest.raises(DataError) as err:  # the same check holds for a copy verified in place
        download.verify(f, root / "m1" / name)
    assert reason in str(err.value) and str(root / "m1" / name) in str(err.value)


def test_a_files_own_check_makes_a_source_fail(server, tmp_path, capsys):
    root, base = server
    for m, members in (("m1", {"readme.txt": b"x"}), ("m2", {"readme.txt": b"x", "data.csv": b"1,2\n"})):
        (root / m).mkdir()
        (root / m / "release.zip").write_bytes(_zip_bytes(members))

    def has_data(path):
        with zipfile.ZipFile(path) as zf:
            if "data.csv" not in zf.namelist():
                raise DataError(f"{path}: no data.csv among {len(zf.namelist())} members")

    f = RemoteFile("release.zip", (base + "m1/release.zip", base + "m2/release.zip"), None, check=has_data)
    path = fetch(f, tmp_path, progress=False)
    assert zipfile.ZipFile(path).namelist() == ["readme.txt", "data.csv"]
    assert "no data.csv among 1 members" in capsys.readouterr().err
    with pytest.raises(download.FetchError, match="no data.csv among 1 members"):
        fetch(RemoteFile("release.zip", (base + "m1/release.zip",), None, check=has_data), tmp_path / "b",
              progress=False)


def _zip_bytes(members: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in (members or {"a.txt": b"alpha"}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_trickling_host_fails_at_the_deadline_in_one_line(tmp_path):
    """The per-read timeout never fired on a host sending a byte every few seconds: the download hung."""
    import time

    data = gz(PAYLOAD)
    stop = threading.Event()

    class Trickle(QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for byte in data:
                if stop.wait(0.2):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        f = RemoteFile("blob.gz", (f"http://127.0.0.1:{httpd.server_address[1]}/blob.gz",), sha(data))
        start = time.monotonic()
        with pytest.raises(DataError) as err:
            fetch(f, tmp_path / "raw", progress=False, timeout=5.0, deadline=1.5)
        assert time.monotonic() - start < 10
        msg = str(err.value)
        assert msg.startswith("blob.gz: download failed from ") and "1.5 s deadline" in msg and "\n" not in msg
        assert "no network?" not in msg
        assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").iterdir()) == []
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
    assert download.default_deadline(None) == download.DEADLINE_UNSIZED_S
    assert download.default_deadline(64 * 1024 * 100) == download.DEADLINE_BASE_S + 100


@pytest.mark.parametrize("pin", [True, False], ids=["pinned", "unpinned"])
def test_a_body_shorter_than_its_content_length_is_refused(cut_server, tmp_path, network_attempts, pin):
    """A dropped connection: half the body after a Content-Length of the whole. urllib3 2 refuses it (reported as
    ChunkedEncodingError, with the offline hint); an older one would not: the size is compared here too."""
    root, base, cut = cut_server
    data = _zip_bytes({"a.txt": PAYLOAD})
    (root / "data.zip").write_bytes(data)
    cut["data.zip"] = True
    f = RemoteFile("data.zip", (base + "data.zip",), sha(data) if pin else None)
    with pytest.raises(download.FetchError) as err:
        fetch(f, tmp_path / "raw", progress=False, retries=1)
    msg = one_line_naming(err, "data.zip")
    assert f"of the {len(data):,} bytes its Content-Length announced) after 2 attempts" in msg, msg
    assert "no network?" not in msg and not err.value.unreachable  # bytes came: not an offline host
    assert not (tmp_path / "raw").exists()
    assert len(network_attempts.urls) == 2  # a dropped connection is worth a retry
    del cut["data.zip"]
    assert fetch(f, tmp_path / "raw", progress=False).read_bytes() == data
    # the check holds whatever urllib3 does: a response whose body on disk is short of its Content-Length
    from types import SimpleNamespace
    short = tmp_path / "short"
    short.write_bytes(b"x" * 10)
    assert download._incomplete(SimpleNamespace(headers={"Content-Length": "20"}), short) == \
        "incomplete transfer (10 of the 20 bytes its Content-Length announced)"
    assert download._incomplete(SimpleNamespace(headers={"Content-Length": "20", "Content-Encoding": "gzip"}),
                                short) is None  # requests decoded it: the sizes are not comparable
    assert download._incomplete(SimpleNamespace(headers={}), short) is None


def test_a_local_mirror_without_the_file_says_so_not_no_network(upstream, tmp_path):
    with pytest.raises(DataError) as err:
        fetch(upstream, tmp_path / "raw", mirror=str(tmp_path), progress=False, key="data.x.mirror")
    msg = str(err.value)
    assert "no network?" not in msg and "the file is missing from the mirror" in msg and "\n" not in msg


def test_sigterm_during_a_download_leaves_no_part_file(upstream, tmp_path):
    """A SIGTERM mid-write left `.part` temp files until the next success."""
    import os
    import signal as sig

    def killed(src, tmp):
        tmp.write_bytes(b"partial")
        os.kill(os.getpid(), sig.SIGTERM)

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "blob.gz").write_bytes(b"x")
    orig = download._copy_local
    download._copy_local = killed
    try:
        with pytest.raises(SystemExit) as err:
            fetch(upstream, tmp_path / "raw", mirror=str(mirror), progress=False)
    finally:
        download._copy_local = orig
    assert err.value.code == 143
    assert list((tmp_path / "raw").iterdir()) == []
    assert sig.getsignal(sig.SIGTERM) == sig.SIG_DFL


@pytest.mark.parametrize("command", ["download", "prepare"])
def test_download_and_prepare_help_list_every_data_set(command, capsys):
    from replab.cli import build_parser
    from replab.data.registry import SOURCES

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{name} ({source.kind})" in text for name, source in SOURCES.items()), text
    assert "mnist5k (embedded)" in text and "usc_had (real)" in text


# ---------------------------------------------------------------------------------------------------------
# A mirror param that is not a directory, an empty one, and what a failed download leaves behind

MNIST_NAMES = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
               "t10k-labels-idx1-ubyte.gz")


@pytest.mark.parametrize("as_url", [False, True], ids=["directory", "file-url"])
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_mirror_that_is_no_directory_says_which(upstream, server, tmp_path, as_url, kind):
    """A missing mirror directory, or a regular file given as the mirror, was reported as "not found in mirror
    directory", as if a directory existed and lacked the file."""
    from replab.data import mnist

    path = tmp_path / "nonexistent" / "dir" if kind == "missing" else server[0] / "blob.gz"
    mirror = path.as_uri() if as_url else str(path)
    for call, key, names in [
        (lambda: fetch(upstream, tmp_path / "raw", mirror=mirror, progress=False, key="data.x.mirror"),
         "data.x.mirror", "blob.gz"),
        (lambda: mnist.download("mnist", mnist.ImageSourceConfig(mirror=mirror), tmp_path / "raw", progress=False),
         "data.mnist.mirror", MNIST_NAMES)]:
        with pytest.raises(DataError) as err:
            call()
        assert str(err.value) == (f"{key}: mirror directory {path} does not exist" if kind == "missing" else
                                  f"{key}: {path} is a file, not a directory (give the directory holding {names})")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "usc_had", "sst", "rt_snippets", "emnist_writers"])
def test_an_empty_mirror_param_is_rejected(name, value):
    """`mirror: ''` passed `replab check` and silently meant "no mirror": the download went to the network."""
    from replab.data import registry
    from replab.params import ParamError

    params = {"data": {"split_seed": 0, name: {"mirror": value}}}
    with pytest.raises(ParamError) as err:
        registry.load_data_params(name, params=params)
    assert str(err.value) == f"params.yaml: data.{name}.mirror = {value!r}: empty; omit it or use null for none"
    for ok in (None, "/some/dir"):  # null (no mirror) and a path still pass
        params["data"][name]["mirror"] = ok
        assert registry.load_data_params(name, params=params)[0].mirror == ok


def test_a_failed_download_leaves_no_directory_it_created(upstream, tmp_path):
    """A failed download left an empty data/raw/<name>/ (and its parents) behind."""
    from replab.data import mnist

    unreachable = RemoteFile("blob.gz", (closed_port_url() + "blob.gz",), upstream.sha256)
    dest = tmp_path / "data" / "raw" / "mnist"
    with pytest.raises(DataError) as err:
        fetch(unreachable, dest, progress=False, key="data.mnist.mirror")
    assert str(err.value) == (f"blob.gz: download failed from {unreachable.urls[0]} (unreachable); "
                              f"{offline_hint('data.mnist.mirror')}")
    assert not (tmp_path / "data").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        mnist.download("mnist", mnist.ImageSourceConfig(mirror=str(empty)), dest, progress=False)
    name = "train-images-idx3-ubyte.gz"
    assert str(err.value) == (f"{name}: download failed from {empty / name} (not found in mirror directory {empty}); "
                              "the file is missing from the mirror: copy it there or set data.mnist.mirror to "
                              "where it is")  # the param's own name (it said "the `mirror` param")
    assert not (tmp_path / "data").exists()
    dest.mkdir(parents=True)  # a directory that existed before stays
    with pytest.raises(DataError):
        fetch(upstream, dest, mirror=str(empty), progress=False)
    assert dest.is_dir() and list(dest.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# What a download stage depends on: its data set's download params, not the preparation settings


def _download_params_read(module) -> set[str]:
    """The config fields `module.download` reads: attributes of its `cfg` argument, followed into the module's own
    functions it passes `cfg` to (by position or keyword). A `cfg` handed whole to a function of another module is
    an AssertionError: what that reads cannot be told here."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    read, seen = set(), set()

    def visit(name: str, param: str) -> None:
        if (name, param) in seen:
            return
        seen.add((name, param))
        def over_declared(comp) -> bool:  # … for k in DOWNLOAD_PARAMS
            return any(isinstance(g.iter, ast.Name) and g.iter.id == "DOWNLOAD_PARAMS" for g in comp.generators)

        declared_reads = {id(call) for comp in ast.walk(functions[name])  # getattr(cfg, k) for k in DOWNLOAD_PARAMS
                          if isinstance(comp, ast.DictComp | ast.ListComp | ast.GeneratorExp | ast.SetComp)
                          and over_declared(comp) for call in ast.walk(comp) if isinstance(call, ast.Call)
                          and isinstance(call.func, ast.Name) and call.func.id == "getattr"}
        for node in ast.walk(functions[name]):
            if id(node) in declared_reads:
                continue
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == param:
                read.add(node.attr)
            elif isinstance(node, ast.Call):
                passed = [(i, a) for i, a in enumerate(node.args) if isinstance(a, ast.Name) and a.id == param]
                passed += [(k.arg, k.value) for k in node.keywords
                           if isinstance(k.value, ast.Name) and k.value.id == param]
                if not passed:
                    continue
                callee = node.func.id if isinstance(node.func, ast.Name) else None
                assert callee in functions, f"{module.__name__}: {ast.unparse(node)} hands the whole config on"
                params = [a.arg for a in functions[callee].args.args]
                for where, _ in passed:
                    visit(callee, params[where] if isinstance(where, int) else where)

    visit("download", [a.arg for a in functions["download"].args.args][1])
    return read


@pytest.mark.parametrize("name", sorted(__import__("replab.data.registry", fromlist=["SOURCES"]).SOURCES))
def test_a_download_reads_only_the_params_its_stage_depends_on(name):
    """download@<name> depends on DOWNLOAD_PARAMS alone (data/download-params/<name>.json): a field its download
    read beyond them would leave data/raw/<name> stale when that field changed."""
    from dataclasses import fields

    from replab.data import registry

    module = registry.get(name).load()
    declared = set(module.DOWNLOAD_PARAMS)
    assert declared <= {f.name for f in fields(registry.get(name).config_class())}
    assert _download_params_read(module) <= declared


def test_download_params_change_with_what_the_download_reads_only(tmp_path):
    """data.imdb.min_df (a preparation setting) reran download@imdb, and DVC deleted the verified archive first:
    offline, a lost data set. The files the download stages depend on change with the mirror, lm1b's sample or a
    generator's param, and with nothing else."""
    from conftest import compose
    from replab.data.registry import download_code, write_download_params

    def written(*overrides):
        params = compose("profile=paper", *overrides)
        folder = tmp_path / "-".join(overrides or ("base",))
        paths = write_download_params(params, folder)
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.json" for n in params["datasets"])
        return {p.stem: p.read_bytes() for p in paths}

    base = written()
    assert json_of(base["lm1b"]) == {"dataset": "lm1b", "params": {"mirror": None, "fraction": 0.01, "seed": 0,
                                                                    "keep_archive": False, "expected_shards": 99},
                                     "code": download_code("lm1b")}
    for prepare_only in ("data.imdb.min_df=3", "data.sst.n_unlabeled=100", "data.eraser_movies.embeddings=random",
                         "data.split_seed=1", "aae_ssl.lr=0.01"):
        assert written(prepare_only) == base, prepare_only
    for override, changed in (("data.imdb.mirror=/srv/imdb", "imdb"), ("data.lm1b.fraction=0.02", "lm1b"),
                              ("data.fasttext.sha256=" + "0" * 64, "fasttext")):
        after = written(override)
        assert {name for name in base if after[name] != base[name]} == {changed}, override
    quick = written_quick = write_download_params(compose(), tmp_path / "quick")
    assert [p.stem for p in quick] == ["mnist5k", "writers", "har", "rt_snippets"]
    har = json_of(written_quick[2].read_bytes())["params"]
    assert "seed" in har and "window" not in har and "train_users" not in har  # the generator's, not the windowing


def _edited(src: Path, module: str, old: str, new: str) -> None:
    path = src.joinpath(*module.split(".")).with_suffix(".py")
    text = path.read_text()
    assert text.count(old) == 1, (module, old)
    path.write_text(text.replace(old, new))


# (module, the text replaced, its replacement) → the data sets whose download code changes with it
CODE_EDITS = {
    "a tokenizer (preparation only)": (
        "replab.data.text", "def encode(docs", "def encode(documents", set()),
    "imdb's preparation": ("replab.data.imdb", "def prepare(name", "def prepare(name_changed", set()),
    "the windowing of recordings": ("replab.data.recordings", "def split_windows(", "def split_windows_(", set()),
    "a comment and a docstring in imdb's download": (
        "replab.data.imdb", "def download(name: str, cfg: ImdbConfig, raw_dir: Path, progress: bool = True) -> Path:\n",
        "def download(name: str, cfg: ImdbConfig, raw_dir: Path, progress: bool = True) -> Path:\n"
        "    \"\"\"Another docstring.\"\"\"\n    # a comment\n", set()),
    "imdb's pinned archive": ("replab.data.imdb", '"c40f74a1', '"040f74a1', {"imdb"}),
    "fetch, which every pinned download runs": (
        "replab.download", "def fetch(", "def fetch_(", {"mnist", "fashion_mnist", "emnist_writers", "usc_had",
                                                          "rt_snippets", "sst", "imdb", "eraser_movies", "lm1b",
                                                          "fasttext"}),
    "the har generator": ("replab.data.har", "def _smooth(", "def _smooth_(", {"har"}),
    "har's windowing default": ("replab.data.recordings", "window: int = param(30", "window: int = param(32", set()),
    "the call of every download": ("replab.data.registry", "raw_dir = RAW_ROOT / name\n",
                                   "raw_dir = RAW_ROOT / name / 'x'\n", set(__import__(
                                       "replab.data.registry", fromlist=["SOURCES"]).SOURCES)),
}


@pytest.mark.parametrize("edit", sorted(CODE_EDITS))
def test_a_download_stage_reruns_with_the_code_its_download_runs_and_no_other(tmp_path, edit):
    """download@<name> depended on all of src/replab/data: editing a tokenizer or a prepare function reran every
    download, DVC deleted the verified archives first, and offline they were gone. Its file in data/download-params
    now holds the fingerprint of the code its download reaches (registry.download_code): a preparation edit, a
    comment or a docstring changes none; a pin changes its data set's, the fetch code every fetched one's."""
    import shutil

    from replab.code_closure import SRC
    from replab.data.registry import SOURCES, download_code

    src = tmp_path / "src"
    shutil.copytree(SRC / "replab", src / "replab", ignore=shutil.ignore_patterns("__pycache__"))
    before = {name: download_code(name, src) for name in SOURCES}
    assert before == {name: download_code(name) for name in SOURCES}  # the copy: the same
    module, old, new, changes = CODE_EDITS[edit]
    _edited(src, module, old, new)
    after = {name: download_code(name, src) for name in SOURCES}
    assert {name for name in SOURCES if after[name] != before[name]} == changes


def test_the_code_a_function_reaches(tmp_path):
    """code_closure on a small package: the function, every statement that binds or changes what it names in its
    module (a table filled by a later line and by a loop), in other replab modules imported by name, as a module
    chain, relatively, with `*` or inside the function, and a name both imported and rebound; not what it leaves
    uncalled, its annotations, nor `if TYPE_CHECKING:` imports. Comments and docstrings leave the fingerprint
    alone, which hashes the source text itself (not `ast.unparse`, which differs between Python versions)."""
    from replab.code_closure import closure, fingerprint

    package = tmp_path / "replab"
    (package / "sub").mkdir(parents=True)
    for init in (package / "__init__.py", package / "sub/__init__.py"):
        init.write_text("")
    a = ('''"""Module doc."""
import functools
import replab.c
from typing import TYPE_CHECKING

from replab.b import helper as h
from replab.d import *
from .sub.e import relative

if TYPE_CHECKING:
    from replab.b import Annotated

TABLE = {"x": 1}
TABLE["y"] = 2
for k in ("x", "y"):
    TABLE[k] += 1
h = functools.partial(h, 0)


def used(x: Annotated) -> int:
    """Function doc."""
    from replab.b import lazy

    return h(x) + replab.c.value() + lazy() + starred() + relative() + len(TABLE)  # a comment


def unused():
    return replab.c.not_called()
''')
    (package / "a.py").write_text(a)
    (package / "b.py").write_text("class Annotated:\n    pass\n\n\ndef helper(x, y):\n    return x\n\n\n"
                                  "def lazy():\n    return 1\n\n\ndef other():\n    return 3\n")
    (package / "c.py").write_text("def value():\n    return 0\n\n\ndef not_called():\n    return 4\n")
    (package / "d.py").write_text("def starred():\n    return 5\n")
    (package / "sub/e.py").write_text("def relative():\n    return 6\n")
    reached = closure("replab.a", "used", tmp_path)
    assert sorted(reached) == [
        "replab.a:<top level>", "replab.a:TABLE", "replab.a:h", "replab.a:used", "replab.b:helper", "replab.b:lazy",
        "replab.c:value", "replab.d:starred", "replab.sub.e:relative"]
    assert reached["replab.a:TABLE"] == 'TABLE = {"x": 1}\nTABLE["y"] = 2'  # every statement that binds it
    assert reached["replab.a:used"] == (
        "def used(x: Annotated) -> int:\n    from replab.b import lazy\n    return h(x) + replab.c.value() + lazy() + "
        "starred() + relative() + len(TABLE)")  # the source's own text: comment, docstring and blank line out
    before = fingerprint("replab.a", "used", tmp_path)
    (package / "a.py").write_text(a.replace("# a comment", "# another").replace("Function doc.", "Changed."))
    assert fingerprint("replab.a", "used", tmp_path) == before
    for edit in (("{\"x\": 1}", "{\"x\": 0}"), ("+= 1", "+= 2"), ("partial(h, 0)", "partial(h, 1)")):
        (package / "a.py").write_text(a.replace(*edit))
        assert fingerprint("replab.a", "used", tmp_path) != before, edit
    (package / "a.py").write_text(a)
    for module, old, new in (("d", "5", "7"), ("sub/e", "6", "8"), ("b", "return x", "return y")):
        text = (package / f"{module}.py").read_text()
        (package / f"{module}.py").write_text(text.replace(old, new))
        assert fingerprint("replab.a", "used", tmp_path) != before, module
        (package / f"{module}.py").write_text(text)
    assert fingerprint("replab.a", "used", tmp_path) == before


@pytest.mark.parametrize("name", ["mnist5k", "writers", "har", "imdb"])
def test_every_function_a_download_runs_is_in_its_fingerprint(tmp_path, name, monkeypatch):
    """The static closure against a traced run: every replab function (or method, by its class) that executes
    while an offline download runs (a copy, a generator, a fetch from a local mirror) belongs to the code its
    fingerprint holds."""
    import dataclasses
    import sys

    from replab.code_closure import SRC
    from replab.data import imdb, registry

    monkeypatch.chdir(tmp_path)
    cfg, _ = registry.load_data_params(name, params=__import__("conftest").compose())
    if name == "imdb":  # a local mirror holding a stand-in archive, pinned as the real one is
        blob, mirror = b"a stand-in for aclImdb_v1.tar.gz", tmp_path / "mirror"
        mirror.mkdir()
        (mirror / imdb.ARCHIVE.name).write_bytes(blob)
        monkeypatch.setattr(imdb, "ARCHIVE", dataclasses.replace(
            imdb.ARCHIVE, sha256=hashlib.sha256(blob).hexdigest(), size=len(blob)))
        cfg = dataclasses.replace(cfg, mirror=str(mirror))
    ran = set()

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(str(SRC / "replab")) and not code.co_qualname[0] == "<":
            module = ".".join(Path(code.co_filename).relative_to(SRC).with_suffix("").parts).removesuffix(
                ".__init__")
            ran.add(f"{module}:{code.co_qualname.split('.')[0]}")

    download = registry.get(name).load().download
    sys.setprofile(profile)
    try:
        download(name, cfg, tmp_path / "raw", progress=False)
    finally:
        sys.setprofile(None)
    reached = set(__import__("replab.code_closure", fromlist=["closure"]).closure(
        registry.get(name).module, "download"))
    assert f"{registry.get(name).module}:download" in ran and (name != "imdb" or "replab.download:fetch" in ran)
    assert ran <= reached, sorted(ran - reached)


def test_download_fingerprints_do_not_depend_on_the_locale(tmp_path):
    """The sources hold non-ASCII text (…, ×, →): read in the locale's encoding, a C locale made check_params fail
    and another one would have written other fingerprints."""
    import subprocess
    import sys

    from replab.data.registry import SOURCES, download_code

    script = "from replab.data.registry import SOURCES, download_code; print([download_code(n) for n in SOURCES])"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str([download_code(n) for n in SOURCES])


def test_a_download_fingerprint_holds_the_package_files_it_reads(tmp_path):
    """usc_had's download checks the 840 .mat files against usc_had_sha256.txt beside its module: an edited table
    is an edited download."""
    import shutil

    from replab.code_closure import SRC, closure, fingerprint

    src = tmp_path / "src"
    shutil.copytree(SRC / "replab", src / "replab", ignore=shutil.ignore_patterns("__pycache__"))
    assert "replab.data.usc_had:file:usc_had_sha256.txt" in closure("replab.data.usc_had", "download")
    before = fingerprint("replab.data.usc_had", "download", src)
    table = src / "replab/data/usc_had_sha256.txt"
    table.write_text(table.read_text() + "\n")
    assert fingerprint("replab.data.usc_had", "download", src) != before
    with pytest.raises(KeyError, match="replab.data.imdb.no_such_function: not a top-level definition"):
        closure("replab.data.imdb", "no_such_function")


def json_of(raw: bytes):
    import json

    return json.loads(raw)


def test_a_local_lm1b_mirror_is_sampled_in_place_not_copied(tmp_path, monkeypatch):
    """A local mirror's 1.7 GB tarball was copied into data/raw/lm1b only to be sampled and deleted: it is now
    verified and read where it lies, and left there; keep_archive still copies it; a wrong tarball is one line."""
    import dataclasses

    from replab.data import lm1b
    from test_text_data import lm1b_mirror

    cfg, raw = lm1b_mirror(tmp_path, monkeypatch)
    mirrored = tmp_path / "srv" / lm1b.ARCHIVE.name
    copies = []
    monkeypatch.setattr(download, "_copy_local", lambda src, tmp: copies.append(src))
    lm1b.download("lm1b", cfg, raw, progress=False)
    assert copies == [] and mirrored.is_file()
    assert sorted(p.name for p in raw.iterdir()) == [lm1b.RECORD, lm1b.SAMPLE]
    monkeypatch.undo()
    (tmp_path / "kept").mkdir()
    cfg, raw = lm1b_mirror(tmp_path / "kept", monkeypatch)
    lm1b.download("lm1b", dataclasses.replace(cfg, keep_archive=True), raw, progress=False)
    assert (raw / lm1b.ARCHIVE.name).read_bytes() == (tmp_path / "kept/srv" / lm1b.ARCHIVE.name).read_bytes()
    monkeypatch.setattr(lm1b, "ARCHIVE", dataclasses.replace(lm1b.ARCHIVE, sha256="0" * 64))
    with pytest.raises(DataError) as err:
        lm1b.download("lm1b", cfg, tmp_path / "other", progress=False)
    assert str(err.value).startswith(f"{tmp_path / 'kept/srv' / lm1b.ARCHIVE.name}: checksum mismatch")
    assert "\n" not in str(err.value) and not (tmp_path / "other").exists()


def test_the_check_params_stage_refuses_a_local_mirror_that_is_not_there(in_tmp, capsys):
    """`dvc exp run -S data.rt_snippets.mirror=/nonexistent/wheels` failed only in the download stage, after DVC had
    deleted the verified copy: the stage's check (`replab check --marker`) names it first; a plain `replab check`
    (what `replab sweep` runs where it plans) does not ask, as a cluster's mirror need not exist there."""
    import yaml

    from conftest import compose
    from replab.cli import main

    params = compose()
    params["data"]["rt_snippets"]["mirror"] = str(in_tmp / "nonexistent/wheels")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 0
    capsys.readouterr()
    assert main(["check", "--marker", "params.checked", "--download-params", "download-params"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: data.rt_snippets.mirror: mirror directory {in_tmp / 'nonexistent/wheels'} does not exist"
    assert not (in_tmp / "params.checked").exists() and not (in_tmp / "download-params").exists()
    (in_tmp / "nonexistent/wheels").mkdir(parents=True)
    assert main(["check", "--marker", "params.checked", "--download-params", "download-params"]) == 0
    assert sorted(p.name for p in (in_tmp / "download-params").iterdir()) == [
        "har.json", "mnist5k.json", "rt_snippets.json", "writers.json"]


def test_download_params_never_replaces_a_folder_of_other_files(in_tmp, capsys):
    """`replab check --download-params DIR` replaces DIR as a whole: given src, tests or the project itself it used to
    delete every file there and say "ok". Now a folder holding anything but <data set>.json files, the folder the
    command runs in or one above it, and an empty path are one-line errors, checked before anything is written;
    the stage's own folder (its JSON files only) and a new or empty folder are written as before."""
    import yaml

    from conftest import compose
    from replab.cli import main

    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    (in_tmp / "src/replab").mkdir(parents=True)
    (in_tmp / "src/replab/cli.py").write_text("code")
    (in_tmp / "notes").mkdir()
    (in_tmp / "notes/mnist5k.json").write_text("{}")  # a data set's name, but beside a file of the user's
    (in_tmp / "notes/todo.txt").write_text("mine")
    (in_tmp / "sub").mkdir()
    cases = {"src": "check --download-params src: holds replab, which writing replaces with the folder as a whole "
                    "(give a new or an empty folder's path)",
             "notes": "check --download-params notes: holds todo.txt, which writing replaces",
             ".": "check --download-params .: is the folder this command runs in, or one above it",
             "sub/..": "check --download-params sub/..: is the folder this command runs in",
             "..": "check --download-params ..: is the folder this command runs in, or one above it",
             " ": "check --download-params: empty path (give a folder path to write to)",
             "params.yaml": "check --download-params params.yaml: is not a folder",
             "params.yaml/sub": "check --download-params params.yaml/sub:",  # under a file
             "link": "check --download-params link: is a symbolic link (give the folder's own path)",
             "dangling": "check --download-params dangling: is a symbolic link",
             # a folder that cannot be written in: a traceback from mkdtemp, after the check said nothing
             "/proc/replab-dp": "check --download-params /proc/replab-dp: /proc is not writable"}
    (in_tmp / "link").symlink_to(in_tmp / "sub")
    (in_tmp / "dangling").symlink_to(in_tmp / "nowhere")
    for folder, message in cases.items():
        capsys.readouterr()
        assert main(["check", "--download-params", folder]) == 2, folder
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1, (folder, err)
    assert (in_tmp / "src/replab/cli.py").read_text() == "code" and (in_tmp / "notes/todo.txt").read_text() == "mine"
    for folder in ("download-params", "download-params", "empty"):  # new, then its own files again; an empty one
        (in_tmp / "empty").mkdir(exist_ok=True)
        assert main(["check", "--download-params", folder]) == 0
        assert sorted(p.name for p in (in_tmp / folder).iterdir()) == [
            "har.json", "mnist5k.json", "rt_snippets.json", "writers.json"]


def test_a_failed_wheel_download_leaves_no_folder(tmp_path):
    """README: a failed download leaves no empty data/raw/<name>/ behind; the wheel sources (rt_snippets) did."""
    from replab.data import rt_snippets

    empty = tmp_path / "mirror"
    empty.mkdir()
    raw = tmp_path / "data/raw/rt_snippets"
    with pytest.raises(DataError):
        rt_snippets.download("rt_snippets", rt_snippets.RtSnippetsConfig(mirror=str(empty)), raw)
    assert not (tmp_path / "data").exists()


def test_an_unreachable_mirror_is_named_with_the_way_back(upstream, tmp_path):
    """With a mirror set, "no network? set data.x.mirror …" pointed at the param that was already set."""
    mirror = closed_port_url() + "wheels"
    with pytest.raises(DataError) as err:
        fetch(upstream, tmp_path / "raw", mirror, progress=False, key="data.rt_snippets.mirror")
    msg = str(err.value)
    assert "no network?" not in msg and "\n" not in msg
    assert msg.endswith(f"; data.rt_snippets.mirror = {mirror} is unreachable: give a folder or URL that holds the "
                        "files, or set it back to null (then `dvc checkout` restores the copy DVC last recorded)")


def test_a_zip_of_a_version_zipfile_does_not_implement_is_a_format_rejection(tmp_path):
    """Any downloaded .zip is opened to tell a wrong file from a damaged one; a central directory claiming version
    9.9 raised NotImplementedError there, a traceback instead of the checksum mismatch (sst, EMNIST, USC-HAD)."""
    from replab.download import _format_rejection

    path = tmp_path / "trainDevTestTrees_PTB.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("trees/train.txt", "(3 (2 a))")
    assert _format_rejection(path.name, path) is None
    zip_claiming(path, version=99)
    assert _format_rejection(path.name, path) == "not a zip archive, or truncated (zip file version 9.9)"
