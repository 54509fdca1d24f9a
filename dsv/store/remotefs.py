"""A remote location over fsspec, with the guarantees dsv needs spelled out per backend.

fsspec gives no atomic writes and no compare-and-swap, so dsv never relies on it
for either (docs/remotes.md). :class:`RemoteFS` adds the three writes dsv needs:

* :meth:`RemoteFS.put_immutable`: an object appears under its final name only
  when complete, and an existing one is never replaced (S3: one ``PUT`` with
  ``If-None-Match: *``; a folder: a temp file, fsynced, then ``link`` to the
  final name; memory: one assignment under a lock);
* :meth:`RemoteFS.put_if`: compare-and-swap of a small object against the
  version token read with :meth:`RemoteFS.get_versioned` (S3: ``If-Match`` on
  the ETag, ``If-None-Match: *`` to create; a folder: an ``O_EXCL`` lock file,
  compare, temp file and ``rename``; memory: a process lock); any other backend
  gets a *lease lock* (write a lock object with a token and an expiry, wait,
  read it back, and proceed only if the token is still ours) — documented as
  weaker;
* :meth:`RemoteFS.put`: a plain write, for objects only one writer ever touches.

Every backend error is translated at this boundary into the
:class:`~dsv.base.errors.RemoteError` tree, with credentials masked. Each call
counts one request in :attr:`RemoteFS.requests` (tests and benchmarks read it).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dsv.base.errors import (
    RemoteAuthError,
    RemoteBusyError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
)
from dsv.base.hashing import hash_bytes
from dsv.base.secrets import mask_url, option_value, redact, register, register_options

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_TTL = 60.0
"""Seconds a lease lock (backends without conditional writes) stays valid."""
LEASE_SETTLE = 1.0
"""Seconds a lease writer waits before reading its lease back."""
LOCK_WAIT = 30.0
"""Seconds a compare-and-swap waits for a folder lock or a lease held by another writer."""

_MEMORY_LOCK = threading.Lock()
"""fsspec's memory filesystem is one dict per process: one lock makes its compare-and-swap atomic."""


@dataclass(frozen=True)
class Entry:
    """One listed object: its name relative to the listed prefix, size and modification time (server clock)."""

    name: str
    size: int
    mtime: float


