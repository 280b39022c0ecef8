"""Checkpoint archives: the redirect URL, the "still being generated" retries, safe downloads."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.rest.conftest import WAIT_S, RecordingSleep, Seeder, count
from tinkex_actors.errors import (
    APIConnectionError,
    APIStatusError,
    InternalServerError,
    NotFoundError,
)
from tinkex_actors.local import LocalServer
from tinkex_actors.rest.archive import download_to_file
from tinkex_actors.rest.rest_client import RestClient


def archive_route(tinker_path: str) -> str:
    run_id, _, checkpoint_id = tinker_path.removeprefix("tinker://").partition("/")
    return f"/api/v1/training_runs/{run_id}/checkpoints/{checkpoint_id}/archive"


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


class TestArchiveUrl:
    def test_the_redirect_is_answered_not_followed(
        self, rest: RestClient, seed: Seeder, server: LocalServer
    ) -> None:
        """The URL comes from the 302; the archive itself is not downloaded."""
        _run_id, paths = seed.run()
        answer = rest.get_checkpoint_archive_url_from_tinker_path(paths[0]).result(WAIT_S)
        assert answer.url.startswith(server.url + "/_files/")
        assert answer.url.split("?")[0].endswith("/archive.tar.gz")
        downloads = sum(n for p, n in server.app.path_counts.items() if p.startswith("/_files/"))
        assert downloads == 0

    def test_still_being_generated_is_retried_with_backoff(
        self,
        make_client: Callable[..., RestClient],
        seed: Seeder,
        server: LocalServer,
        archive_sleep: RecordingSleep,
    ) -> None:
        """503s past the transport's own retries are asked again after 1, 2, 4 s..."""
        rest = make_client(max_retries=0)
        run_id, paths = seed.run()
        route = archive_route(paths[0])
        server.faults.inject_status(route, 503, times=4)
        answer = rest.get_checkpoint_archive_url(run_id, "weights/step-0000").result(WAIT_S)
        assert answer.url.split("?")[0].endswith("/archive.tar.gz")
        assert archive_sleep.delays == [1.0, 2.0, 4.0, 8.0]
        assert count(server, route) == 5

    def test_generation_that_outlasts_the_timeout_fails(
        self,
        make_client: Callable[..., RestClient],
        seed: Seeder,
        server: LocalServer,
    ) -> None:
        """With archive_timeout_s spent, the 503 reaches the caller."""
        rest = make_client(max_retries=0, archive_timeout_s=0.5)
        _run_id, paths = seed.run()
        server.faults.inject_status(archive_route(paths[0]), 503, times=1)
        with pytest.raises(InternalServerError):
            rest.get_checkpoint_archive_url_from_tinker_path(paths[0]).result(WAIT_S)

    def test_a_missing_checkpoint_is_not_found(self, rest: RestClient, seed: Seeder) -> None:
        """A 404 is not retried as "being generated"."""
        run_id, _ = seed.run(checkpoints=0)
        with pytest.raises(NotFoundError):
            rest.get_checkpoint_archive_url(run_id, "weights/nothing").result(WAIT_S)


