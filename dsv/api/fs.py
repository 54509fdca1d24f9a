"""``dsv://``: every version of a repository as a read-only fsspec filesystem, local or remote.

pandas, pyarrow, polars, DuckDB and data loaders read a dataset version straight
from the object store, without a checkout::

    pd.read_csv("dsv://v1/labels.csv")                                   # repository in the current folder
    pd.read_parquet("dsv://v2/data/train.parquet", storage_options={"repo": "/data/penguins"})
    pd.read_parquet("dsv://v2@/data/penguins/data/train.parquet")        # repository found along the path
    pd.read_parquet("dsv://v2@s3://bucket/penguins/data/train.parquet")  # straight from a remote
    fs = fsspec.filesystem("dsv", repo="/data/penguins", rev="v2"); fs.ls("images")

URL grammar (docs/api.md): ``dsv://REV/PATH`` with the repository from the
``repo`` option (default: the current folder), or ``dsv://REV@LOCATION`` where
``LOCATION`` is an absolute path or a URL inside a repository or a remote: the
repository is the nearest folder at or above it holding ``.dsv`` (a remote:
``dsv-remote.json``), and the rest is the path in the snapshot. ``REV`` is any
revision (``v2``, ``main``, ``HEAD~1``, a commit id); a ``/`` in it is written
``%2F``.

Reads verify what they return: a whole small file against its id, and for a big
file every chunk a read touches (so a Parquet footer read reads the last chunk
or two of the file, not the whole file). From a remote, each object is fetched
the first time it is read, verified, and kept in a local store (see
:class:`DsvFileSystem`); later reads are local. Writes raise :class:`PermissionError`.

A process that opened ``dsv://`` files pauses at exit for
:data:`EXIT_PAUSE_S` so pyarrow's threads can release them: without that pause
a process that read Parquet sometimes aborted after its work was done (see
:func:`_let_pool_threads_release_files`).
"""

from __future__ import annotations

import atexit
import bisect
import io
import os
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile

from dsv.base.errors import DsvError, NotARepositoryError, RemoteAuthError, RemoteNotFoundError, RevisionError
from dsv.base.filemodes import MODE_LINK
from dsv.base.formats import REMOTE_MARKER
from dsv.store.chunking import CHUNKED_THRESHOLD, MAX_CHUNK
from dsv.store.local import LocalObjectStore
from dsv.store.pack import ChunkMap, encode_chunk_list

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.api.repo import Repo
    from dsv.manifest import Manifest
    from dsv.remote.repo import RemoteRepo
    from dsv.remote.view import RemoteView

SMALL_FILE_BYTES = 1024 * 1024
"""Files smaller than this open as an in-memory file holding their (verified) bytes."""

WHOLE_CACHE_BYTES = 64 * 1024 * 1024
"""Verified small files and chunks are kept in memory, per process, up to this many bytes."""