class RemoteFS:
    """One remote location (an fsspec URL and its options) with create-only and compare-and-swap writes.

    ``cas`` forces the compare-and-swap method (``"lease"`` exercises the
    fallback for backends without conditional writes); by default it follows
    the backend.
    """

    def __init__(self, url: str, options: Mapping[str, Any] | None = None, *, cas: str | None = None) -> None:
        import fsspec

        self.url = url
        self.display = mask_url(url)
        register_options(options or {})
        try:
            opts = {k: option_value(k, v) for k, v in (options or {}).items()}
        except ValueError as err:
            raise RemoteError(self.display, f"cannot open: an option is not valid JSON ({redact(str(err))})", hint="e.g. --option 'client_kwargs={\"region_name\": \"eu-west-1\"}'") from None
        if "@" in url.split("://", 1)[-1].split("/", 1)[0]:
            register(url.split("://", 1)[-1].split("@", 1)[0])
        for name in ("client_kwargs", "config_kwargs"):
            if name in opts and not isinstance(opts[name], dict):
                raise RemoteError(self.display, f"cannot open: option {name} must be a JSON object", hint=f"e.g. --option '{name}={{\"region_name\": \"eu-west-1\"}}'")
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol in ("s3", "s3a"):
            opts.setdefault("use_listings_cache", False)
            cfg = dict(opts.pop("config_kwargs", {}) or {})
            cfg.setdefault("connect_timeout", 5)
            cfg.setdefault("read_timeout", 60)
            cfg.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
            opts["config_kwargs"] = cfg
            endpoint = opts.pop("endpoint_url", None)
            if endpoint:
                ck = dict(opts.get("client_kwargs", {}) or {})
                ck.setdefault("endpoint_url", endpoint)
                opts["client_kwargs"] = ck
            region = opts.pop("region", None) or opts.pop("region_name", None)
            if region:
                ck = dict(opts.get("client_kwargs", {}) or {})
                ck.setdefault("region_name", region)
                opts["client_kwargs"] = ck
        try:
            fs, root = fsspec.core.url_to_fs(url, **opts)
        except Exception as err:  # noqa: BLE001 - any backend's constructor error is one line (s3fs raises KeyError for secret+password)
            raise RemoteError(self.display, f"cannot open: {redact(str(err).strip(chr(39)) or type(err).__name__)}", hint="check the URL scheme and the --option names") from None
        self.fs = fs
        self.root = root.rstrip("/")
        name = type(fs).__name__
        if name == "LocalFileSystem":
            self.kind = "local"
        elif name == "MemoryFileSystem":
            self.kind = "memory"
        elif name == "S3FileSystem":
            self.kind = "s3"
        else:
            self.kind = "other"
        self.cas = cas or ("lease" if self.kind == "other" else self.kind)
        self.requests = 0
        self._count_lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The backend path of ``rel`` (a ``/``-separated key under the remote's root)."""
        return f"{self.root}/{rel}" if rel else self.root

    def _count(self, n: int = 1) -> None:
        with self._count_lock:
            self.requests += n

    def _call(self, what: str, rel: str, fn: Callable[[], T]) -> T:
        """Run one backend request, translating its errors."""
        self._count()
        try:
            return fn()
        except RemoteError:
            raise
        except BaseException as err:  # noqa: BLE001 - translated at this boundary
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise translate(err, self.display, what, rel) from None

    # -- reads ---------------------------------------------------------------------

    def get(self, rel: str) -> bytes | None:
        """The whole object ``rel``, or ``None`` if it does not exist."""

        def run() -> bytes | None:
            try:
                return bytes(self.fs.cat_file(self.path(rel)))
            except FileNotFoundError as err:
                if self.kind == "s3" and _error_code(err) == "NoSuchBucket":
                    raise
                return None

        return self._call("read", rel, run)

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``rel`` (one ranged request)."""
        return self._call("read", rel, lambda: bytes(self.fs.cat_file(self.path(rel), start=start, end=end)))

    def get_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        """``(content, version token)`` of a small object, ``(None, None)`` if absent; one request."""
        if self.kind == "s3":
            return self._call("read", rel, lambda: self._s3_get_versioned(rel))
        data = self.get(rel)
        return data, (None if data is None else hash_bytes(data))

    def _s3_get_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(self.path(rel))

        async def run() -> tuple[bytes | None, str | None]:
            try:
                resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            except FileNotFoundError as err:
                if _error_code(err) == "NoSuchBucket":
                    raise
                return None, None
            body = await resp["Body"].read()
            return bytes(body), resp.get("ETag")

        return sync(self.fs.loop, run)

    def list(self, prefix: str) -> list[Entry]:
        """Objects directly under the folder ``prefix`` (one request per 1,000 on S3)."""

        def run() -> list[Entry]:
            try:
                if self.kind == "s3":
                    self.fs.invalidate_cache(self.path(prefix))
                items = self.fs.ls(self.path(prefix), detail=True)
            except FileNotFoundError as err:
                if self.kind == "s3" and _error_code(err) == "NoSuchBucket":
                    raise
                return []
            out = []
            base = self.path(prefix).rstrip("/") + "/"
            for it in items:
                if it.get("type") == "directory":
                    continue
                name = it["name"]
                name = name[len(base) :] if name.startswith(base) else name.rsplit("/", 1)[-1]
                out.append(Entry(name, int(it.get("size") or 0), _mtime(it)))
            return out

        return self._call("list", prefix, run)

    def exists_root(self) -> bool:
        """Whether the remote's folder or bucket exists (bucket missing -> :class:`RemoteNotFoundError` on S3)."""
        if self.kind == "s3":
            bucket = self.root.split("/", 1)[0]
            return self._call("open", "", lambda: bool(self.fs.call_s3("head_bucket", Bucket=bucket)) or True)
        return self._call("open", "", lambda: self.fs.exists(self.root))

    # -- writes --------------------------------------------------------------------

    def put(self, rel: str, data: bytes) -> None:
        """Write ``rel`` (replacing it). Only for objects one writer owns (its own lease)."""
        if self.kind == "local":
            self._call("write", rel, lambda: self._local_put(rel, data, exclusive=False))
            return
        self._call("write", rel, lambda: self.fs.pipe_file(self.path(rel), data))

    def put_immutable(self, rel: str, data: bytes) -> bool:
        """Create ``rel`` with ``data`` if absent, atomically; return ``False`` if it already existed.

        Callers name immutable objects by their content, so an existing object
        holds the same bytes.
        """
        if self.kind == "local":
            return self._call("write", rel, lambda: self._local_put(rel, data, exclusive=True))
        if self.kind == "s3":

            def run() -> bool:
                bucket, key, _ = self.fs.split_path(self.path(rel))
                try:
                    self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                except FileExistsError:
                    return False
                except OSError as err:
                    if _error_code(err) in ("PreconditionFailed", "ConditionalRequestConflict"):
                        return False
                    raise
                return True

            return self._call("write", rel, run)
        if self.kind == "memory":

            def mem() -> bool:
                with _MEMORY_LOCK:
                    if self.fs.exists(self.path(rel)):
                        return False
                    self.fs.pipe_file(self.path(rel), data)
                    return True

            return self._call("write", rel, mem)

        def other() -> bool:
            if self.fs.exists(self.path(rel)):
                return False
            self.fs.pipe_file(self.path(rel), data)
            return True

        return self._call("write", rel, other)

    def put_if(self, rel: str, data: bytes, token: str | None) -> bool:
        """Compare-and-swap: write ``rel`` only if its version is still ``token`` (``None``: absent).

        Returns ``False`` when another writer changed it first.
        """
        if self.cas == "s3":
            return self._call("write", rel, lambda: self._s3_put_if(rel, data, token))
        if self.cas == "local":
            return self._local_put_if(rel, data, token)
        if self.cas == "memory":

            def mem() -> bool:
                with _MEMORY_LOCK:
                    try:
                        current: bytes | None = bytes(self.fs.cat_file(self.path(rel)))
                    except FileNotFoundError:
                        current = None
                    if (None if current is None else hash_bytes(current)) != token:
                        return False
                    self.fs.pipe_file(self.path(rel), data)
                    return True

            return self._call("write", rel, mem)
        return self._lease_put_if(rel, data, token)

    def _s3_put_if(self, rel: str, data: bytes, token: str | None) -> bool:
        bucket, key, _ = self.fs.split_path(self.path(rel))
        cond = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **cond)
        except FileExistsError:
            return False
        except FileNotFoundError as err:
            if _error_code(err) == "NoSuchKey":
                return False  # deleted since we read it
            raise
        except OSError as err:
            if _error_code(err) in ("PreconditionFailed", "ConditionalRequestConflict") or "pre-condition" in str(err):
                return False
            raise
        return True

    def delete(self, rel: str) -> None:
        """Delete ``rel`` (absent is fine)."""

        def run() -> None:
            try:
                self.fs.rm_file(self.path(rel))
            except FileNotFoundError:
                pass

        self._call("delete", rel, run)

    # -- local folder ----------------------------------------------------------------

    def _local_put(self, rel: str, data: bytes, *, exclusive: bool) -> bool:
        from dsv.base.fsio import fsync_dir, write_all

        target = self.path(rel)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        if exclusive and os.path.exists(target):
            return False
        tmp = os.path.join(folder, f".{os.path.basename(target)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444 if exclusive else 0o644)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if exclusive:
                try:
                    os.link(tmp, target)  # create-only, atomic: never replaces
                except FileExistsError:
                    return False
            else:
                os.replace(tmp, target)
            fsync_dir(folder)
            return True
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def _local_put_if(self, rel: str, data: bytes, token: str | None) -> bool:
        from dsv.base.errors import LockError
        from dsv.base.fsio import FileLock

        target = self.path(rel)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with FileLock(target + ".lock", timeout=LOCK_WAIT):
                self._count()
                try:
                    with open(target, "rb") as f:
                        current: bytes | None = f.read()
                except FileNotFoundError:
                    current = None
                if (None if current is None else hash_bytes(current)) != token:
                    return False
                self._local_put(rel, data, exclusive=False)
                self._count()
                return True
        except LockError as err:
            raise RemoteBusyError(self.display, f"{rel} is locked ({err.holder})") from None
        except OSError as err:
            raise translate(err, self.display, "write", rel) from None

    # -- lease lock (backends without conditional writes) --------------------------------

    def _lease_put_if(self, rel: str, data: bytes, token: str | None) -> bool:
        lock_rel = rel + ".lease"
        mine = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            held = self.get(lock_rel)
            if held is not None:
                try:
                    lease = json.loads(held)
                    expired = float(lease.get("expires", 0)) < time.time()
                except (ValueError, AttributeError, TypeError):
                    expired = True
                if not expired:
                    if time.monotonic() > deadline:
                        raise RemoteBusyError(self.display, f"{rel} is leased by another writer")
                    time.sleep(0.2)
                    continue
            self.put(lock_rel, json.dumps({"token": mine, "expires": time.time() + LEASE_TTL}).encode())
            time.sleep(LEASE_SETTLE)  # let a racing writer's lease land, then see whose survived
            check = self.get(lock_rel)
            try:
                ours = check is not None and json.loads(check).get("token") == mine
            except ValueError:
                ours = False
            if ours:
                break
            if time.monotonic() > deadline:
                raise RemoteBusyError(self.display, f"{rel} is leased by another writer")
        try:
            current = self.get(rel)
            if (None if current is None else hash_bytes(current)) != token:
                return False
            self.put(rel, data)
            return True
        finally:
            self.delete(lock_rel)


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time of a listed object, whatever the backend calls it."""
    for key in ("LastModified", "mtime", "created", "last_modified", "updated", "timeCreated"):
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, (int, float)):
            return float(v)
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        if isinstance(v, str):
            from datetime import datetime

            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _error_code(err: BaseException) -> str | None:
    """The S3 error code behind an s3fs/botocore exception, if any."""
    seen = 0
    e: BaseException | None = err
    while e is not None and seen < 6:
        resp = getattr(e, "response", None)
        if isinstance(resp, dict):
            code = resp.get("Error", {}).get("Code")
            if code:
                return str(code)
        e = e.__cause__ or e.__context__
        seen += 1
    return None


_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError", "ServerDisconnectedError", "ConnectionClosedError")
_AUTH_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken", "AuthorizationHeaderMalformed", "Forbidden", "403")


def translate(err: BaseException, remote: str, action: str, rel: str) -> RemoteError:
    """Map a backend exception to the :class:`RemoteError` tree (one line, credentials masked)."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and len(chain) < 6:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {type(x).__name__ for x in chain}
    code = _error_code(err)
    text = redact(str(err).splitlines()[0] if str(err) else type(err).__name__)
    where = f"{action} {rel}" if rel else action
    if names & set(_UNREACHABLE) or any(isinstance(x, (ConnectionError, TimeoutError)) for x in chain):
        return RemoteUnreachableError(remote, f"cannot {where}: endpoint unreachable ({text})")
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return RemoteAuthError(remote, f"cannot {where}: no credentials found")
    if code in _AUTH_CODES or isinstance(err, PermissionError):
        return RemoteAuthError(remote, f"cannot {where}: access denied ({code or text})")
    if code == "NoSuchBucket":
        return RemoteNotFoundError(remote, f"cannot {where}: the bucket does not exist")
    if isinstance(err, FileNotFoundError):
        return RemoteNotFoundError(remote, f"cannot {where}: not found")
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return RemoteError(remote, f"cannot {where}: no space left", hint="free some space on the remote; nothing was changed locally")
    return RemoteError(remote, f"cannot {where}: {code + ': ' if code else ''}{text}", hint="nothing was changed locally; rerun with --debug for details")
