"""Checksummed downloads into a cache folder, leaving nothing behind when they fail.

A dataset file fetched from the internet is as untrusted as any other file, and a cache that
kept half a file or a file that changed on the server would poison every later run, quietly.
So a download is written to a hidden temporary file in the destination's own folder (same
file system, so the final rename is atomic), its size is bounded while it arrives, its
checksum (sha256, or the md5 a dataset publishes) is checked, and only then is it renamed into
place. Any failure -- HTTP error, timeout, a connection cut half way, too many bytes, a wrong
checksum, an interrupt -- removes the temporary file, so the cache holds whole, verified files
or nothing. Parallel downloads of the same file (Ray workers) each write their own temporary
file; the rename makes the last verified one win, and readers never see a partial file.

Only ``urllib`` is used (no new dependency); only http and https are fetched, redirects
included. Failures are :class:`DownloadError` (a ``ValueError``) whose message names the URL
and what to do, so the CLI prints it as one line.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = ["Checksum", "DownloadError", "download"]

_CHUNK = 1 << 16
_USER_AGENT = "nas-convnext (dataset download)"
_HEX_LENGTH = {"sha256": 64, "md5": 32}
_ADVICE = "download it yourself and pass its folder with --data-dir"


@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``algorithm`` is ``"sha256"`` or ``"md5"`` (md5 only because some
    datasets publish nothing else; it still catches a truncated or changed file)."""

    algorithm: Literal["sha256", "md5"]
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in _HEX_LENGTH:
            raise ValueError(f"checksum algorithm {self.algorithm!r} is not supported; use sha256 or md5")
        digest = self.hexdigest
        if (not isinstance(digest, str) or len(digest) != _HEX_LENGTH[self.algorithm]
                or any(c not in "0123456789abcdef" for c in digest)):
            raise ValueError(
                f"{self.algorithm} checksum {digest!r} must be {_HEX_LENGTH[self.algorithm]} "
                "lower-case hex digits"
            )

    @classmethod
    def parse(cls, text: str | Checksum) -> Checksum:
        """``"sha256:<64 hex>"`` or ``"md5:<32 hex>"`` (or a Checksum, returned as is)."""
        if isinstance(text, Checksum):
            return text
        algorithm, sep, digest = str(text).partition(":")
        if not sep:
            raise ValueError(f"checksum {text!r} must be written 'sha256:<hex>' or 'md5:<hex>'")
        return cls(algorithm.strip().lower(), digest.strip().lower())  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


class DownloadError(ValueError):
    """A download that did not complete; nothing of it was left at the destination.

    ``reason`` is the short cause (naming the URL), the message adds what to do.
    ``unreachable`` is True when no server answered at all (no network, DNS failure, refused
    or timed-out connection): callers use it to fall back quietly, where a server that answered
    wrongly (HTTP error, wrong checksum, cut connection) deserves a warning.
    """

    def __init__(self, reason: str, *, url: str, unreachable: bool = False, advice: str = "") -> None:
        reason = " ".join(str(reason).split())  # one line, whatever a server or OS error said
        super().__init__(f"{reason}; {advice or _ADVICE}")
        self.reason = reason
        self.url = url
        self.unreachable = unreachable


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): never to ftp:// or file:// wherever a server points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise DownloadError(
                f"download of {req.full_url} redirected to {newurl!r}, which is not http(s), refused",
                url=req.full_url,
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    url: str,
    dest: str | Path,
    *,
    checksum: str | Checksum,
    max_bytes: int,
    timeout: float = 15.0,
    deadline: float | None = 3600.0,
) -> Path:
    """Fetch ``url`` into ``dest``, verified, or leave nothing at ``dest``.

    Parameters
    ----------
    url:
        An ``http://`` or ``https://`` address (other schemes are refused).
    dest:
        The file to create; its folder is created when missing. An existing file there is
        replaced only once the new one is complete and verified.
    checksum:
        ``"sha256:<hex>"``, ``"md5:<hex>"`` or a :class:`Checksum`; the file is kept only if
        its digest matches.
    max_bytes:
        The most bytes accepted: a larger ``Content-Length`` is refused before reading, and
        the transfer stops as soon as it passes this, so a wrong or hostile server cannot fill
        the disk.
    timeout:
        Seconds any single network operation (connect, each read) may wait.
    deadline:
        Seconds the whole transfer may take (``None``: no limit).

    Returns the path of the verified file. Raises :class:`DownloadError` (a ``ValueError``)
    naming the URL and what to do; ``ValueError`` for a bad argument.
    """
    expected = Checksum.parse(checksum)
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"download URL {url!r} must be an http:// or https:// address")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise ValueError(
            f"cannot write into {str(dest.parent)!r} to download {url} ({exc.strerror or exc}); "
            "make the cache folder writable, or move it with NAS_CONVNEXT_CACHE"
        ) from None
    tmp = Path(tmp_name)
    kept = False
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, max_bytes=max_bytes, timeout=float(timeout), deadline=deadline,
                            algorithm=expected.algorithm)
            out.flush()
            os.fsync(out.fileno())
        if digest != expected.hexdigest:
            raise DownloadError(
                f"download of {url} has {expected.algorithm} {digest}, expected {expected.hexdigest}, "
                "so it was not kept (damaged, or changed on the server)",
                url=url,
                advice=f"try again later, or {_ADVICE}",
            )
        os.replace(tmp, dest)
        kept = True
    finally:
        if not kept:
            tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, out: BinaryIO, *, max_bytes: int, timeout: float, deadline: float | None,
           algorithm: str) -> str:
    """Stream ``url`` into ``out``; return the hex digest of what was written."""
    started = time.monotonic()
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    try:
        response = opener.open(request, timeout=timeout)
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"download of {url} failed: the server answered HTTP {exc.code} {exc.reason}",
            url=url,
            advice=f"try again later, or {_ADVICE}",
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot reach {url} ({reason})",
            url=url,
            unreachable=True,
            advice=f"check the network (or its proxy settings), or {_ADVICE}",
        ) from None
    # md5 only compares with a published digest; usedforsecurity=False keeps it usable under FIPS.
    hasher = hashlib.new(algorithm, usedforsecurity=False)
    received = 0
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.strip().isdigit() else None
        if length is not None and length > max_bytes:
            raise DownloadError(
                f"download of {url} refused: the server announces {length:,} bytes, more than the "
                f"{max_bytes:,} this file may have",
                url=url,
            )
        while True:
            if deadline is not None and time.monotonic() - started > deadline:
                raise DownloadError(
                    f"download of {url} took longer than {deadline:g} s and was stopped after "
                    f"{received:,} bytes",
                    url=url,
                    advice=f"try again on a faster connection, or {_ADVICE}",
                )
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, IncompleteRead
                raise DownloadError(
                    f"download of {url} was cut after {received:,}"
                    f"{f' of {length:,}' if length is not None else ''} bytes "
                    f"({type(exc).__name__}: {exc}), nothing was kept",
                    url=url,
                    advice=f"try again, or {_ADVICE}",
                ) from None
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise DownloadError(
                    f"download of {url} stopped: more than the {max_bytes:,} bytes this file may "
                    "have arrived, nothing was kept",
                    url=url,
                )
            hasher.update(chunk)
            out.write(chunk)
    if length is not None and received != length:
        raise DownloadError(
            f"download of {url} was cut after {received:,} of {length:,} bytes, nothing was kept",
            url=url,
            advice=f"try again, or {_ADVICE}",
        )
    return hasher.hexdigest()
