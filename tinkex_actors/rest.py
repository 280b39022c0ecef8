"""RestClient: training runs, checkpoints, sessions, samplers and checkpoint archives over REST.

Names and arguments follow the official `tinker.RestClient`. Every method returns a `Future`
at once: the HTTP call runs on the Transport's loop thread and its answer is decoded there, so
the caller blocks only in `.result()`. Each has an `_async` twin to `await`. Listings that page
(`list_training_runs`, `list_user_checkpoints`) also come as lazy iterators that fetch one
page at a time (`iter_training_runs`, `iter_user_checkpoints`, and `_async` twins).

Checkpoint archives are the one part that waits between requests: the archive endpoint answers
302 with a download URL, or 503 while the archive is still being generated, and the client
asks again with backoff (up to `archive_timeout_s`). That loop, and downloading and extracting
an archive, run on a small worker pool owned by the RestClient (two threads at most, started
on first use, joined by `close()`), never in the caller's thread. The archive is fetched from
the signed URL without the API key and extracted member by member: absolute names, `..`,
links and device files are refused, so an archive cannot write outside its directory.

Differences from the official SDK, on purpose: `whoami` asks the server (`GET whoami`) rather
than reading a JWT; tinker paths and ids are checked before any request; deleting many
checkpoints is one call; archive URL and download helpers exist (older official releases had
the URL call; 0.38 has neither).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import functools
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Final, Literal, TypeVar
from urllib.parse import quote, urljoin

from supervisors.library_logging import get_logger
from tinkex_actors.config import Config, PoolKind
from tinkex_actors.errors import APIResponseValidationError, APIStatusError
from tinkex_actors.futures import Future
from tinkex_actors.rest_admin import RestAdminCalls
from tinkex_actors.transport import HttpRequest, HttpResponse, Transport
from tinkex_actors.types import (
    Checkpoint,
    CheckpointsListResponse,
    ExternalWeightsUrlsResponse,
    GetSamplerResponse,
    GetServerCapabilitiesResponse,
    GetSessionResponse,
    ListSessionsResponse,
    ParsedCheckpointTinkerPath,
    TrainingRun,
    TrainingRunsResponse,
    WeightsInfoResponse,
    WhoamiResponse,
    from_json,
)

__all__ = [
    "CheckpointArchiveUrlResponse",
    "CheckpointDeleteError",
    "ProgressFn",
    "RestClient",
    "parse_tinker_path",
]

T = TypeVar("T")
AccessScope = Literal["owned", "accessible"]
ProgressFn = Callable[[int, "int | None"], object]
"""`progress(downloaded_bytes, total_bytes_or_None)`, called from a worker thread."""

ARCHIVE_RETRY_INITIAL_S: Final = 1.0
ARCHIVE_RETRY_MAX_S: Final = 10.0
_DOWNLOAD_CHUNK: Final = 1 << 20
_ACCESS_SCOPES: Final = ("owned", "accessible")

_log = get_logger("tinkex_actors.rest")


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointArchiveUrlResponse:
    """Where a checkpoint's archive can be downloaded, and until when (None if not said)."""

    url: str
    expires: dt.datetime | None = None


class CheckpointDeleteError(APIStatusError):
    """Some deletions of a `delete_checkpoints_from_tinker_paths` call failed.

    `failures` maps each failed tinker path to its error; the other paths were deleted.
    """

    def __init__(self, failures: dict[str, BaseException], total: int) -> None:
        first = next(iter(failures.values()))
        status = first.status_code if isinstance(first, APIStatusError) else 0
        listed = "; ".join(f"{path}: {error}" for path, error in failures.items())
        super().__init__(
            f"{len(failures)} of {total} checkpoint deletions failed ({listed})",
            status_code=status,
        )
        self.failures = failures


_URL_SIGNIFICANT: Final = frozenset("/\\?#%")


