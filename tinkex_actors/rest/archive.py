"""Checkpoint archives: their signed URL, their download and their safe extraction.

The archive endpoint answers 302 with a download URL, or 503 while the archive is still being
generated; the client then asks again after the backoff of `ARCHIVE_RETRY_POLICY` (1 s
doubling to 10 s, no jitter), for up to the RestClient's `archive_timeout_s`. That wait, the
download and the extraction run on the RestClient's worker pool (see `rest_base`), never in
the caller's thread. The archive is fetched with httpx from the signed URL without the API key
(the URL is the credential; it is never logged) and extracted member by member: absolute
names, `..`, links and device files are refused, so an archive cannot write outside its
directory. A download is not resumed: a failed one leaves nothing behind.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from supervisors.library_logging import get_logger
from tinkex_actors.config import PoolKind
from tinkex_actors.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    error_for_status,
)
from tinkex_actors.futures.future import Future
from tinkex_actors.rest.base import RestBase
from tinkex_actors.rest.paths import checkpoint_route, parse_tinker_path
from tinkex_actors.transport.blocking_call import call
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.transport.retry import RetryPolicy

__all__ = [
    "ARCHIVE_RETRY_POLICY",
    "CheckpointArchiveUrlResponse",
    "ProgressFn",
    "RestArchiveCalls",
    "download_to_file",
    "http_date",
    "safe_extract",
]

ProgressFn = Callable[[int, "int | None"], object]
"""`progress(downloaded_bytes, total_bytes_or_None)`, called from a worker thread."""

ARCHIVE_RETRY_POLICY: Final = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.0)
"""Waits between two asks for an archive still being generated (503)."""
_DOWNLOAD_CHUNK: Final = 1 << 20
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})

_log = get_logger("tinkex_actors.rest.rest_client")


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointArchiveUrlResponse:
    """Where a checkpoint's archive can be downloaded, and until when (None if not said)."""

    url: str
    expires: dt.datetime | None = None


