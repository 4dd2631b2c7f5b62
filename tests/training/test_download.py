"""Checksummed downloads, served by a real HTTP server on 127.0.0.1 (no internet)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nas_convnext.training.data import download as download_module
from nas_convnext.training.data.download import Checksum, DownloadError, download

from .local_http import closed_port_url, serving

BODY = bytes(range(256)) * 400  # 102,400 bytes, enough for several reads
SHA = "sha256:" + hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_file_is_verified_and_moved_into_place(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "ok")
    dest = tmp_path / "cache" / "data.bin"
    assert download(server.url("/data.bin"), dest, checksum=SHA, max_bytes=len(BODY)) == dest
    assert dest.read_bytes() == BODY
    assert leftovers(dest.parent) == ["data.bin"]  # no temporary file left beside it
    assert server.requests == ["/data.bin"]


def test_md5_as_published_by_datasets_is_accepted(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "nolength")
    md5 = "md5:" + hashlib.md5(BODY).hexdigest()
    dest = download(server.url("/data.bin"), tmp_path / "d.bin", checksum=md5, max_bytes=10 * len(BODY))
    assert dest.read_bytes() == BODY


def test_wrong_checksum_leaves_nothing_and_keeps_an_older_file(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "ok")
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"the previous, verified copy")
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), dest, checksum=wrong, max_bytes=len(BODY))
    msg = str(err.value)
    assert "\n" not in msg and server.url("/data.bin") in msg
    assert hashlib.sha256(BODY).hexdigest() in msg and "--data-dir" in msg
    assert not err.value.unreachable
    assert dest.read_bytes() == b"the previous, verified copy"
    assert leftovers(tmp_path) == ["data.bin"]


def test_wrong_checksum_into_an_empty_folder_leaves_it_empty(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "ok")
    wrong = "md5:" + hashlib.md5(b"x").hexdigest()
    with pytest.raises(DownloadError):
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=wrong, max_bytes=len(BODY))
    assert leftovers(tmp_path) == []


def test_connection_cut_half_way_leaves_nothing(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "cut")
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY))
    msg = str(err.value)
    assert "cut after" in msg and f"of {len(BODY):,} bytes" in msg and "\n" not in msg
    assert not err.value.unreachable
    assert leftovers(tmp_path) == []


def test_announced_size_over_the_limit_is_refused_before_reading(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "ok")
    with pytest.raises(DownloadError, match=f"announces {len(BODY):,} bytes"):
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY) - 1)
    assert leftovers(tmp_path) == []


def test_unannounced_size_over_the_limit_is_stopped(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "nolength")
    with pytest.raises(DownloadError, match="more than the 1,000 bytes"):
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=1_000)
    assert leftovers(tmp_path) == []


def test_http_error_names_the_status(server, tmp_path):
    with pytest.raises(DownloadError) as err:
        download(server.url("/missing.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=10)
    assert "HTTP 404" in str(err.value) and not err.value.unreachable
    assert leftovers(tmp_path) == []


def test_unreachable_server_is_marked_so_callers_can_fall_back(tmp_path):
    url = closed_port_url()
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "data.bin", checksum=SHA, max_bytes=10, timeout=5)
    assert err.value.unreachable and err.value.url == url
    assert f"cannot reach {url}" in str(err.value) and "\n" not in str(err.value)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["file:///etc/hostname", "ftp://127.0.0.1/data.bin"])
def test_redirect_away_from_http_is_refused(server, tmp_path, target):
    server.routes["/data.bin"] = (target.encode(), "redirect")
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY))
    assert target in str(err.value) and "not" in str(err.value)
    assert server.requests == ["/data.bin"]
    assert leftovers(tmp_path) == []


def test_redirect_between_http_addresses_is_followed(server, tmp_path):
    server.routes["/old.bin"] = (server.url("/new.bin").encode(), "redirect")
    server.routes["/new.bin"] = (BODY, "ok")
    dest = download(server.url("/old.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY))
    assert dest.read_bytes() == BODY and server.requests == ["/old.bin", "/new.bin"]


def test_deadline_stops_the_transfer(server, tmp_path):
    server.routes["/data.bin"] = (BODY, "ok")
    with pytest.raises(DownloadError, match="took longer than"):
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY),
                 deadline=1e-9)
    assert leftovers(tmp_path) == []


def test_an_interrupt_mid_transfer_leaves_nothing(server, tmp_path, monkeypatch):
    def interrupted(url, out, **kwargs):
        out.write(BODY[:1000])
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download(server.url("/data.bin"), tmp_path / "data.bin", checksum=SHA, max_bytes=len(BODY))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "http://", "data.bin"])
def test_only_http_addresses_are_fetched(url, tmp_path):
    with pytest.raises(ValueError, match="http:// or https://"):
        download(url, tmp_path / "data.bin", checksum=SHA, max_bytes=10)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("text", ["abc", "sha1:" + "0" * 40, "sha256:" + "0" * 63, "md5:" + "g" * 32])
def test_malformed_checksums_are_refused(text):
    with pytest.raises(ValueError):
        Checksum.parse(text)


def test_checksum_round_trips_and_lower_cases():
    c = Checksum.parse("SHA256:" + "AB" * 32)
    assert c == Checksum("sha256", "ab" * 32) and str(c) == "sha256:" + "ab" * 32


def test_unwritable_cache_folder_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")  # refused even for root
    with pytest.raises(ValueError) as err:
        download("http://127.0.0.1:9/x", blocker / "x", checksum=SHA, max_bytes=10)
    msg = str(err.value)
    assert "cannot write into" in msg and "NAS_CONVNEXT_CACHE" in msg and "\n" not in msg
    assert not isinstance(err.value, DownloadError)  # no request was made: nothing to fall back from
