"""``dsv://``: every version of a repository as a read-only fsspec filesystem.

pandas, pyarrow, polars, DuckDB and data loaders read a dataset version straight
from the object store, without a checkout::

    pd.read_csv("dsv://v1/labels.csv")                                   # repository in the current folder
    pd.read_parquet("dsv://v2/data/train.parquet", storage_options={"repo": "/data/penguins"})
    pd.read_parquet("dsv://v2@/data/penguins/data/train.parquet")        # repository found along the path
    fs = fsspec.filesystem("dsv", repo="/data/penguins", rev="v2"); fs.ls("images")

URL grammar (docs/api.md): ``dsv://REV/PATH`` with the repository from the
``repo`` option (default: the current folder), or ``dsv://REV@LOCATION`` where
``LOCATION`` is an absolute path inside a repository: the repository is the
nearest folder at or above it holding ``.dsv``, and the rest is the path in the
snapshot. ``REV`` is any revision (``v2``, ``main``, ``HEAD~1``, a commit id);
a ``/`` in it is written ``%2F``.

Reads verify what they return: a whole small file against its id, and for a big
file every chunk a read touches (so a Parquet footer read reads the last chunk
or two of the file, not the whole file). Writes raise :class:`PermissionError`.
"""

from __future__ import annotations

import bisect
import os
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile

from dsv.base.errors import DsvError, RevisionError
from dsv.base.filemodes import MODE_LINK
from dsv.store.chunking import CHUNKED_THRESHOLD

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.api.repo import Repo
    from dsv.manifest import Manifest

WHOLE_CACHE_BYTES = 64 * 1024 * 1024
"""Small files read whole are kept (least recently used first out) up to this many bytes."""

_LOCATION = re.compile(r"^(?P<rev>[^/]*?)@(?P<loc>/.*|[A-Za-z][A-Za-z0-9+.-]*://.*)$")


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


def split_location(location: str) -> tuple[str, str]:
    """``(repository root, path inside it)`` of an absolute location inside a repository."""
    if "://" in location:
        raise DsvError(
            f"{location}: reading a version straight from a remote is not available yet",
            hint="clone it first (dsv clone), or open the local repository",
        )
    path = os.path.normpath(location)
    probe = path
    while True:
        if os.path.isdir(os.path.join(probe, ".dsv")):
            rel = os.path.relpath(path, probe).replace(os.sep, "/")
            return probe, "" if rel == "." else rel
        parent = os.path.dirname(probe)
        if parent == probe:
            raise FileNotFoundError(f"no dsv repository at or above {location}")
        probe = parent


class DsvFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """One revision of one repository, read-only, as an fsspec filesystem.

    Args:
        repo: the repository folder (or any folder inside it); default the current folder.
        rev: the revision to read (branch, tag, ``HEAD~1``, commit id); default ``HEAD``.
            A branch or ``HEAD`` is resolved once, when the filesystem is made.

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
    root_marker = ""

    def __init__(self, repo: str | os.PathLike[str] = ".", rev: str = "HEAD", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from dsv.api.repo import Repo

        self.repo_path = os.fspath(repo)
        self.rev = rev
        try:
            self._repo: Repo = Repo(self.repo_path)
            resolved = self._repo.resolve(rev)
        except RevisionError as err:
            raise FileNotFoundError(f"dsv://{rev}: {err.message} (in {os.path.abspath(self.repo_path)})") from None
        except DsvError as err:
            raise FileNotFoundError(f"dsv://{rev}: {err.message}") from None
        self.commit_id = resolved.commit_id
        self._manifest: Manifest = self._repo._manifest(resolved.commit)
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._names: dict[str, list[str]] = {}
        self._chunk_rows: dict[int, dict[str, tuple[int, bytes, int]]] = {}
        root = self._manifest.root
        self._chunk_lasts: list[str] = root.column("last").to_pylist()
        self._chunk_ids: list[str] = self._manifest.chunk_ids()
        self._chunk_offsets: dict[str, tuple[list[int], list[str]]] = {}
        self._whole: OrderedDict[str, bytes] = OrderedDict()
        self._whole_bytes = 0

    # -- URLs --------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path) if not isinstance(path, str) else path
        rev, location, rest = parse_url(path)
        if location is not None:
            return split_location(location)[1]
        return rest

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        rev, location, _ = parse_url(path)
        out: dict[str, Any] = {}
        if rev:
            out["rev"] = rev
        if location is not None:
            out["repo"] = split_location(location)[0]
        return out

    def unstrip_protocol(self, name: str) -> str:
        """A full ``dsv://`` URL for a path of this filesystem."""
        return f"dsv://{self.rev.replace('/', '%2F')}@{os.path.join(self._repo.root, name)}"

    # -- listing -----------------------------------------------------------------

    def _missing(self, path: str) -> FileNotFoundError:
        return FileNotFoundError(f"{path or '/'} does not exist at {self.rev} ({self.commit_id[:10]}) in {self._repo.root}")

    def _rows_under(self, path: str) -> "pa.Table":
        return self._manifest.under(path)

    def _file_row(self, path: str) -> tuple[int, bytes, int] | None:
        """``(size, id, mode)`` of a file, from the one chunk that can hold it (a dict per chunk, built once)."""
        i = bisect.bisect_left(self._chunk_lasts, path)
        if i >= len(self._chunk_ids):
            return None
        rows = self._chunk_rows.get(i)
        if rows is None:
            table = self._manifest.load_chunk(self._chunk_ids[i])
            rows = {
                p: (sz, o, m)
                for p, sz, o, m in zip(table.column("path").to_pylist(), table.column("size").to_pylist(), table.column("oid").to_pylist(), table.column("mode").to_pylist())
            }
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
        path = self._strip_protocol(path).strip("/")
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
        path = self._strip_protocol(path).strip("/")
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        row = self._file_row(path)
        if row is not None:
            return self._entry(path, row[0], row[1], row[2])
        if path in self._listings or path in self._names or self._rows_under(path).num_rows:
            return {"name": path, "size": 0, "type": "directory"}
        raise self._missing(path)

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
        store = self._repo.repository.store
        chunked = self._chunk_offsets.get(oid)
        if chunked is None:
            # Only objects of CHUNKED_THRESHOLD bytes or more can be chunk lists.
            chunk_list = store.chunk_list(oid) if size >= CHUNKED_THRESHOLD and hasattr(store, "chunk_list") else None
            if chunk_list is None:
                data = self._whole.get(oid)
                if data is None:
                    data = store.read(oid)
                    self._whole[oid] = data
                    self._whole_bytes += len(data)
                    while self._whole_bytes > WHOLE_CACHE_BYTES and len(self._whole) > 1:
                        self._whole_bytes -= len(self._whole.popitem(last=False)[1])
                return data[start:end]
            offsets = [0]
            for _, n in chunk_list:
                offsets.append(offsets[-1] + n)
            chunked = (offsets, [c for c, _ in chunk_list])
            self._chunk_offsets[oid] = chunked
        offsets, ids = chunked
        first = bisect.bisect_right(offsets, start) - 1
        last = bisect.bisect_left(offsets, end) - 1
        parts = [store.read(ids[i]) for i in range(first, last + 1)]
        blob = b"".join(parts)
        base = offsets[first]
        return blob[start - base : end - base]

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """A file's bytes, or a byte range of them (negative offsets count from the end)."""
        info = self._file_entry(self._strip_protocol(path).strip("/"))
        size = info["size"]
        s = 0 if start is None else (size + start if start < 0 else start)
        e = size if end is None else (size + end if end < 0 else end)
        return self.read_range(info["oid"], size, s, e)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> "DsvFile":
        if mode != "rb":
            raise PermissionError(f"dsv:// is read-only: cannot open {path} for {mode!r} (revision {self.rev} is a snapshot)")
        info = self._file_entry(self._strip_protocol(path).strip("/"))
        return DsvFile(self, info["name"], info, block_size=block_size, cache_options=cache_options)

    # -- writes: refused ------------------------------------------------------------

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        """Every write (mkdir, rm, pipe, touch, cp, mv, put) raises :class:`PermissionError`."""
        raise PermissionError(f"dsv:// is read-only: revision {self.rev} is a snapshot (commit to change the dataset)")

    mkdir = makedirs = rm_file = rm = rmdir = pipe_file = touch = cp_file = mv = put_file = _read_only  # type: ignore[assignment]

    def invalidate_cache(self, path: str | None = None) -> None:
        """Listings are of one immutable snapshot: nothing to invalidate."""


class DsvFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of a snapshot, read with random access (only the chunks a read touches)."""

    def __init__(self, fs: DsvFileSystem, path: str, info: dict[str, Any], **kwargs: Any) -> None:
        self.oid = info["oid"]
        kwargs.setdefault("cache_type", "readahead")
        if kwargs.get("block_size") is None:
            kwargs["block_size"] = 1024 * 1024
        super().__init__(fs, path, mode="rb", size=info["size"], **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.read_range(self.oid, self.size, start, end)