class RestArchiveCalls(RestBase):
    """Archive URL and archive download calls; mixed into `RestClient`."""

    def get_checkpoint_archive_url(
        self, training_run_id: str, checkpoint_id: str
    ) -> Future[CheckpointArchiveUrlResponse]:
        """The signed URL of a checkpoint's archive (the redirect is not followed).

        While the server answers 503 (the archive is being generated) the request is
        repeated with backoff, for up to `archive_timeout_s`.
        """
        route = checkpoint_route(training_run_id, checkpoint_id, "archive")
        return self._in_worker("get_checkpoint_archive_url", lambda _stop: self._archive_url(route))

    async def get_checkpoint_archive_url_async(
        self, training_run_id: str, checkpoint_id: str
    ) -> CheckpointArchiveUrlResponse:
        """`await` form of `get_checkpoint_archive_url`."""
        return await self.get_checkpoint_archive_url(training_run_id, checkpoint_id)

    def get_checkpoint_archive_url_from_tinker_path(
        self, tinker_path: str
    ) -> Future[CheckpointArchiveUrlResponse]:
        """`get_checkpoint_archive_url` for the checkpoint a tinker path names."""
        parsed = parse_tinker_path(tinker_path)
        return self.get_checkpoint_archive_url(parsed.training_run_id, parsed.checkpoint_id)

    async def get_checkpoint_archive_url_from_tinker_path_async(
        self, tinker_path: str
    ) -> CheckpointArchiveUrlResponse:
        """`await` form of `get_checkpoint_archive_url_from_tinker_path`."""
        return await self.get_checkpoint_archive_url_from_tinker_path(tinker_path)

    def download_checkpoint_archive(
        self,
        tinker_path: str,
        dest_dir: str | Path,
        progress: ProgressFn | None = None,
        *,
        overwrite: bool = False,
    ) -> Future[Path]:
        """Download a checkpoint's archive and extract it into a new directory of `dest_dir`.

        The directory is `<run_id>_<type>_<name>`; its path is the future's result. With
        `overwrite=False` an existing one is an error. `progress(done, total)` is called
        from a worker thread as bytes arrive. Cancelling the future stops the download.
        """
        parsed = parse_tinker_path(tinker_path)
        dest = Path(dest_dir)
        name = f"{parsed.training_run_id}_{parsed.checkpoint_id.replace('/', '_')}"
        target = dest / name
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; remove it or pass overwrite=True")
        route = checkpoint_route(parsed.training_run_id, parsed.checkpoint_id, "archive")
        timeout_s = self._transport.config.timeout_s

        def work(stop: threading.Event) -> Path:
            url = self._archive_url(route).url
            dest.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
                archive = Path(tmp) / "archive.tar.gz"
                download_to_file(url, archive, progress, stop, timeout_s)
                unpacked = Path(tmp) / "unpacked"
                safe_extract(archive, unpacked)
                if target.exists():
                    shutil.rmtree(target)
                unpacked.rename(target)
            return target

        return self._in_worker("download_checkpoint_archive", work)

    async def download_checkpoint_archive_async(
        self,
        tinker_path: str,
        dest_dir: str | Path,
        progress: ProgressFn | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """`await` form of `download_checkpoint_archive`."""
        return await self.download_checkpoint_archive(
            tinker_path, dest_dir, progress, overwrite=overwrite
        )

    def _archive_url(self, route: str) -> CheckpointArchiveUrlResponse:
        """Ask for the archive until it is ready (302); runs on a worker thread."""
        request = HttpRequest(
            "GET", route, pool=PoolKind.REST_SUPPORT_REDIRECT, follow_redirects=False
        )
        deadline = time.monotonic() + self._archive_timeout_s
        failures = 0
        while True:
            try:
                answer = call(self._transport, request, self._wait_s())
            except APIStatusError as exc:
                delay_s = ARCHIVE_RETRY_POLICY.backoff_s(failures)
                if exc.status_code != 503 or time.monotonic() + delay_s > deadline:
                    raise
                _log.info("checkpoint_archive_not_ready", route=route, delay_s=delay_s)
                self._sleep(delay_s)
                failures += 1
                continue
            location = answer.headers.get("location")
            if answer.status not in _REDIRECTS or not location:
                raise APIResponseValidationError(
                    f"GET {route} answered {answer.status} without a redirect to the archive",
                    method="GET",
                    url=answer.url,
                )
            return CheckpointArchiveUrlResponse(
                urljoin(answer.url, location), http_date(answer.headers.get("expires"))
            )


def _without_query(url: str) -> str:
    """The URL without its query and fragment, where a signed URL keeps its signature."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


def download_to_file(
    url: str,
    path: Path,
    progress: ProgressFn | None,
    stop: threading.Event,
    timeout_s: float,
) -> None:
    """Stream `url` into `path` with httpx (no credentials are sent: the URL is signed).

    Redirects are followed. A non-2xx answer raises the typed error of its status; no answer
    raises APITimeoutError or APIConnectionError. Errors name the URL without its query (the
    signature). `stop` set between two chunks raises CancelledError.
    """
    shown = _without_query(url)
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if not response.is_success:
                response.read()
                raise error_for_status(
                    response.status_code,
                    response.content[:200],
                    dict(response.headers),
                    method="GET",
                    url=shown,
                )
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            with path.open("wb") as out:
                for chunk in response.iter_bytes(_DOWNLOAD_CHUNK):
                    if stop.is_set():
                        raise concurrent.futures.CancelledError("download cancelled")
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except httpx.TimeoutException as exc:
        raise APITimeoutError(
            f"downloading the archive from {shown} timed out after {timeout_s} s: "
            f"{type(exc).__name__}",
            method="GET",
            url=shown,
        ) from None
    except httpx.TransportError as exc:
        raise APIConnectionError(
            f"downloading the archive from {shown} failed: {type(exc).__name__}",
            method="GET",
            url=shown,
        ) from None


def http_date(value: str | None) -> dt.datetime | None:
    """An HTTP-date or ISO 8601 header value as a datetime, or None if absent or unreadable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract regular files and directories only, each strictly inside `dest`."""
    dest.mkdir(parents=True)
    root = dest.resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or "\\" in member.name:
                raise ValueError(f"archive member {member.name!r} points outside the archive")
            if not (member.isfile() or member.isdir()):
                raise ValueError(
                    f"archive member {member.name!r} is a link or special file; refusing it"
                )
            if not (root / name).resolve().is_relative_to(root):
                raise ValueError(f"archive member {member.name!r} points outside the archive")
        tar.extractall(dest, members=members, filter="data")
