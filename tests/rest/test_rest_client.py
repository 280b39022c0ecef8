"""RestClient against the embedded server over real HTTP: runs, checkpoints, sessions, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from tests.rest.conftest import WAIT_S, Seeder, count, new_sampler, new_session
from tinkex_actors.config import Config
from tinkex_actors.errors import BadRequestError, InternalServerError, NotFoundError
from tinkex_actors.futures.future import Future
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.checkpoints import CheckpointDeleteError
from tinkex_actors.rest.rest_client import RestClient
from tinkex_actors.transport.transport import Transport


class TestTrainingRuns:
    def test_get_training_run_answers_the_run_and_its_last_checkpoint(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """A run comes back typed, with its latest checkpoint."""
        run_id, paths = seed.run(checkpoints=2)
        run = rest.get_training_run(run_id).result(WAIT_S)
        assert run.training_run_id == run_id
        assert run.base_model == "tiny-byte-lm"
        assert run.last_checkpoint is not None
        assert run.last_checkpoint.tinker_path == paths[-1]

    def test_get_training_run_by_tinker_path_finds_the_owning_run(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """The run id is taken from the tinker path."""
        run_id, paths = seed.run()
        assert rest.get_training_run_by_tinker_path(paths[0]).result(WAIT_S).training_run_id == (
            run_id
        )

    def test_an_unknown_run_fails_with_not_found_and_no_retry(
        self, rest: RestClient, server: LocalServer
    ) -> None:
        """A 404 is a user error: one request, a NotFoundError naming the run."""
        before = count(server, "/api/v1/training_runs/run-missing")
        with pytest.raises(NotFoundError, match="run-missing"):
            rest.get_training_run("run-missing").result(WAIT_S)
        assert count(server, "/api/v1/training_runs/run-missing") == before + 1

    def test_list_training_runs_pages_with_a_cursor(self, rest: RestClient, seed: Seeder) -> None:
        """limit and offset select a page; the cursor gives the total."""
        for _ in range(3):
            seed.run(checkpoints=0)
        first = rest.list_training_runs(limit=2).result(WAIT_S)
        second = rest.list_training_runs(limit=2, offset=2).result(WAIT_S)
        assert len(first.training_runs) == 2
        assert first.cursor.total_count >= 3
        assert {r.training_run_id for r in first.training_runs}.isdisjoint(
            r.training_run_id for r in second.training_runs
        )

    def test_iter_training_runs_fetches_pages_only_as_they_are_used(
        self, rest: RestClient, seed: Seeder, server: LocalServer
    ) -> None:
        """The iterator asks for the next page only when the previous one is used up."""
        for _ in range(5):
            seed.run(checkpoints=0)
        total = rest.list_training_runs(limit=1).result(WAIT_S).cursor.total_count
        before = count(server, "/api/v1/training_runs")
        runs = rest.iter_training_runs(page_size=2)
        assert count(server, "/api/v1/training_runs") == before
        next(runs)
        next(runs)
        assert count(server, "/api/v1/training_runs") == before + 1
        rest_of_them = list(runs)
        assert len(rest_of_them) + 2 == total
        assert count(server, "/api/v1/training_runs") == before + (total + 1) // 2


class TestCheckpoints:
    def test_list_checkpoints_answers_every_checkpoint_of_a_run(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """Training and sampler checkpoints of one run."""
        run_id, paths = seed.run(checkpoints=3)
        answer = rest.list_checkpoints(run_id).result(WAIT_S)
        assert sorted(c.tinker_path for c in answer.checkpoints) == sorted(paths)
        assert {c.checkpoint_type for c in answer.checkpoints} == {"training"}

    def test_iter_user_checkpoints_walks_250_checkpoints_in_pages(
        self, rest: RestClient, seed: Seeder, server: LocalServer
    ) -> None:
        """A paginated listing of 250 checkpoints: every one once, one request per page."""
        _run_id, paths = seed.run(checkpoints=250)
        total = rest.list_user_checkpoints(limit=1).result(WAIT_S).cursor
        assert total is not None
        before = count(server, "/api/v1/checkpoints")
        seen = [c.tinker_path for c in rest.iter_user_checkpoints(page_size=100)]
        assert len(seen) == len(set(seen)) == total.total_count
        assert set(paths) <= set(seen)
        assert count(server, "/api/v1/checkpoints") == before + -(-total.total_count // 100)

    def test_weights_info_reports_the_lora_settings(self, rest: RestClient, seed: Seeder) -> None:
        """weights_info reads the checkpoint's base model and rank."""
        _run_id, paths = seed.run()
        info = rest.get_weights_info_by_tinker_path(paths[0]).result(WAIT_S)
        assert (info.base_model, info.lora_rank, info.train_mlp) == ("tiny-byte-lm", 4, True)

    def test_delete_checkpoint_removes_it(self, rest: RestClient, seed: Seeder) -> None:
        """Both the id form and the tinker path form delete."""
        run_id, paths = seed.run(checkpoints=2)
        assert rest.delete_checkpoint(run_id, "weights/step-0000").result(WAIT_S) is None
        rest.delete_checkpoint_from_tinker_path(paths[1]).result(WAIT_S)
        assert rest.list_checkpoints(run_id).result(WAIT_S).checkpoints == []

    def test_deleting_a_missing_checkpoint_is_not_found(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """The 404 names the checkpoint."""
        run_id, _ = seed.run(checkpoints=0)
        with pytest.raises(NotFoundError, match="step-9"):
            rest.delete_checkpoint(run_id, "weights/step-9").result(WAIT_S)

    def test_deleting_many_deletes_all_and_reports_the_failures(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """Missing paths fail together in one error; the others are deleted."""
        run_id, paths = seed.run(checkpoints=12)
        missing = f"tinker://{run_id}/weights/gone"
        outcome = rest.delete_checkpoints_from_tinker_paths([*paths, missing], max_in_flight=3)
        with pytest.raises(CheckpointDeleteError) as caught:
            outcome.result(WAIT_S)
        assert list(caught.value.failures) == [missing]
        assert isinstance(caught.value.failures[missing], NotFoundError)
        assert rest.list_checkpoints(run_id).result(WAIT_S).checkpoints == []

    def test_deleting_many_succeeds_when_all_exist(self, rest: RestClient, seed: Seeder) -> None:
        """No failures: the future settles with None; an empty list settles at once."""
        _run_id, paths = seed.run(checkpoints=3)
        assert rest.delete_checkpoints_from_tinker_paths(paths).result(WAIT_S) is None
        assert rest.delete_checkpoints_from_tinker_paths([]).done()

    def test_publish_and_unpublish_flip_the_public_flag(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """The listing shows the checkpoint public, then private again."""
        run_id, paths = seed.run()

        def public() -> bool:
            return rest.list_checkpoints(run_id).result(WAIT_S).checkpoints[0].public

        rest.publish_checkpoint_from_tinker_path(paths[0]).result(WAIT_S)
        assert public()
        rest.unpublish_checkpoint_from_tinker_path(paths[0]).result(WAIT_S)
        assert not public()

    def test_set_ttl_sets_and_clears_the_expiry(self, rest: RestClient, seed: Seeder) -> None:
        """A TTL shows as expires_at; None removes it."""
        run_id, paths = seed.run()

        def expires() -> object:
            return rest.list_checkpoints(run_id).result(WAIT_S).checkpoints[0].expires_at

        rest.set_checkpoint_ttl_from_tinker_path(paths[0], 86_400).result(WAIT_S)
        assert expires() is not None
        rest.set_checkpoint_ttl_from_tinker_path(paths[0], None).result(WAIT_S)
        assert expires() is None

    def test_external_weights_urls_list_the_files(self, rest: RestClient, seed: Seeder) -> None:
        """An external weights checkpoint answers one URL per file."""
        _run_id, paths = seed.run(kind="external")
        answer = rest.get_external_weights_urls(paths[0]).result(WAIT_S)
        assert set(answer.urls) == {"arrays.npz", "meta.json"}


class TestSessionsAndServer:
    def test_get_session_lists_its_samplers(self, rest: RestClient, server: LocalServer) -> None:
        """A session created over HTTP shows its sampler and metadata."""
        session_id = new_session(server)
        sampler_id = new_sampler(server, session_id)
        answer = rest.get_session(session_id).result(WAIT_S)
        assert answer.sampler_ids == [sampler_id]
        assert answer.user_metadata == {"who": "test"}

    def test_list_sessions_includes_a_new_session(
        self, rest: RestClient, server: LocalServer
    ) -> None:
        """The newest session is listed first."""
        session_id = new_session(server)
        assert rest.list_sessions(limit=5).result(WAIT_S).sessions[0] == session_id

    def test_get_sampler_names_its_base_model(self, rest: RestClient, server: LocalServer) -> None:
        """A sampler answers what it samples from."""
        sampler_id = new_sampler(server, new_session(server))
        answer = rest.get_sampler(sampler_id).result(WAIT_S)
        assert (answer.sampler_id, answer.base_model) == (sampler_id, "tiny-byte-lm")

    def test_unknown_session_and_sampler_are_not_found(self, rest: RestClient) -> None:
        """Both fail with NotFoundError."""
        with pytest.raises(NotFoundError):
            rest.get_session("no-such-session").result(WAIT_S)
        with pytest.raises(NotFoundError):
            rest.get_sampler("no-such-sampler").result(WAIT_S)

    def test_whoami_and_capabilities_answer(self, rest: RestClient) -> None:
        """The local user, and the served base model."""
        assert rest.whoami().result(WAIT_S).user_urn.startswith("urn:")
        models = rest.get_server_capabilities().result(WAIT_S).supported_models
        assert "tiny-byte-lm" in {m.model_name for m in models}


class TestValidation:
    @pytest.mark.parametrize(
        "path",
        [
            "run/weights/x",
            "tinker://run/other/x",
            "tinker://run/weights",
            "tinker:///weights/x",
            "tinker://run/weights/",
        ],
    )
    def test_bad_tinker_paths_fail_before_any_request(
        self, rest: RestClient, server: LocalServer, path: str
    ) -> None:
        """Every *_from_tinker_path method raises ValueError naming the path; nothing is sent."""
        before = sum(server.app.path_counts.values())
        calls: list[Callable[[], object]] = [
            lambda: rest.get_training_run_by_tinker_path(path),
            lambda: rest.get_weights_info_by_tinker_path(path),
            lambda: rest.delete_checkpoint_from_tinker_path(path),
            lambda: rest.delete_checkpoints_from_tinker_paths(["tinker://r/weights/a", path]),
            lambda: rest.publish_checkpoint_from_tinker_path(path),
            lambda: rest.unpublish_checkpoint_from_tinker_path(path),
            lambda: rest.set_checkpoint_ttl_from_tinker_path(path, 3600),
            lambda: rest.get_external_weights_urls(path),
            lambda: rest.get_checkpoint_archive_url_from_tinker_path(path),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="tinker"):
                call()
        assert sum(server.app.path_counts.values()) == before

    def test_external_urls_refuse_a_training_checkpoint(self, rest: RestClient) -> None:
        """Only external_weights paths are accepted, and the error says so."""
        with pytest.raises(ValueError, match="external_weights"):
            rest.get_external_weights_urls("tinker://run/weights/x")

    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (lambda r: r.get_training_run(""), "training_run_id"),
            (lambda r: r.get_training_run("a/b"), "training_run_id"),
            (lambda r: r.list_training_runs(limit=0), "limit"),
            (lambda r: r.list_user_checkpoints(offset=-1), "offset"),
            (lambda r: r.get_training_run("a", access_scope="mine"), "access_scope"),
            (lambda r: r.set_checkpoint_ttl_from_tinker_path("tinker://r/weights/a", 0), "ttl"),
            (lambda r: r.get_session(""), "session_id"),
            (lambda r: r.get_sampler(" x"), "sampler_id"),
        ],
    )
    def test_bad_arguments_name_the_field(
        self, rest: RestClient, call: Callable[[RestClient], object], field: str
    ) -> None:
        """Each bad argument raises ValueError naming it, before any request."""
        with pytest.raises(ValueError, match=field):
            call(rest)

    def test_a_server_side_rejection_is_a_bad_request(self, rest: RestClient, seed: Seeder) -> None:
        """The server's 400 comes back typed, with its message."""
        seed.server.faults.inject_status("/api/v1/whoami", 400, body={"detail": "nope"})
        with pytest.raises(BadRequestError, match="nope"):
            rest.whoami().result(WAIT_S)


class TestFuturesAndRetries:
    def test_calls_return_before_the_server_answers(self, rest: RestClient, seed: Seeder) -> None:
        """The caller gets a Future at once; the answer arrives later."""
        seed.server.faults.delay("/api/v1/whoami", 1.0)
        future = rest.whoami()
        assert isinstance(future, Future)
        assert not future.done()
        assert future.result(WAIT_S).user_urn

    def test_a_5xx_storm_is_retried_by_the_transport(
        self, rest: RestClient, seed: Seeder, server: LocalServer
    ) -> None:
        """Three 503s then success: the call succeeds after four requests."""
        before = count(server, "/api/v1/get_server_capabilities")
        server.faults.inject_status("/api/v1/get_server_capabilities", 503, times=3)
        assert rest.get_server_capabilities().result(WAIT_S).supported_models
        assert count(server, "/api/v1/get_server_capabilities") == before + 4

    def test_a_5xx_beyond_the_retries_fails_typed(
        self, make_client: Callable[..., RestClient], seed: Seeder
    ) -> None:
        """Once retries are spent the InternalServerError reaches the caller."""
        rest = make_client(max_retries=1)
        seed.server.faults.inject_status("/api/v1/whoami", 500, times=2)
        with pytest.raises(InternalServerError):
            rest.whoami().result(WAIT_S)

    def test_callbacks_see_the_settled_future(self, rest: RestClient) -> None:
        """add_done_callback fires once the answer is decoded."""
        done = threading.Event()
        future = rest.whoami()
        future.add_done_callback(lambda _f: done.set())
        assert done.wait(WAIT_S)
        assert future.result(0).org_urn


class TestAsyncTwins:
    def test_async_methods_and_iterators_work_under_asyncio(
        self, rest: RestClient, seed: Seeder
    ) -> None:
        """The _async twins return awaitables; the async iterators page lazily."""
        run_id, paths = seed.run(checkpoints=3)

        async def main() -> tuple[str, int, int, str]:
            run = await rest.get_training_run_async(run_id)
            listed = await rest.list_checkpoints_async(run_id)
            runs = [r async for r in rest.iter_training_runs_async(page_size=2)]
            ckpts = [c async for c in rest.iter_user_checkpoints_async(page_size=100)]
            assert set(paths) <= {c.tinker_path for c in ckpts}
            await rest.delete_checkpoint_from_tinker_path_async(paths[0])
            who = await rest.whoami_async()
            return run.training_run_id, len(listed.checkpoints), len(runs), who.user_urn

        run, listed, runs, who = asyncio.run(asyncio.wait_for(main(), WAIT_S))
        assert (run, listed) == (run_id, 3)
        assert runs >= 1
        assert who.startswith("urn:")


class TestLifetime:
    def test_a_client_built_from_credentials_owns_and_closes_its_transport(
        self, server: LocalServer
    ) -> None:
        """RestClient(base_url=...) works alone and leaves no thread after close()."""
        before = {t for t in threading.enumerate() if t.name.startswith("tinkex")}
        with RestClient(base_url=server.url, api_key=server.api_key) as rest:
            assert rest.whoami().result(WAIT_S).user_urn
        after = {t for t in threading.enumerate() if t.name.startswith("tinkex") and t.is_alive()}
        assert after <= before

    def test_a_shared_transport_stays_open_after_close(self, server: LocalServer) -> None:
        """RestClient(transport) does not close what it does not own."""
        with Transport(Config(base_url=server.url, api_key=server.api_key)) as transport:
            RestClient(transport).close()
            assert transport.is_running

    def test_a_transport_and_credentials_together_are_refused(self, server: LocalServer) -> None:
        """Either a transport or credentials: the error says why."""
        with (
            Transport(Config(base_url=server.url)) as transport,
            pytest.raises(ValueError, match="not both"),
        ):
            RestClient(transport, api_key="tml-x")

    def test_a_closed_client_refuses_new_calls(self, rest: RestClient) -> None:
        """After close(), calls raise instead of hanging."""
        rest.close()
        with pytest.raises(RuntimeError, match="closed"):
            rest.whoami()