class TestDownload:
    def test_download_extracts_the_checkpoint_files_with_progress(
        self, rest: RestClient, seed: Seeder, tmp_path: Path
    ) -> None:
        """The archive lands extracted in its own directory; progress reaches the total."""
        run_id, paths = seed.run()
        seen: list[tuple[int, int | None]] = []
        target = rest.download_checkpoint_archive(
            paths[0], tmp_path, lambda done, total: seen.append((done, total))
        ).result(WAIT_S)
        assert target == tmp_path / f"{run_id}_weights_step-0000"
        assert sorted(p.name for p in target.iterdir()) == ["arrays.npz", "meta.json"]
        with np.load(target / "arrays.npz") as npz:
            assert npz["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert seen
        assert seen[-1][0] == seen[-1][1]
        assert [p.name for p in tmp_path.iterdir()] == [target.name]

    def test_an_existing_directory_is_kept_unless_overwrite(
        self, rest: RestClient, seed: Seeder, tmp_path: Path
    ) -> None:
        """FileExistsError names the directory and the fix; overwrite=True replaces it."""
        run_id, paths = seed.run()
        (tmp_path / f"{run_id}_weights_step-0000").mkdir()
        with pytest.raises(FileExistsError, match="overwrite=True"):
            rest.download_checkpoint_archive(paths[0], tmp_path)
        target = rest.download_checkpoint_archive(paths[0], tmp_path, overwrite=True).result(WAIT_S)
        assert (target / "meta.json").is_file()

    @pytest.mark.parametrize(
        "bad",
        [
            member("../escaped.txt"),
            member("/etc/absolute.txt"),
            member("nested/../../escaped.txt"),
            member("link", tarfile.SYMTYPE, "/etc/passwd"),
            member("hard", tarfile.LNKTYPE, "../outside"),
            member("device", tarfile.CHRTYPE),
        ],
        ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "device"],
    )
    def test_a_hostile_archive_is_refused_and_writes_nothing(
        self,
        rest: RestClient,
        seed: Seeder,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        bad: tarfile.TarInfo,
    ) -> None:
        """Path traversal, links and devices fail the download; nothing is left behind."""
        _run_id, paths = seed.run()
        hostile = tar_bytes((member("ok.txt"), b"fine"), (bad, b"evil"))
        monkeypatch.setattr(seed.storage, "archive", lambda _run, _cid: hostile)
        dest = tmp_path / "dest"
        with pytest.raises(ValueError, match="archive member"):
            rest.download_checkpoint_archive(paths[0], dest).result(WAIT_S)
        assert list(dest.iterdir()) == []
        assert not (tmp_path / "escaped.txt").exists()

    def test_a_cancelled_download_stops(
        self, rest: RestClient, seed: Seeder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Cancelling the future stops the worker at the next chunk and leaves no files."""
        _run_id, paths = seed.run()
        release = threading.Event()
        started = threading.Event()

        def progress(_done: int, _total: int | None) -> None:
            started.set()
            release.wait(WAIT_S)

        big = tar_bytes(*((member(f"f{i}.bin"), np.random.bytes(1 << 20)) for i in range(3)))
        monkeypatch.setattr(seed.storage, "archive", lambda _run, _cid: big)
        future = rest.download_checkpoint_archive(paths[0], tmp_path / "d", progress)
        assert started.wait(WAIT_S)
        assert future.cancel()
        release.set()
        rest.close()
        assert list((tmp_path / "d").iterdir()) == []

    def test_the_async_twin_downloads_too(
        self, rest: RestClient, seed: Seeder, tmp_path: Path
    ) -> None:
        """download_checkpoint_archive_async is awaitable."""
        import asyncio

        _run_id, paths = seed.run()
        target = asyncio.run(
            asyncio.wait_for(rest.download_checkpoint_archive_async(paths[0], tmp_path), WAIT_S)
        )
        assert (target / "arrays.npz").is_file()


class TestArchiveDownload:
    def test_a_refused_signed_url_fails_typed_without_showing_its_signature(
        self, rest: RestClient, seed: Seeder, tmp_path: Path
    ) -> None:
        """A tampered signature is refused with a typed status error naming the URL without
        its query, so the signature never reaches a log or a traceback."""
        _run_id, paths = seed.run()
        url = rest.get_checkpoint_archive_url_from_tinker_path(paths[0]).result(WAIT_S).url
        assert "/_files/" in url and "signature=" in url
        tampered = url.replace("signature=", "signature=0")
        with pytest.raises(APIStatusError) as caught:
            download_to_file(tampered, tmp_path / "a.tar.gz", None, threading.Event(), WAIT_S)
        shown = f"{caught.value} {caught.value.url}"
        assert "signature" not in shown and "/_files/" in shown

    def test_an_unreachable_url_fails_as_a_connection_error(self, tmp_path: Path) -> None:
        """No answer at all is an APIConnectionError, as for every other call."""
        with pytest.raises(APIConnectionError):
            download_to_file(
                "http://127.0.0.1:9/_files/x?signature=s", tmp_path / "a", None,
                threading.Event(), WAIT_S,
            )
