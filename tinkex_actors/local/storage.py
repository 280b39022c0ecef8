"""Checkpoints and training runs on disk, under the server's data directory.

Layout (one folder per training run, one per checkpoint, so a restart finds everything):

    <data_dir>/runs/<run_id quoted>/run.json
    <data_dir>/runs/<run_id quoted>/weights/<name>/{arrays.npz, meta.json}
    <data_dir>/runs/<run_id quoted>/sampler_weights/<name>/{arrays.npz, meta.json}

A checkpoint's tinker path is `tinker://<run_id>/<weights|sampler_weights>/<name>`, and its
checkpoint_id is `<weights|sampler_weights>/<name>`, as in the official SDK. Writes go to a
temporary folder renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import numpy as np

from tinkex_actors.local.names import check_component, inside

CheckpointKind = Literal["training", "sampler", "external"]
_SEGMENT: dict[CheckpointKind, str] = {
    "training": "weights",
    "sampler": "sampler_weights",
    "external": "external_weights",
}
_KIND_OF_SEGMENT: dict[str, CheckpointKind] = {
    "weights": "training",
    "sampler_weights": "sampler",
    "external_weights": "external",
}


class StorageError(Exception):
    """A checkpoint operation failed; `status` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ParsedPath:
    """A tinker path split into its parts."""

    run_id: str
    kind: CheckpointKind
    name: str

    @property
    def checkpoint_id(self) -> str:
        """`weights/<name>` or `sampler_weights/<name>`."""
        return f"{_SEGMENT[self.kind]}/{self.name}"

    @property
    def tinker_path(self) -> str:
        """The `tinker://` form of the path."""
        return f"tinker://{self.run_id}/{self.checkpoint_id}"


def parse_tinker_path(path: str) -> ParsedPath:
    """Split `tinker://<run_id>/<weights|sampler_weights>/<name>`; ValueError naming the fix."""
    if not isinstance(path, str) or not path.startswith("tinker://"):
        raise ValueError(
            f"path must be a tinker path like 'tinker://<run_id>/weights/<name>', got {path!r}"
        )
    parts = path[len("tinker://") :].split("/")
    if len(parts) != 3 or not parts[0] or parts[1] not in _KIND_OF_SEGMENT or not parts[2]:
        raise ValueError(
            f"path must look like 'tinker://<run_id>/weights/<name>' or "
            f"'tinker://<run_id>/sampler_weights/<name>', got {path!r}"
        )
    run_id = check_component(f"the run id of {path!r}", parts[0])
    return ParsedPath(run_id, _KIND_OF_SEGMENT[parts[1]], check_name(parts[2]))


def check_name(name: str) -> str:
    """Validate a checkpoint name (see `names.COMPONENT_RULE`)."""
    return check_component("checkpoint name", name)