def _check_id(field: str, value: object) -> str:
    """`value` if it is safe as one URL path segment; ValueError naming the field otherwise.

    `.`, `..` and separators would be normalised away by URL handling and reach another
    endpoint (or, on a server, another directory), so they are refused before sending.
    """
    if (
        not isinstance(value, str)
        or not value
        or ".." in value
        or value == "."
        or any(c in _URL_SIGNIFICANT or c.isspace() or not c.isprintable() for c in value)
    ):
        raise ValueError(
            f"{field} must be a non-empty id without '/', '\\', '.' or '..', '%', '?', '#', "
            f"spaces or control characters; got {value!r}"
        )
    return value


def _check_scope(access_scope: object) -> AccessScope:
    if access_scope == "owned":
        return "owned"
    if access_scope == "accessible":
        return "accessible"
    raise ValueError(f"access_scope must be one of {_ACCESS_SCOPES}, got {access_scope!r}")


def _check_page(limit: object, offset: object) -> tuple[int, int]:
    for field, value, low in (("limit", limit, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{field} must be an int >= {low}, got {value!r}")
    assert isinstance(limit, int) and isinstance(offset, int)
    return limit, offset


def parse_tinker_path(tinker_path: object) -> ParsedCheckpointTinkerPath:
    """Split a tinker path; ValueError naming the path and the expected form."""
    if not isinstance(tinker_path, str):
        raise ValueError(
            f"tinker_path must be a str like 'tinker://<run_id>/weights/<name>', "
            f"got {tinker_path!r}"
        )
    parsed = ParsedCheckpointTinkerPath.from_tinker_path(tinker_path)
    name = parsed.checkpoint_id.partition("/")[2]
    if not parsed.training_run_id or not name:
        raise ValueError(
            f"Invalid tinker path: {tinker_path!r}; the run id and the checkpoint name must not "
            "be empty: tinker://<run_id>/<weights|sampler_weights|external_weights>/<name>"
        )
    _check_id("the run id of the tinker path", parsed.training_run_id)
    _check_id("the checkpoint name of the tinker path", name)
    return parsed


def _checkpoint_route(training_run_id: str, checkpoint_id: str, action: str = "") -> str:
    _check_id("training_run_id", training_run_id)
    kind, _, name = checkpoint_id.partition("/") if isinstance(checkpoint_id, str) else ("", "", "")
    if not kind or not name:
        raise ValueError(f"checkpoint_id must look like 'weights/<name>', got {checkpoint_id!r}")
    _check_id("checkpoint_id", kind)
    _check_id("checkpoint_id", name)
    route = f"training_runs/{quote(training_run_id, safe='')}/checkpoints/"
    route += quote(checkpoint_id, safe="/")
    return f"{route}/{action}" if action else route


class RestClient(RestAdminCalls):
    """Manage training runs, checkpoints, sessions and samplers.

    `RestClient(transport)` uses a Transport someone else owns (a ServiceClient's);
    `RestClient(api_key=..., base_url=...)` or `RestClient(config=...)` builds its own and
    closes it in `close()` (or on leaving a `with` block). `sleep` waits between archive
    retries on a worker thread (tests pass a fake).
    """

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        config: Config | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        archive_timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if transport is not None and (config, api_key, base_url) != (None, None, None):
            raise ValueError(
                "RestClient takes either a transport or config/api_key/base_url, not both: "
                "a transport already carries its own base URL and credentials"
            )
        if not archive_timeout_s > 0:
            raise ValueError(f"archive_timeout_s must be > 0, got {archive_timeout_s!r}")
        self._owns_transport = transport is None
        if transport is None:
            if config is None:
                config = Config.resolve(api_key=api_key, base_url=base_url)
            elif api_key is not None or base_url is not None:
                raise ValueError("pass config or api_key/base_url, not both")
            transport = Transport(config)
        self._transport = transport
        self._archive_timeout_s = archive_timeout_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    # -- lifetime ----------------------------------------------------------------------------

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the archive workers and, if this client built it, close the Transport."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)
        if self._owns_transport:
            self._transport.close(timeout_s)

    def __enter__(self) -> RestClient:
        """Use as a context manager: closes on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    # -- training runs -----------------------------------------------------------------------

    def get_training_run(
        self, training_run_id: str, access_scope: AccessScope = "owned"
    ) -> Future[TrainingRun]:
        """A training run and its latest checkpoints."""
        route = f"training_runs/{quote(_check_id('training_run_id', training_run_id), safe='')}"
        return self._get(route, TrainingRun, {"access_scope": _check_scope(access_scope)})

    async def get_training_run_async(
        self, training_run_id: str, access_scope: AccessScope = "owned"
    ) -> TrainingRun:
        """`await` form of `get_training_run`."""
        return await self.get_training_run(training_run_id, access_scope)

    def get_training_run_by_tinker_path(
        self, tinker_path: str, access_scope: AccessScope = "owned"
    ) -> Future[TrainingRun]:
        """The training run a checkpoint belongs to."""
        return self.get_training_run(parse_tinker_path(tinker_path).training_run_id, access_scope)

    async def get_training_run_by_tinker_path_async(
        self, tinker_path: str, access_scope: AccessScope = "owned"
    ) -> TrainingRun:
        """`await` form of `get_training_run_by_tinker_path`."""
        return await self.get_training_run_by_tinker_path(tinker_path, access_scope)

    def list_training_runs(
        self,
        limit: int = 20,
        offset: int = 0,
        access_scope: AccessScope = "owned",
        project_id: str | None = None,
    ) -> Future[TrainingRunsResponse]:
        """One page of training runs, newest first, with a cursor."""
        limit, offset = _check_page(limit, offset)
        params: dict[str, str | int] = {
            "limit": limit,
            "offset": offset,
            "access_scope": _check_scope(access_scope),
        }
        if project_id is not None:
            params["project_id"] = _check_id("project_id", project_id)
        return self._get("training_runs", TrainingRunsResponse, params)

    async def list_training_runs_async(
        self,
        limit: int = 20,
        offset: int = 0,
        access_scope: AccessScope = "owned",
        project_id: str | None = None,
    ) -> TrainingRunsResponse:
        """`await` form of `list_training_runs`."""
        return await self.list_training_runs(limit, offset, access_scope, project_id)

    def iter_training_runs(
        self, page_size: int = 20, access_scope: AccessScope = "owned", timeout_s: float = 300.0
    ) -> Iterator[TrainingRun]:
        """Every training run, fetching a page only when the previous one is used up."""
        _check_page(page_size, 0)
        _check_scope(access_scope)

        def page(offset: int) -> tuple[list[TrainingRun], int]:
            answer = self.list_training_runs(page_size, offset, access_scope).result(timeout_s)
            return answer.training_runs, answer.cursor.total_count

        return _paged(page)

    async def iter_training_runs_async(
        self, page_size: int = 20, access_scope: AccessScope = "owned"
    ) -> AsyncIterator[TrainingRun]:
        """`async for` form of `iter_training_runs`."""
        offset = 0
        while True:
            answer = await self.list_training_runs(page_size, offset, access_scope)
            for run in answer.training_runs:
                yield run
            offset += len(answer.training_runs)
            if not answer.training_runs or offset >= answer.cursor.total_count:
                return

    # -- checkpoints -------------------------------------------------------------------------

    def list_checkpoints(self, training_run_id: str) -> Future[CheckpointsListResponse]:
        """Every checkpoint (training and sampler) of one training run."""
        run = quote(_check_id("training_run_id", training_run_id), safe="")
        return self._get(f"training_runs/{run}/checkpoints", CheckpointsListResponse)

    async def list_checkpoints_async(self, training_run_id: str) -> CheckpointsListResponse:
        """`await` form of `list_checkpoints`."""
        return await self.list_checkpoints(training_run_id)

    def list_user_checkpoints(
        self, limit: int = 100, offset: int = 0
    ) -> Future[CheckpointsListResponse]:
        """One page of the user's checkpoints across all runs, newest first."""
        limit, offset = _check_page(limit, offset)
        return self._get("checkpoints", CheckpointsListResponse, {"limit": limit, "offset": offset})

    async def list_user_checkpoints_async(
        self, limit: int = 100, offset: int = 0
    ) -> CheckpointsListResponse:
        """`await` form of `list_user_checkpoints`."""
        return await self.list_user_checkpoints(limit, offset)

    def iter_user_checkpoints(
        self, page_size: int = 100, timeout_s: float = 300.0
    ) -> Iterator[Checkpoint]:
        """Every checkpoint of the user, fetching a page only when the previous one is used up."""
        _check_page(page_size, 0)

        def page(offset: int) -> tuple[list[Checkpoint], int]:
            answer = self.list_user_checkpoints(page_size, offset).result(timeout_s)
            total = answer.cursor.total_count if answer.cursor else offset + len(answer.checkpoints)
            return answer.checkpoints, total

        return _paged(page)

    async def iter_user_checkpoints_async(self, page_size: int = 100) -> AsyncIterator[Checkpoint]:
        """`async for` form of `iter_user_checkpoints`."""
        offset = 0
        while True:
            answer = await self.list_user_checkpoints(page_size, offset)
            for checkpoint in answer.checkpoints:
                yield checkpoint
            offset += len(answer.checkpoints)
            total = answer.cursor.total_count if answer.cursor else offset
            if not answer.checkpoints or offset >= total:
                return

    def get_weights_info_by_tinker_path(self, tinker_path: str) -> Future[WeightsInfoResponse]:
        """What a checkpoint needs to be loaded: base model and LoRA settings."""
        parse_tinker_path(tinker_path)
        request = HttpRequest.json(
            "POST", "weights_info", {"tinker_path": tinker_path}, pool=PoolKind.TRAIN
        )
        return self._send(request, WeightsInfoResponse)

    async def get_weights_info_by_tinker_path_async(self, tinker_path: str) -> WeightsInfoResponse:
        """`await` form of `get_weights_info_by_tinker_path`."""
        return await self.get_weights_info_by_tinker_path(tinker_path)

    def delete_checkpoint(self, training_run_id: str, checkpoint_id: str) -> Future[None]:
        """Delete one checkpoint of a training run."""
        route = _checkpoint_route(training_run_id, checkpoint_id)
        return self._send(HttpRequest("DELETE", route, pool=PoolKind.TRAIN), None)

    async def delete_checkpoint_async(self, training_run_id: str, checkpoint_id: str) -> None:
        """`await` form of `delete_checkpoint`."""
        await self.delete_checkpoint(training_run_id, checkpoint_id)

    def delete_checkpoint_from_tinker_path(self, tinker_path: str) -> Future[None]:
        """Delete the checkpoint a tinker path names."""
        parsed = parse_tinker_path(tinker_path)
        return self.delete_checkpoint(parsed.training_run_id, parsed.checkpoint_id)

    async def delete_checkpoint_from_tinker_path_async(self, tinker_path: str) -> None:
        """`await` form of `delete_checkpoint_from_tinker_path`."""
        await self.delete_checkpoint_from_tinker_path(tinker_path)

    def delete_checkpoints_from_tinker_paths(
        self, tinker_paths: Iterable[str], max_in_flight: int = 8
    ) -> Future[None]:
        """Delete many checkpoints, at most `max_in_flight` requests at once.

        Every path is checked before the first request. The future settles once every
        deletion ended; if any failed it fails with `CheckpointDeleteError` listing them.
        """
        self._check_open()
        paths = list(tinker_paths) if not isinstance(tinker_paths, str) else [tinker_paths]
        parsed = [parse_tinker_path(path) for path in paths]
        _check_page(max_in_flight, 0)
        outcome: Future[None] = Future(request_type="delete_checkpoints")
        if not parsed:
            outcome.set_result(None)
            return outcome
        pending = iter(parsed)
        failures: dict[str, BaseException] = {}
        lock = threading.Lock()
        remaining = [len(parsed)]

        def start_next() -> None:
            # A loop, not recursion: a call refused at once (closed client) takes the next path.
            while True:
                with lock:
                    item = next(pending, None)
                if item is None or outcome.done():
                    return
                try:
                    part = self.delete_checkpoint(item.training_run_id, item.checkpoint_id)
                except Exception as exc:
                    if finished(item.tinker_path, exc, start=False):
                        return
                    continue
                part.add_done_callback(functools.partial(_report, item.tinker_path))
                return

        def _report(path: str, part: Future[None]) -> None:
            finished(path, _error_of(part))

        def finished(path: str, error: BaseException | None, start: bool = True) -> bool:
            with lock:
                if error is not None:
                    failures[path] = error
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                if failures:
                    outcome.set_exception(CheckpointDeleteError(dict(failures), len(parsed)))
                else:
                    outcome.set_result(None)
            elif start:
                start_next()
            return last

        for _ in range(min(max_in_flight, len(parsed))):
            start_next()
        return outcome

    async def delete_checkpoints_from_tinker_paths_async(
        self, tinker_paths: Iterable[str], max_in_flight: int = 8
    ) -> None:
        """`await` form of `delete_checkpoints_from_tinker_paths`."""
        await self.delete_checkpoints_from_tinker_paths(tinker_paths, max_in_flight)

    def publish_checkpoint_from_tinker_path(self, tinker_path: str) -> Future[None]:
        """Make a checkpoint public (its owner only)."""
        return self._checkpoint_action("POST", tinker_path, "publish")

    async def publish_checkpoint_from_tinker_path_async(self, tinker_path: str) -> None:
        """`await` form of `publish_checkpoint_from_tinker_path`."""
        await self.publish_checkpoint_from_tinker_path(tinker_path)

    def unpublish_checkpoint_from_tinker_path(self, tinker_path: str) -> Future[None]:
        """Make a public checkpoint private again."""
        return self._checkpoint_action("DELETE", tinker_path, "publish")

    async def unpublish_checkpoint_from_tinker_path_async(self, tinker_path: str) -> None:
        """`await` form of `unpublish_checkpoint_from_tinker_path`."""
        await self.unpublish_checkpoint_from_tinker_path(tinker_path)

    def set_checkpoint_ttl_from_tinker_path(
        self, tinker_path: str, ttl_seconds: int | None
    ) -> Future[None]:
        """Expire a checkpoint `ttl_seconds` from now, or never (None)."""
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0
        ):
            raise ValueError(
                f"ttl_seconds must be a positive int (seconds from now) or None to remove the "
                f"expiry, got {ttl_seconds!r}"
            )
        return self._checkpoint_action("PUT", tinker_path, "ttl", {"ttl_seconds": ttl_seconds})

    async def set_checkpoint_ttl_from_tinker_path_async(
        self, tinker_path: str, ttl_seconds: int | None
    ) -> None:
        """`await` form of `set_checkpoint_ttl_from_tinker_path`."""
        await self.set_checkpoint_ttl_from_tinker_path(tinker_path, ttl_seconds)

    def get_external_weights_urls(self, tinker_path: str) -> Future[ExternalWeightsUrlsResponse]:
        """Signed download URLs, one per file, of an external weights checkpoint."""
        parsed = parse_tinker_path(tinker_path)
        if parsed.checkpoint_type != "external":
            raise ValueError(
                "get_external_weights_urls only accepts external weights checkpoints "
                f"(tinker://<run_id>/external_weights/<name>), got {tinker_path!r}"
            )
        route = _checkpoint_route(
            parsed.training_run_id, parsed.checkpoint_id, "external_weights_urls"
        )
        return self._get(route, ExternalWeightsUrlsResponse)

    async def get_external_weights_urls_async(
        self, tinker_path: str
    ) -> ExternalWeightsUrlsResponse:
        """`await` form of `get_external_weights_urls`."""
        return await self.get_external_weights_urls(tinker_path)

    # -- archives ----------------------------------------------------------------------------

    def get_checkpoint_archive_url(
        self, training_run_id: str, checkpoint_id: str
    ) -> Future[CheckpointArchiveUrlResponse]:
        """The signed URL of a checkpoint's archive (the redirect is not followed).

        While the server answers 503 (the archive is being generated) the request is
        repeated with backoff, for up to `archive_timeout_s`.
        """
        route = _checkpoint_route(training_run_id, checkpoint_id, "archive")
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
        route = _checkpoint_route(parsed.training_run_id, parsed.checkpoint_id, "archive")

        def work(stop: threading.Event) -> Path:
            url = self._archive_url(route).url
            dest.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
                archive = Path(tmp) / "archive.tar.gz"
                self._download(url, archive, progress, stop)
                unpacked = Path(tmp) / "unpacked"
                _safe_extract(archive, unpacked)
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

    # -- sessions, samplers, server ------------------------------------------------------------

    def get_session(
        self, session_id: str, access_scope: AccessScope = "owned"
    ) -> Future[GetSessionResponse]:
        """The training runs and samplers of one session."""
        route = f"sessions/{quote(_check_id('session_id', session_id), safe='')}"
        return self._get(route, GetSessionResponse, {"access_scope": _check_scope(access_scope)})

    async def get_session_async(
        self, session_id: str, access_scope: AccessScope = "owned"
    ) -> GetSessionResponse:
        """`await` form of `get_session`."""
        return await self.get_session(session_id, access_scope)

    def list_sessions(
        self, limit: int = 20, offset: int = 0, access_scope: AccessScope = "owned"
    ) -> Future[ListSessionsResponse]:
        """One page of session ids, newest first."""
        limit, offset = _check_page(limit, offset)
        params: dict[str, str | int] = {
            "limit": limit,
            "offset": offset,
            "access_scope": _check_scope(access_scope),
        }
        return self._get("sessions", ListSessionsResponse, params)

    async def list_sessions_async(
        self, limit: int = 20, offset: int = 0, access_scope: AccessScope = "owned"
    ) -> ListSessionsResponse:
        """`await` form of `list_sessions`."""
        return await self.list_sessions(limit, offset, access_scope)

    def get_sampler(self, sampler_id: str) -> Future[GetSamplerResponse]:
        """A sampler (sampling session) and what it samples from."""
        route = f"samplers/{quote(_check_id('sampler_id', sampler_id), safe='')}"
        return self._get(route, GetSamplerResponse)

    async def get_sampler_async(self, sampler_id: str) -> GetSamplerResponse:
        """`await` form of `get_sampler`."""
        return await self.get_sampler(sampler_id)

    def whoami(self) -> Future[WhoamiResponse]:
        """The calling principal and its organization."""
        return self._get("whoami", WhoamiResponse)

    async def whoami_async(self) -> WhoamiResponse:
        """`await` form of `whoami`."""
        return await self.whoami()

    def get_server_capabilities(self) -> Future[GetServerCapabilitiesResponse]:
        """The models the server offers, with their limits."""
        return self._get("get_server_capabilities", GetServerCapabilitiesResponse)

    async def get_server_capabilities_async(self) -> GetServerCapabilitiesResponse:
        """`await` form of `get_server_capabilities`."""
        return await self.get_server_capabilities()

    # -- plumbing ------------------------------------------------------------------------------

    def _get(
        self, route: str, type_: type[T], params: dict[str, str | int] | None = None
    ) -> Future[T]:
        return self._send(HttpRequest("GET", route, params=params, pool=PoolKind.TRAIN), type_)

    def _checkpoint_action(
        self, method: str, tinker_path: str, action: str, payload: Any = None
    ) -> Future[None]:
        parsed = parse_tinker_path(tinker_path)
        route = _checkpoint_route(parsed.training_run_id, parsed.checkpoint_id, action)
        return self._send(HttpRequest.json(method, route, payload, pool=PoolKind.TRAIN), None)

    def _send(self, request: HttpRequest, type_: type[T] | None) -> Future[Any]:
        """Submit on the transport; the answer is decoded and settled on its loop thread."""
        self._check_open()
        inner = self._transport.submit(request)
        outcome: Future[Any] = Future(request_type=request.path, canceller=inner.cancel)

        def settle(done: concurrent.futures.Future[HttpResponse]) -> None:
            if done.cancelled():
                outcome.cancel()
                return
            error = done.exception()
            if error is not None:
                outcome.set_exception(error)
                return
            if type_ is None:
                outcome.set_result(None)
                return
            answer = done.result()
            try:
                outcome.set_result(from_json(answer.content, type_))
            except Exception as exc:
                outcome.set_exception(
                    APIResponseValidationError(
                        f"{request.method} {request.path} answered a body that is not a "
                        f"{type_.__name__}: {exc}",
                        method=request.method,
                        url=answer.url,
                        body=answer.content[:200],
                    )
                )

        inner.add_done_callback(settle)
        return outcome

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RestClient is closed; create a new one")

    def _in_worker(self, name: str, work: Callable[[threading.Event], T]) -> Future[T]:
        """Run blocking `work(stop)` on the client's worker pool; cancel sets `stop`."""
        stop = threading.Event()
        with self._lock:
            self._check_open()
            if self._workers is None:
                self._workers = concurrent.futures.ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="tinkex-rest"
                )
            workers = self._workers
        outcome: Future[T] = Future(request_type=name, canceller=stop.set)

        def run() -> None:
            if outcome.done():
                return
            try:
                outcome.set_result(work(stop))
            except BaseException as exc:
                outcome.set_exception(exc)

        workers.submit(run)
        return outcome

    def _wait_s(self) -> float:
        config = self._transport.config
        # Bound on one call with all its HTTP retries (each up to the timeout plus a 60 s pause).
        return (config.timeout_s + 60.0) * (config.max_retries + 1)

    def _archive_url(self, route: str) -> CheckpointArchiveUrlResponse:
        """Ask for the archive until it is ready (302); runs on a worker thread."""
        request = HttpRequest(
            "GET", route, pool=PoolKind.REST_SUPPORT_REDIRECT, follow_redirects=False
        )
        deadline = time.monotonic() + self._archive_timeout_s
        delay_s = ARCHIVE_RETRY_INITIAL_S
        while True:
            try:
                answer = self._transport.submit(request).result(self._wait_s())
            except APIStatusError as exc:
                if exc.status_code != 503 or time.monotonic() + delay_s > deadline:
                    raise
                _log.info("checkpoint_archive_not_ready", route=route, delay_s=delay_s)
                self._sleep(delay_s)
                delay_s = min(delay_s * 2, ARCHIVE_RETRY_MAX_S)
                continue
            location = answer.headers.get("location")
            if answer.status not in (301, 302, 303, 307, 308) or not location:
                raise APIResponseValidationError(
                    f"GET {route} answered {answer.status} without a redirect to the archive",
                    method="GET",
                    url=answer.url,
                )
            return CheckpointArchiveUrlResponse(
                urljoin(answer.url, location), _http_date(answer.headers.get("expires"))
            )

    def _download(
        self, url: str, path: Path, progress: ProgressFn | None, stop: threading.Event
    ) -> None:
        """Stream `url` into `path` (no credentials are sent: the URL is signed)."""
        timeout_s = self._transport.config.timeout_s
        with urllib.request.urlopen(url, timeout=timeout_s) as response, path.open("wb") as out:
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := response.read(_DOWNLOAD_CHUNK):
                if stop.is_set():
                    raise concurrent.futures.CancelledError("download cancelled")
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)


def _error_of(future: Future[Any]) -> BaseException | None:
    if future.cancelled():
        return concurrent.futures.CancelledError("cancelled")
    return future.exception(0)


def _paged(fetch: Callable[[int], tuple[list[T], int]]) -> Iterator[T]:
    offset = 0
    while True:
        items, total = fetch(offset)
        yield from items
        offset += len(items)
        if not items or offset >= total:
            return


def _http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None


def _safe_extract(archive: Path, dest: Path) -> None:
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