_LOCATION = re.compile(r"^(?P<rev>[^/]*?)@(?P<loc>/.*|[A-Za-z][A-Za-z0-9+.-]*://.*)$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Remote roots found by probing (one request per candidate folder), and remotes opened, per process:
# a second URL under a known root costs no probe, and every filesystem on one remote shares its
# loaded pack indexes.
_remote_roots: set[str] = set()
_remotes: dict[tuple[str, str, str], "RemoteRepo"] = {}
_shared_lock = threading.Lock()
# Local repositories opened, by root: filesystems on one repository share its store (and the pack
# indexes it has loaded; a store re-reads them when an id is missing, so new commits are seen).
_local_repos: dict[str, "Repo"] = {}


class _VerifiedBytes:
    """Small files and chunks already read and verified, by id, least recently used out first.

    Shared by every filesystem of the process: an id names its content, so a
    cached entry is right for any repository and revision, and a data loader's
    second epoch (or a new filesystem per read) costs no re-read and re-hash.

    An entry is a whole object, or the *piece* of a chunk a read asked for: a
    chunk touched for a small range (a Parquet column page in a ~80-250 KiB
    chunk) is read into a reused buffer, verified there, and only the range is
    kept, because keeping the whole chunk costs fresh memory (its pages faulted
    in and zeroed: ~3x the read) for chunks most reads touch once. The same range
    asked again is served from its piece; another range of the chunk reads the
    chunk again and keeps it whole (:meth:`DsvFileSystem._chunk_part`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # id -> (offset of the bytes kept in the object, the bytes, whether they are the whole object)
        self._items: OrderedDict[str, tuple[int, bytes, bool]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def entry(self, oid: str) -> tuple[int, bytes, bool] | None:
        """``(offset, bytes, whole)`` kept for ``oid``, or ``None``."""
        with self._lock:
            item = self._items.get(oid)
            if item is not None:
                self._items.move_to_end(oid)
            return item

    def get(self, oid: str) -> bytes | None:
        """The whole verified bytes of ``oid``, if kept."""
        with self._lock:
            item = self._items.get(oid)
            if item is None or not item[2]:
                return None
            self._items.move_to_end(oid)
            return item[1]

    def put(self, oid: str, data: bytes) -> None:
        """Keep the whole verified bytes of ``oid`` (replacing a piece of it)."""
        self._put(oid, (0, data, True))

    def put_piece(self, oid: str, at: int, data: bytes) -> None:
        """Keep verified bytes ``[at, at + len(data))`` of ``oid`` (unless something is kept for it)."""
        self._put(oid, (at, data, False))

    def _put(self, oid: str, item: tuple[int, bytes, bool]) -> None:
        if len(item[1]) > self.limit:
            return
        with self._lock:
            old = self._items.get(oid)
            if old is not None:
                if old[2] or not item[2]:
                    return
                self._bytes -= len(old[1])
            self._items[oid] = item
            self._items.move_to_end(oid)
            self._bytes += len(item[1])
            while self._bytes > self.limit:
                self._bytes -= len(self._items.popitem(last=False)[1][1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_verified = _VerifiedBytes(WHOLE_CACHE_BYTES)


class _Buffers:
    """Read buffers reused across reads: one per concurrent reader (a few at most, under the GIL)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            return self._free.pop() if self._free else bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            if len(self._free) < 8:
                self._free.append(buffer)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


_buffers = _Buffers(MAX_CHUNK)


def clear_cache() -> None:
    """Forget the verified bytes, decoded manifest chunks, read buffers and repositories kept for ``dsv://`` in this process."""
    _verified.clear()
    _buffers.clear()
    with _shared_lock:
        _chunk_rows.clear()
        _local_repos.clear()


class _ChunkRows:
    """``(size, id, mode)`` by path of the files in one manifest chunk (sorted by path).

    Reading one file asks for one path (pyarrow asks for it several times): it is
    found by a binary search of the chunk's Arrow table, ~20 us, where a dict of
    every row costs ~1 ms for 1,000 rows. From the second path asked on (a loop
    over a folder's files), the dict is built and used.
    """

    __slots__ = ("_table", "_rows", "_full")

    def __init__(self, table: "pa.Table") -> None:
        self._table = table
        self._rows: dict[str, tuple[int, bytes, int] | None] = {}
        self._full = False

    def get(self, path: str) -> tuple[int, bytes, int] | None:
        rows = self._rows
        if self._full or path in rows:
            return rows.get(path)
        if rows:
            t = self._table
            full: dict[str, tuple[int, bytes, int] | None] = {
                p: (sz, o, m) for p, sz, o, m in zip(t.column("path").to_pylist(), t.column("size").to_pylist(), t.column("oid").to_pylist(), t.column("mode").to_pylist())
            }
            self._rows, self._full = full, True
            return full.get(path)
        row = self._search(path)
        rows[path] = row
        return row

    def _search(self, path: str) -> tuple[int, bytes, int] | None:
        paths = self._table.column("path")
        lo, hi = 0, len(paths)
        while lo < hi:  # Python's str order is UTF-8 byte order, the manifest's
            mid = (lo + hi) // 2
            if paths[mid].as_py() < path:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(paths) or paths[lo].as_py() != path:
            return None
        t = self._table
        return t.column("size")[lo].as_py(), t.column("oid")[lo].as_py(), t.column("mode")[lo].as_py()


# Manifest chunks looked up by id (immutable: an id names its content), shared by every filesystem.
SHARED_CHUNKS = 64
_chunk_rows: OrderedDict[str, _ChunkRows] = OrderedDict()


def parse_url(url: str) -> tuple[str | None, str | None, str]:
    """``(rev, location, rest)`` of a ``dsv://`` URL (rev and location ``None`` when absent)."""
    rest = url[len("dsv://") :] if url.startswith("dsv://") else url
    m = _LOCATION.match(rest)
    if m:
        return unquote(m.group("rev")) or None, m.group("loc"), ""
    if url.startswith("dsv://"):
        rev, _, path = rest.partition("/")
        return unquote(rev) or None, None, path.strip("/")
    return None, None, rest.strip("/")


def is_url(location: str) -> bool:
    """Whether ``location`` is a URL (``s3://...``) rather than a local path (``file://`` counts as a path)."""
    return bool(_URL.match(location)) and not location.startswith("file://")


def _known_root(location: str) -> str | None:
    loc = location.rstrip("/")
    with _shared_lock:
        roots = sorted(_remote_roots, key=len, reverse=True)
    return next((r for r in roots if loc == r or loc.startswith(r + "/")), None)


def split_location(location: str) -> tuple[str, str]:
    """``(root, path inside it)`` of an absolute local location inside a repository or a folder remote."""
    if location.startswith("file://"):
        location = location[len("file://") :]
    path = os.path.normpath(location)
    probe = path
    while True:
        if os.path.isdir(os.path.join(probe, ".dsv")) or os.path.isfile(os.path.join(probe, REMOTE_MARKER)):
            rel = os.path.relpath(path, probe).replace(os.sep, "/")
            return probe, "" if rel == "." else rel
        parent = os.path.dirname(probe)
        if parent == probe:
            raise FileNotFoundError(f"no dsv repository or remote at or above {location}")
        probe = parent


def find_remote_root(location: str, options: dict[str, Any]) -> str:
    """The remote root at or above URL ``location``: the nearest prefix holding ``dsv-remote.json``."""
    from dsv.store.remotefs import RemoteFS

    known = _known_root(location)
    if known is not None:
        return known
    scheme, _, rest = location.rstrip("/").partition("://")
    parts = rest.split("/")
    for n in range(len(parts), 0, -1):
        candidate = f"{scheme}://{'/'.join(parts[:n])}"
        fs = RemoteFS(candidate, options)
        try:
            found = fs.get(REMOTE_MARKER) is not None
        except RemoteNotFoundError:
            found = False  # no such bucket or folder: certainly no marker there
        if found:
            with _shared_lock:
                _remote_roots.add(candidate)
            return candidate
    raise FileNotFoundError(f"no dsv remote at or above {location} (no {REMOTE_MARKER} found; a push creates it)")


def _open_local(path: str) -> "Repo":
    """The repository at or above ``path``, opened once per process."""
    from dsv.api.repo import Repo
    from dsv.repository import find_root

    root = find_root(path)
    with _shared_lock:
        repo = _local_repos.get(root)
    if repo is None or not os.path.isdir(os.path.join(root, ".dsv")):
        repo = Repo(root)
        with _shared_lock:
            _local_repos[root] = repo
    return repo


def default_cache_dir() -> str:
    """Where objects read from remotes are kept when no repository is at hand: ``$DSV_CACHE_DIR``,
    else ``$XDG_CACHE_HOME/dsv``, else ``~/.cache/dsv``."""
    explicit = os.environ.get("DSV_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "dsv")


def _os_error(err: DsvError, what: str) -> OSError:
    """A dsv error as the OSError fsspec callers expect, its message naming ``what``."""
    text = f"{what}: {err.message}" + (f" ({err.hint})" if getattr(err, "hint", None) else "")
    if isinstance(err, (RevisionError, RemoteNotFoundError, NotARepositoryError)):
        return FileNotFoundError(text)
    if isinstance(err, RemoteAuthError):
        return PermissionError(text)
    return OSError(text)


class DsvFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """One revision of one repository, read-only, as an fsspec filesystem.

    Args:
        repo: the repository: a folder (or any folder inside it), or a remote
            (a URL such as ``s3://bucket/penguins``, or a folder a push created);
            default the current folder.
        rev: the revision to read (branch, tag, ``HEAD~1``, commit id); default ``HEAD``
            (for a remote: its default branch). A branch is resolved once, when
            the filesystem is made.
        options: for a remote, options of its fsspec filesystem (``endpoint_url``,
            ``key``, ``secret``, ...); a remote configured in the repository
            that serves as cache adds its own options under these.
        cache: for a remote, where fetched objects are kept: a dsv repository
            (its object store, shared with its clones' work) or a folder. By
            default, the repository around the current folder when it has a
            remote with this URL, else :func:`default_cache_dir`.
        location: a location inside the repository or remote, the root found
            from it (what ``dsv://REV@LOCATION`` URLs pass).

    >>> import dsv, os, tempfile, pandas as pd
    >>> root = tempfile.mkdtemp()
    >>> with open(os.path.join(root, "labels.csv"), "w") as f:
    ...     _ = f.write("id,label\\n1,cat\\n2,dog\\n")
    >>> _ = dsv.Repo.init(root).commit("v1")
    >>> fs = DsvFileSystem(repo=root, rev="HEAD")
    >>> fs.ls("", detail=False)
    ['labels.csv']
    >>> pd.read_csv("dsv://HEAD/labels.csv", storage_options={"repo": root}).shape
    (2, 2)
    """

    protocol = "dsv"
    cachable = False
    """No fsspec instance cache: ``dsv://main/...`` resolves ``main`` each time a filesystem
    is made (pandas makes one per URL), so a long-running process sees new commits. What is
    costly to open (repositories, verified bytes, manifest chunks) is shared per process anyway."""
    root_marker = ""

    def __init__(
        self,
        repo: str | os.PathLike[str] = ".",
        rev: str = "HEAD",
        *,
        options: dict[str, Any] | None = None,
        cache: str | os.PathLike[str] | None = None,
        location: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from dsv.manifest import read_manifest

        self.rev = rev
        self._view: RemoteView | None = None
        # The local store behind ``_store`` (which may fetch from a remote): chunks held there are
        # read in place (:meth:`LocalObjectStore.read_into`).
        self._local: LocalObjectStore | None = None
        options = dict(options or {})
        target = location if location is not None else os.fspath(repo)
        try:
            if is_url(target):
                root = find_remote_root(target, options) if location is not None else target.rstrip("/")
                self._open_remote(root, options, cache)
            else:
                if target.startswith("file://"):
                    target = target[len("file://") :]
                root = split_location(os.path.abspath(target))[0] if location is not None else os.path.abspath(target)
                if not os.path.isdir(os.path.join(root, ".dsv")) and os.path.isfile(os.path.join(root, REMOTE_MARKER)):
                    self._open_remote(root, options, cache)
                else:
                    local = _open_local(root)
                    root = local.root
                    self._history = local.repository.history
                    self._store = local.repository.store
                    self._local = local.repository.local_store
            self.repo_path = root
            resolved = self._history.resolve(rev)
            self._manifest: Manifest = read_manifest(self._store, resolved.commit.manifest)
        except DsvError as err:
            raise _os_error(err, f"dsv://{rev} in {self._where_text(target)}") from None
        self.commit_id = resolved.commit_id
        self._commit_time = resolved.commit.time
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._names: dict[str, list[str]] = {}
        self._chunk_rows: dict[int, _ChunkRows] = {}
        root_table = self._manifest.root
        self._chunk_lasts: list[str] = root_table.column("last").to_pylist()
        self._chunk_ids: list[str] = self._manifest.chunk_ids()
        self._chunk_maps: dict[str, ChunkMap] = {}

    @staticmethod
    def _where_text(target: str) -> str:
        from dsv.base.secrets import mask_url

        return mask_url(target) if is_url(target) else os.path.abspath(target)

    def _open_remote(self, root: str, options: dict[str, Any], cache: str | os.PathLike[str] | None) -> None:
        """Read from remote ``root`` through a local store (see ``cache``)."""
        import xxhash

        from dsv.base.secrets import mask_url
        from dsv.remote.repo import RemoteRepo
        from dsv.remote.view import RemoteView
        from dsv.repository import Repository, find_root
        from dsv.store.local import LocalObjectStore

        url = root if is_url(root) else os.path.abspath(root)
        key = xxhash.xxh3_64_hexdigest(url.encode())
        cache_root = os.path.join(default_cache_dir(), "remotes", key)
        index_dir = os.path.join(cache_root, "packs")
        repository: Repository | None = None
        if cache is not None:
            cache_path = os.path.abspath(os.fspath(cache))
            if os.path.isdir(os.path.join(cache_path, ".dsv")):
                repository = Repository.open(cache_path)
            else:
                cache_root = cache_path
                index_dir = os.path.join(cache_root, "packs")
        else:
            try:
                repository = Repository.open(find_root(os.getcwd()))
            except DsvError:
                repository = None
            if repository is not None and not any(r.url == url for r in repository.config.remotes.values()):
                repository = None  # an unrelated repository: the user's cache, not its store
        if repository is not None:
            for name, cfg in repository.config.remotes.items():
                if cfg.url == url:
                    options = {**cfg.options, **options}
                    index_dir = os.path.join(repository.layout.dsv, "remotes", name, "packs")
                    break
            local = repository.local_store
        else:
            try:
                local = LocalObjectStore.create(os.path.join(cache_root, "objects"))
            except OSError as err:
                # Same exception type (NotADirectoryError, PermissionError...), with what was being read.
                raise type(err)(err.errno, f"dsv://{self.rev}: cannot use {cache_root} as the cache of {mask_url(url)} ({err.strerror})") from None
        shared = (url, repr(sorted(options.items())), index_dir)
        with _shared_lock:
            remote = _remotes.get(shared)
            if remote is None:
                remote = _remotes[shared] = RemoteRepo(url, url, options, cache_dir=index_dir)
        self._view = view = RemoteView(remote, local)
        self._history = view.history
        self._store = view.store
        self._local = local

    # -- URLs --------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path) if not isinstance(path, str) else path
        if "@" not in path and not path.startswith("dsv://"):
            return path.strip("/")  # already a path of the snapshot (the common case, on every call)
        rev, location, rest = parse_url(path)
        if location is None:
            return rest
        if not path.startswith("dsv://") and not is_url(location):
            # A bare path such as ``team@/a.txt`` is a path of the snapshot (a folder named
            # ``team@``) unless what follows the ``@`` really is inside a repository.
            try:
                return split_location(location)[1]
            except FileNotFoundError:
                return path.strip("/")
        if is_url(location):
            root = _known_root(location)
            # An unknown root is found by the instance; until then the location stands for the path.
            return location.rstrip("/")[len(root) :].strip("/") if root is not None else location
        return split_location(location)[1]

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        rev, location, _ = parse_url(path)
        out: dict[str, Any] = {}
        if rev:
            out["rev"] = rev
        if location is not None:
            root = _known_root(location) if is_url(location) else None
            if root is not None:
                out["repo"] = root
            elif is_url(location):
                out["location"] = location
            else:
                out["repo"] = split_location(location)[0]
        return out

    def _rel(self, path: Any) -> str:
        """A path of the snapshot (relative, no slashes at the ends) for any path or URL given."""
        p = self._strip_protocol(path)
        if "://" in p and is_url(p):
            root = self.repo_path.rstrip("/")
            if p == root or p.startswith(root + "/"):
                p = p[len(root) :]
        return str(p).strip("/")

    def unstrip_protocol(self, name: str) -> str:
        """A full ``dsv://`` URL for a path of this filesystem."""
        rev = self.rev.replace("/", "%2F")
        if is_url(self.repo_path):
            return f"dsv://{rev}@{self.repo_path.rstrip('/')}/{name}"
        return f"dsv://{rev}@{os.path.join(self.repo_path, name)}"

    # -- remote reads ------------------------------------------------------------------

    @property
    def fetched(self) -> int:
        """Objects this filesystem fetched from its remote (0 for a local repository)."""
        return self._view.fetched if self._view is not None else 0

    @property
    def requests(self) -> int:
        """Requests made to the remote so far by every filesystem sharing it (0 for a local repository)."""
        return self._view.requests if self._view is not None else 0

    # -- listing -----------------------------------------------------------------

    def _missing(self, path: str) -> FileNotFoundError:
        return FileNotFoundError(f"{path or '/'} does not exist at {self.rev} ({self.commit_id[:10]}) in {self._where_text(self.repo_path)}")

    def _rows_under(self, path: str) -> "pa.Table":
        try:
            return self._manifest.under(path)
        except DsvError as err:
            raise _os_error(err, f"dsv://{self.rev} listing {path or '/'}") from None

    def _file_row(self, path: str) -> tuple[int, bytes, int] | None:
        """``(size, id, mode)`` of a file, from the one chunk that can hold it (see :class:`_ChunkRows`)."""
        i = bisect.bisect_left(self._chunk_lasts, path)
        if i >= len(self._chunk_ids):
            return None
        rows = self._chunk_rows.get(i)
        if rows is None:
            chunk_id = self._chunk_ids[i]
            with _shared_lock:
                rows = _chunk_rows.get(chunk_id)
            if rows is None:
                try:
                    table = self._manifest.load_chunk(chunk_id)
                except DsvError as err:
                    raise _os_error(err, f"dsv://{self.rev} looking up {path}") from None
                rows = _ChunkRows(table)
                with _shared_lock:
                    _chunk_rows[chunk_id] = rows
                    while len(_chunk_rows) > SHARED_CHUNKS:
                        _chunk_rows.popitem(last=False)
            self._chunk_rows[i] = rows
        return rows.get(path)

    def _entry(self, path: str, size: int, oid: bytes, mode: int) -> dict[str, Any]:
        return {"name": path, "size": size, "type": "file", "oid": oid.hex(), "mode": f"{mode:o}", "islink": mode == MODE_LINK}

    def _listing(self, path: str) -> list[dict[str, Any]]:
        """Direct children of folder ``path`` (files with sizes, then folders), cached."""
        cached = self._listings.get(path)
        if cached is not None:
            return cached
        import pyarrow.compute as pc

        table = self._rows_under(path)
        prefix = path + "/" if path else ""
        paths = table.column("path")
        if path and table.num_rows and paths[0].as_py() == path:
            raise NotADirectoryError(f"{path} is a file at {self.rev}")
        rest = pc.utf8_slice_codeunits(paths, len(prefix)) if prefix else paths
        nested = pc.greater_equal(pc.find_substring(rest, "/"), 0)
        files = table.filter(pc.invert(nested))
        out = [
            self._entry(p, s, o, m)
            for p, s, o, m in zip(
                files.column("path").to_pylist(), files.column("size").to_pylist(), files.column("oid").to_pylist(), files.column("mode").to_pylist()
            )
        ]
        folders = pc.unique(pc.list_element(pc.split_pattern(rest.filter(nested), "/", max_splits=1), 0)).to_pylist()
        out.extend({"name": prefix + d, "size": 0, "type": "directory"} for d in sorted(folders))
        if path and not out:
            raise self._missing(path)
        self._listings[path] = out
        return out

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Direct children of a folder (or the file itself)."""
        path = self._rel(path)
        if not detail:
            names = self._names.get(path)
            if names is None:
                try:
                    names = self._child_names(path)
                except NotADirectoryError:
                    names = [path]
                self._names[path] = names
            return list(names)
        try:
            return self._listing(path)
        except NotADirectoryError:
            return [self.info(path)]

    def _child_names(self, path: str) -> list[str]:
        """Names of the direct children of a folder, built with Arrow kernels only."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if path and self._file_row(path) is not None:
            raise NotADirectoryError(path)
        table = self._rows_under(path)
        prefix = path + "/" if path else ""
        paths = table.column("path")
        rest = pc.utf8_slice_codeunits(paths, len(prefix)) if prefix else paths
        nested = pc.greater_equal(pc.find_substring(rest, "/"), 0)
        files = paths.filter(pc.invert(nested)).to_pylist()
        folders = pc.unique(pc.list_element(pc.split_pattern(rest.filter(nested), "/", max_splits=1), 0))
        if prefix:
            folders = pc.binary_join_element_wise(pa.scalar(prefix), folders, "")
        out = files + sorted(folders.to_pylist())
        if path and not out:
            raise self._missing(path)
        return out

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """A file's size, id and mode, or a folder."""
        path = self._rel(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        row = self._file_row(path)
        if row is not None:
            return self._entry(path, row[0], row[1], row[2])
        if path in self._listings or path in self._names or self._rows_under(path).num_rows:
            return {"name": path, "size": 0, "type": "directory"}
        raise self._missing(path)

    def modified(self, path: str) -> Any:
        """The time of the commit read (every file of a snapshot has it; DuckDB asks for it)."""
        self.info(path)
        return self._commit_time

    # -- reading -----------------------------------------------------------------

    def _file_entry(self, path: str) -> dict[str, Any]:
        info = self.info(path)
        if info["type"] == "directory":
            raise IsADirectoryError(f"{path} is a folder at {self.rev} ({self.commit_id[:10]})")
        return info

    def read_range(self, oid: str, size: int, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of object ``oid`` (of ``size`` bytes), reading only what covers them."""
        start, end = max(0, start), min(size, end)
        if start >= end:
            return b""
        try:
            return self._read_range(oid, size, start, end)
        except DsvError as err:
            raise _os_error(err, f"dsv://{self.rev} object {oid}") from None

    def _read_range(self, oid: str, size: int, start: int, end: int) -> bytes:
        chunks = self._chunk_maps.get(oid)
        if chunks is None:
            # Only objects of CHUNKED_THRESHOLD bytes or more can be chunk lists.
            chunks = self._chunk_map(oid) if size >= CHUNKED_THRESHOLD else None
            if chunks is None:
                data = _verified.get(oid)
                if data is None:
                    data = self._store.read(oid)
                    _verified.put(oid, data)
                return data[start:end]
            self._chunk_maps[oid] = chunks
        first, last = chunks.span(start, end)
        offsets = chunks.offsets
        if self._view is not None:
            self._view.fetch_chunks(oid, [chunks.chunk_id(i) for i in range(first, last + 1)])  # one batch
        if first == last:
            at = offsets[first]
            data, lo, hi = self._chunk_part(chunks.chunk_id(first), offsets[first + 1] - at, start - at, end - at)
            return data[lo:hi]
        # One copy: the part of each chunk through a view, then joined.
        views = []
        for i in range(first, last + 1):
            at = offsets[i]
            data, lo, hi = self._chunk_part(chunks.chunk_id(i), offsets[i + 1] - at, max(start, at) - at, min(end, offsets[i + 1]) - at)
            views.append(memoryview(data)[lo:hi])
        return b"".join(views)

    def _chunk_part(self, cid: str, n: int, lo: int, hi: int) -> tuple[bytes, int, int]:
        """Bytes ``[lo, hi)`` of chunk ``cid`` (``n`` bytes), verified, as ``(data, lo', hi')``: ``data[lo':hi']``.

        From memory when kept (see :class:`_VerifiedBytes`). Else the first read of
        part of a chunk reads it into a reused buffer and keeps just the part; a
        chunk read whole, or read again for another part, is read and kept whole.
        """
        item = _verified.entry(cid)
        if item is not None:
            at, data, _ = item
            if at <= lo and hi <= at + len(data):
                return data, lo - at, hi - at
        elif (lo > 0 or hi < n) and self._local is not None:
            buffer = _buffers.take()
            try:
                view = self._local.read_into(cid, buffer)
                if view is not None:
                    with view:
                        part = bytes(view[lo:hi])
                    _verified.put_piece(cid, lo, part)
                    return part, 0, len(part)
            finally:
                _buffers.give(buffer)
        # Not readable in place (compressed, only promised by a remote, found corrupt: read() says
        # which and quarantines a bad copy), or wanted whole.
        data = self._store.read(cid)
        _verified.put(cid, data)
        return data, lo, hi

    def _chunk_map(self, oid: str) -> ChunkMap | None:
        """Where the chunks of big file ``oid`` lie (``None`` if it is stored whole)."""
        if self._view is not None:
            return self._view.chunk_map(oid)
        store = self._store
        if isinstance(store, LocalObjectStore):
            return store.chunk_map(oid)
        listed = store.chunk_list(oid)  # a partial clone's store: fetches the list if only promised
        if listed is None:
            return None
        return ChunkMap(encode_chunk_list([(bytes.fromhex(c), n) for c, n in listed]), sum(n for _, n in listed))

    def prefetch(self, paths: list[str]) -> int:
        """Fetch, in one batch, every file among ``paths`` not held locally (a remote; else a no-op).

        Returns the number of objects fetched. A data loader that knows its
        next batch calls this once instead of paying a round trip per file.
        """
        if self._view is None:
            return 0
        before = self._view.fetched
        oids = [self._file_entry(self._rel(p))["oid"] for p in paths]
        try:
            self._store.prefetch(oids)
        except DsvError as err:
            raise _os_error(err, f"dsv://{self.rev}") from None
        return self._view.fetched - before

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """A file's bytes, or a byte range of them (negative offsets count from the end)."""
        info = self._file_entry(self._rel(path))
        size = info["size"]
        s = 0 if start is None else (size + start if start < 0 else start)
        e = size if end is None else (size + end if end < 0 else end)
        return self.read_range(info["oid"], size, s, e)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> "DsvFile":
        if mode != "rb":
            raise PermissionError(f"dsv:// is read-only: cannot open {path} for {mode!r} (revision {self.rev} is a snapshot)")
        info = self._file_entry(self._rel(path))
        if info["size"] < SMALL_FILE_BYTES:
            # Read whole (and verified) at once: a buffered file's machinery would cost more than the read.
            return DsvSmallFile(self, info["name"], self.read_range(info["oid"], info["size"], 0, info["size"]))  # type: ignore[return-value]
        return DsvFile(self, info["name"], info, block_size=block_size, cache_options=cache_options)

    # -- writes: refused ------------------------------------------------------------

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        """Every write (mkdir, rm, pipe, touch, cp, mv, put) raises :class:`PermissionError`."""
        raise PermissionError(f"dsv:// is read-only: revision {self.rev} is a snapshot (commit to change the dataset)")

    mkdir = makedirs = rm_file = rm = rmdir = pipe_file = touch = cp_file = mv = put_file = _read_only  # type: ignore[assignment]

    def invalidate_cache(self, path: str | None = None) -> None:
        """Listings are of one immutable snapshot: nothing to invalidate."""


_opened = [0]
"""``dsv://`` files opened in this process (see :func:`_let_pool_threads_release_files`)."""


def _track_file(f: object) -> None:
    _opened[0] += 1


EXIT_PAUSE_S = 0.1
"""The pause at interpreter exit of a process that opened ``dsv://`` files."""


def _let_pool_threads_release_files() -> None:
    """At exit, give pyarrow's pool threads a moment to finish their Python work on ``dsv://`` files.

    pyarrow reads a Python filesystem's files from its own thread pools and
    closes and releases them there, possibly after ``read_table`` has returned.
    If the interpreter is already shutting down when a pool thread runs that
    Python work, the interpreter stops the thread and the C++ runtime aborts the
    process ("terminate called without an active exception", exit 134) after
    the script's work is done (apache/arrow#34314, #39162). A pause here, while
    the interpreter is still whole, lets those threads finish first: measured on
    the benchmark's Parquet read, 15 of 30 processes aborted without it (when
    the files were freed at once), none of 60 with it. Only a process that
    opened a ``dsv://`` file pays it.
    """
    if _opened[0]:
        time.sleep(EXIT_PAUSE_S)


atexit.register(_let_pool_threads_release_files)


class DsvFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a snapshot, read with random access (only the chunks a read touches)."""

    def __init__(self, fs: DsvFileSystem, path: str, info: dict[str, Any], **kwargs: Any) -> None:
        self.oid = info["oid"]
        # Big files are read by callers that ask for what they need (pyarrow coalesces a column's
        # ranges itself): a readahead cache would split those into 1 MiB blocks and copy them twice.
        kwargs.setdefault("cache_type", "none")
        if kwargs.get("block_size") is None:
            kwargs["block_size"] = 1024 * 1024
        super().__init__(fs, path, mode="rb", size=info["size"], **kwargs)
        _track_file(self)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.read_range(self.oid, self.size, start, end)


class DsvSmallFile(io.BytesIO):
    """A small file of a snapshot, its bytes read whole and verified on open; read-only."""

    def __init__(self, fs: DsvFileSystem, path: str, data: bytes) -> None:
        super().__init__(data)
        _track_file(self)
        self.fs = fs
        self.path = path
        self.size = len(data)
        self.mode = "rb"  # type: ignore[misc]

    def writable(self) -> bool:
        return False

    def write(self, *args: Any) -> int:
        raise io.UnsupportedOperation(f"dsv:// is read-only: {self.path}")

    def truncate(self, *args: Any) -> int:
        raise io.UnsupportedOperation(f"dsv:// is read-only: {self.path}")