def iso(ts: float) -> str:
    """A UNIX time as the ISO-8601 UTC string the service uses."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


class CheckpointStore:
    """Training runs and their checkpoints under one data directory; thread-safe."""

    def __init__(self, root: Path, *, owner: str = "local-user") -> None:
        self.root = Path(root)
        self.owner = owner
        self._lock = threading.RLock()
        (self.root / "runs").mkdir(parents=True, exist_ok=True)

    # -- training runs ----------------------------------------------------------------------------

    def _run_dir(self, run_id: str) -> Path:
        check_component("training_run_id", run_id)
        return inside(self.root / "runs", self.root / "runs" / quote(run_id, safe=""))

    def put_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Create or update a training run's metadata."""
        with self._lock:
            d = self._run_dir(run_id)
            d.mkdir(parents=True, exist_ok=True)
            current = self.get_run(run_id) or {}
            current.update(meta)
            current["training_run_id"] = run_id
            _write_json(inside(d, d / "run.json"), current)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A training run's metadata, or None."""
        d = self._run_dir(run_id)
        f = inside(d, d / "run.json")
        if not f.exists():
            return None
        data: dict[str, Any] = json.loads(f.read_text())
        return data

    def list_runs(self) -> list[dict[str, Any]]:
        """Every training run, newest first."""
        runs = []
        for d in (self.root / "runs").iterdir():
            try:
                meta = self.get_run(unquote(d.name))
            except ValueError:  # not a run this server wrote (a stray file, a bad name)
                continue
            if meta is not None:
                runs.append(meta)
        runs.sort(key=lambda r: r.get("created_s", 0.0), reverse=True)
        return runs

    # -- checkpoints ------------------------------------------------------------------------------

    def _ckpt_dir(self, p: ParsedPath) -> Path:
        check_name(p.name)
        run = self._run_dir(p.run_id)
        return inside(run, run / _SEGMENT[p.kind] / p.name)

    def save(
        self,
        run_id: str,
        kind: CheckpointKind,
        name: str,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
        *,
        ttl_seconds: int | None = None,
    ) -> ParsedPath:
        """Write a checkpoint atomically; an existing one of the same name is replaced."""
        p = ParsedPath(run_id, kind, check_name(name))
        now = time.time()
        with self._lock:
            final = self._ckpt_dir(p)
            tmp = final.parent / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir(parents=True)
            try:
                np.savez(str(tmp / "arrays.npz"), **arrays)  # type: ignore[arg-type]
                size = (tmp / "arrays.npz").stat().st_size
                record = {
                    "checkpoint_id": p.checkpoint_id,
                    "checkpoint_type": kind,
                    "time": iso(now),
                    "created_s": now,
                    "tinker_path": p.tinker_path,
                    "size_bytes": size,
                    "public": False,
                    "expires_at": iso(now + ttl_seconds) if ttl_seconds else None,
                    "expires_s": now + ttl_seconds if ttl_seconds else None,
                    **meta,
                }
                _write_json(tmp / "meta.json", record)
                if final.exists():
                    shutil.rmtree(final)
                tmp.rename(final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if kind != "external":
                run_key = "last_checkpoint" if kind == "training" else "last_sampler_checkpoint"
                self.put_run(run_id, {run_key: p.checkpoint_id})
        return p

    def meta(self, path: str) -> dict[str, Any]:
        """A checkpoint's metadata; StorageError 404 when missing or expired."""
        p = parse_tinker_path(path)
        d = self._ckpt_dir(p)
        f = inside(d, d / "meta.json")
        if not f.exists():
            raise StorageError(f"checkpoint not found: {path}", 404)
        record: dict[str, Any] = json.loads(f.read_text())
        expires = record.get("expires_s")
        if expires is not None and time.time() > expires:
            self.delete(p.run_id, p.checkpoint_id)
            raise StorageError(f"checkpoint expired: {path}", 404)
        return record

    def load(self, path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A checkpoint's arrays and metadata."""
        record = self.meta(path)
        p = parse_tinker_path(path)
        d = self._ckpt_dir(p)
        with np.load(inside(d, d / "arrays.npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return arrays, record

    def list_checkpoints(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Checkpoints of one run, or of every run; newest first; expired ones dropped."""
        run_ids = (
            [run_id] if run_id is not None else [r["training_run_id"] for r in self.list_runs()]
        )
        out: list[dict[str, Any]] = []
        for rid in run_ids:
            for seg in _SEGMENT.values():
                d = self._run_dir(rid) / seg
                if not d.is_dir():
                    continue
                for c in d.iterdir():
                    if c.name.startswith(".tmp-"):
                        continue
                    try:
                        out.append(self.meta(f"tinker://{rid}/{seg}/{c.name}"))
                    except (StorageError, ValueError):  # expired, or not ours (a bad name)
                        continue
        out.sort(key=lambda r: r.get("created_s", 0.0), reverse=True)
        return out

    def _resolve(self, run_id: str, checkpoint_id: str) -> ParsedPath:
        try:
            return parse_tinker_path(f"tinker://{run_id}/{checkpoint_id}")
        except ValueError as exc:
            raise StorageError(str(exc), 400) from exc

    def delete(self, run_id: str, checkpoint_id: str) -> None:
        """Delete a checkpoint; StorageError 404 when missing."""
        p = self._resolve(run_id, checkpoint_id)
        with self._lock:
            d = self._ckpt_dir(p)
            if not d.exists():
                raise StorageError(f"checkpoint not found: {p.tinker_path}", 404)
            if d.is_symlink() or not d.is_dir():
                raise StorageError(f"{p.tinker_path} is not a checkpoint folder; refusing it", 400)
            shutil.rmtree(d)

    def update(self, run_id: str, checkpoint_id: str, **changes: Any) -> dict[str, Any]:
        """Change a checkpoint's metadata (public, TTL...); returns the new record."""
        p = self._resolve(run_id, checkpoint_id)
        with self._lock:
            record = self.meta(p.tinker_path)
            record.update(changes)
            d = self._ckpt_dir(p)
            _write_json(inside(d, d / "meta.json"), record)
            return record

    def set_ttl(self, run_id: str, checkpoint_id: str, ttl_seconds: int | None) -> dict[str, Any]:
        """Set (or clear, with None) a checkpoint's time to live, counted from now."""
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise StorageError(f"ttl_seconds must be > 0 or null, got {ttl_seconds}", 400)
        now = time.time()
        return self.update(
            run_id,
            checkpoint_id,
            expires_s=now + ttl_seconds if ttl_seconds else None,
            expires_at=iso(now + ttl_seconds) if ttl_seconds else None,
        )

    def file(self, run_id: str, checkpoint_id: str, name: str) -> bytes:
        """One file of a checkpoint (`arrays.npz` or `meta.json`)."""
        p = self._resolve(run_id, checkpoint_id)
        self.meta(p.tinker_path)
        if name not in ("arrays.npz", "meta.json"):
            raise StorageError(f"no file {name!r} in {p.tinker_path}", 404)
        d = self._ckpt_dir(p)
        return inside(d, d / name).read_bytes()

    def archive(self, run_id: str, checkpoint_id: str) -> bytes:
        """The checkpoint's files as a tar.gz archive."""
        p = self._resolve(run_id, checkpoint_id)
        self.meta(p.tinker_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            d = self._ckpt_dir(p)
            for f in sorted(d.iterdir()):
                tar.add(inside(d, f), arcname=f.name, recursive=False)
        return buf.getvalue()

    def reap_expired(self) -> int:
        """Delete every expired checkpoint; returns how many."""
        before = sum(1 for _ in self._all_dirs())
        self.list_checkpoints()
        after = sum(1 for _ in self._all_dirs())
        return before - after

    def _all_dirs(self) -> list[Path]:
        return [c for c in (self.root / "runs").glob("*/*/*") if c.is_dir()]


def checkpoint_view(record: dict[str, Any]) -> dict[str, Any]:
    """A stored checkpoint record as the service's Checkpoint JSON."""
    return {
        "checkpoint_id": record["checkpoint_id"],
        "checkpoint_type": record["checkpoint_type"],
        "time": record["time"],
        "tinker_path": record["tinker_path"],
        "size_bytes": record.get("size_bytes"),
        "public": bool(record.get("public", False)),
        "user_metadata": record.get("user_metadata"),
        "expires_at": record.get("expires_at"),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)
