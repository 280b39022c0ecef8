"""RestClient: training runs, checkpoints, sessions, samplers and checkpoint archives over REST.

Names and arguments follow the official `tinker.RestClient`. Every method returns a `Future`
at once: the HTTP call runs on the Transport's loop thread and its answer is decoded there, so
the caller blocks only in `.result()`. Each has an `_async` twin to `await`. Listings that page
(`list_training_runs`, `list_user_checkpoints`) also come as lazy iterators that fetch one
page at a time (`iter_training_runs`, `iter_user_checkpoints`, and `_async` twins).

The client is assembled from one class per idea: `rest_base.RestBase` (transport, lifetime,
plumbing, the small worker pool), `rest_checkpoints.RestCheckpointCalls`,
`rest_archive.RestArchiveCalls` (archive URL, download, safe extraction) and
`rest_admin.RestAdminCalls` (copies, admin reports, session management); this module adds the
training run, session, sampler and server calls. Ids and tinker paths are checked by
`rest_paths` before any request.

Differences from the official SDK, on purpose: `whoami` asks the server (`GET whoami`) rather
than reading a JWT; tinker paths and ids are checked before any request; deleting many
checkpoints is one call; archive URL and download helpers exist (older official releases had
the URL call; 0.38 has neither).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

from tinkex_actors.futures.future import Future
from tinkex_actors.rest.admin_calls import RestAdminCalls
from tinkex_actors.rest.archive import RestArchiveCalls
from tinkex_actors.rest.checkpoints import RestCheckpointCalls
from tinkex_actors.rest.paths import (
    AccessScope,
    check_id,
    check_page,
    check_scope,
    paged,
    parse_tinker_path,
)
from tinkex_actors.types import (
    GetSamplerResponse,
    GetServerCapabilitiesResponse,
    GetSessionResponse,
    ListSessionsResponse,
    TrainingRun,
    TrainingRunsResponse,
    WhoamiResponse,
)

__all__ = [
    "RestClient",
]


class RestClient(RestCheckpointCalls, RestArchiveCalls, RestAdminCalls):
    """Manage training runs, checkpoints, sessions and samplers.

    `RestClient(transport)` uses a Transport someone else owns (a ServiceClient's);
    `RestClient(api_key=..., base_url=...)` or `RestClient(config=...)` builds its own and
    closes it in `close()` (or on leaving a `with` block). `sleep` waits between archive
    retries on a worker thread (tests pass a fake).
    """

    # -- training runs -----------------------------------------------------------------------

    def get_training_run(
        self, training_run_id: str, access_scope: AccessScope = "owned"
    ) -> Future[TrainingRun]:
        """A training run and its latest checkpoints."""
        route = f"training_runs/{quote(check_id('training_run_id', training_run_id), safe='')}"
        return self._get(route, TrainingRun, {"access_scope": check_scope(access_scope)})

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
        limit, offset = check_page(limit, offset)
        params: dict[str, str | int] = {
            "limit": limit,
            "offset": offset,
            "access_scope": check_scope(access_scope),
        }
        if project_id is not None:
            params["project_id"] = check_id("project_id", project_id)
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
        check_page(page_size, 0)
        check_scope(access_scope)

        def page(offset: int) -> tuple[list[TrainingRun], int]:
            answer = self.list_training_runs(page_size, offset, access_scope).result(timeout_s)
            return answer.training_runs, answer.cursor.total_count

        return paged(page)

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

    # -- sessions, samplers, server ------------------------------------------------------------

    def get_session(
        self, session_id: str, access_scope: AccessScope = "owned"
    ) -> Future[GetSessionResponse]:
        """The training runs and samplers of one session."""
        route = f"sessions/{quote(check_id('session_id', session_id), safe='')}"
        return self._get(route, GetSessionResponse, {"access_scope": check_scope(access_scope)})

    async def get_session_async(
        self, session_id: str, access_scope: AccessScope = "owned"
    ) -> GetSessionResponse:
        """`await` form of `get_session`."""
        return await self.get_session(session_id, access_scope)

    def list_sessions(
        self, limit: int = 20, offset: int = 0, access_scope: AccessScope = "owned"
    ) -> Future[ListSessionsResponse]:
        """One page of session ids, newest first."""
        limit, offset = check_page(limit, offset)
        params: dict[str, str | int] = {
            "limit": limit,
            "offset": offset,
            "access_scope": check_scope(access_scope),
        }
        return self._get("sessions", ListSessionsResponse, params)

    async def list_sessions_async(
        self, limit: int = 20, offset: int = 0, access_scope: AccessScope = "owned"
    ) -> ListSessionsResponse:
        """`await` form of `list_sessions`."""
        return await self.list_sessions(limit, offset, access_scope)

    def get_sampler(self, sampler_id: str) -> Future[GetSamplerResponse]:
        """A sampler (sampling session) and what it samples from."""
        route = f"samplers/{quote(check_id('sampler_id', sampler_id), safe='')}"
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
