"""Checkpoint calls of the RestClient: listings, weights info, deletion, publishing, expiry.

`RestClient` inherits these from `RestCheckpointCalls`; like the rest of it, each returns a
`Future` at once and has an `_async` twin. Deleting many checkpoints is one call (at most
`max_in_flight` requests at once), failing with `CheckpointDeleteError` listing what failed.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from urllib.parse import quote

from tinkex_actors.config import PoolKind
from tinkex_actors.errors import APIStatusError
from tinkex_actors.futures.future import Future
from tinkex_actors.rest.base import RestBase, error_of
from tinkex_actors.rest.paths import (
    check_id,
    check_page,
    checkpoint_route,
    paged,
    parse_tinker_path,
)
from tinkex_actors.transport.messages import HttpRequest
from tinkex_actors.types import (
    Checkpoint,
    CheckpointsListResponse,
    ExternalWeightsUrlsResponse,
    WeightsInfoResponse,
)

__all__ = ["CheckpointDeleteError", "RestCheckpointCalls"]


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


class RestCheckpointCalls(RestBase):
    """Checkpoint calls; mixed into `RestClient`."""

    def list_checkpoints(self, training_run_id: str) -> Future[CheckpointsListResponse]:
        """Every checkpoint (training and sampler) of one training run."""
        run = quote(check_id("training_run_id", training_run_id), safe="")
        return self._get(f"training_runs/{run}/checkpoints", CheckpointsListResponse)

    async def list_checkpoints_async(self, training_run_id: str) -> CheckpointsListResponse:
        """`await` form of `list_checkpoints`."""
        return await self.list_checkpoints(training_run_id)

    def list_user_checkpoints(
        self, limit: int = 100, offset: int = 0
    ) -> Future[CheckpointsListResponse]:
        """One page of the user's checkpoints across all runs, newest first."""
        limit, offset = check_page(limit, offset)
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
        check_page(page_size, 0)

        def page(offset: int) -> tuple[list[Checkpoint], int]:
            answer = self.list_user_checkpoints(page_size, offset).result(timeout_s)
            total = answer.cursor.total_count if answer.cursor else offset + len(answer.checkpoints)
            return answer.checkpoints, total

        return paged(page)

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
        route = checkpoint_route(training_run_id, checkpoint_id)
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
        check_page(max_in_flight, 0)
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
            finished(path, error_of(part))

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
        route = checkpoint_route(
            parsed.training_run_id, parsed.checkpoint_id, "external_weights_urls"
        )
        return self._get(route, ExternalWeightsUrlsResponse)

    async def get_external_weights_urls_async(
        self, tinker_path: str
    ) -> ExternalWeightsUrlsResponse:
        """`await` form of `get_external_weights_urls`."""
        return await self.get_external_weights_urls(tinker_path)
