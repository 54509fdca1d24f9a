#!/usr/bin/env python3
"""Generate docs/api.md from the docstrings of dsv's public names.

Usage: python scripts/gen_api_docs.py [--check]

``--check`` exits 1 when docs/api.md is not what this script would write (the
test suite runs it, so the reference never drifts from the code). Every
example in these docstrings runs as a doctest in tests/test_api_docs.py.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INTRO = """# Python API reference

Generated from the docstrings by `python scripts/gen_api_docs.py`; every
example below runs as a doctest in the test suite (`tests/test_api_docs.py`).

```python
import dsv
repo = dsv.Repo("data")                  # or dsv.Repo.init("data")
repo.commit("fix cat labels")
d = repo.diff("v1", "v2")                # files, and per class and slice of the samples
d.classes.to_pandas(); d.relabels.to_arrow(); d.slices.to_pandas()
repo.log().to_pandas(); repo.metrics().to_pandas(); repo.status().to_pandas()
pd.read_parquet("dsv://v2/data/train.parquet", storage_options={"repo": "data"})
mlflow.log_params(dsv.experiment_info("data"))
```

Every method returns a typed result with `to_dict()` (the CLI's `--json` is the
same document); results are immutable records (equality, `repr`, pickling,
`replace(**changes)` and positional `match` patterns, not dataclasses); summaries are `ResultTable`s with `to_arrow()`, `to_pandas()`
(pandas optional) and `to_pylist()`. Errors are subclasses of `dsv.DsvError`
with a `hint`; the tree is in `dsv/base/errors.py`.

## `dsv://` URLs

| URL | reads |
|---|---|
| `dsv://REV/PATH` | `PATH` at revision `REV` of the repository in the `repo` storage option (default: the current folder) |
| `dsv://REV@/abs/path/inside/repo/PATH` | the repository is the nearest folder at or above the path holding `.dsv` (or a folder remote: `dsv-remote.json`); the rest is the path in the snapshot |
| `dsv://REV@s3://bucket/prefix/PATH` | straight from a remote at any fsspec URL: the remote is the nearest prefix holding `dsv-remote.json` (found with one request per level, once per process) |
| `fsspec.filesystem("dsv", repo=..., rev=...)` | a filesystem of one revision; `repo` is a folder, a remote URL or a folder remote; paths are relative to the repository root |

`REV` is any revision (`v2`, `main`, `HEAD~1`, a commit id or a prefix of
one); write a `/` in it as `%2F`. A branch or `HEAD` (a remote's default
branch) is resolved when the filesystem is made (a filesystem is one immutable
snapshot). The filesystem is registered through the `fsspec.specs` entry
point, so `dsv://` works in pandas, pyarrow, polars (through `fsspec.open`),
DuckDB (`duckdb.register_filesystem`) and data loaders without importing dsv.
Reads are verified: a whole small file against its id, each chunk of a big
file a read touches against the chunk's id (a Parquet footer read reads only
the last chunks). It is read-only: writes raise `PermissionError`; a missing
revision or path raises `FileNotFoundError` naming the revision, a folder
opened as a file `IsADirectoryError`. Within a process, filesystems share what
they have verified (small files, chunks and the parts of chunks reads asked for, up to 64 MiB), decoded manifest
chunks and opened repositories, all keyed by content id or path (a new commit
is still seen: a store re-reads its indexes when an id is missing or when `dsv gc` in another process removed a pack it had listed, and a `dsv://BRANCH/...` URL resolves the branch each time it is opened: filesystems are not cached by fsspec);
`dsv.api.fs.clear_cache()` forgets them.

A process that opened `dsv://` files pauses 0.1 s at exit: pyarrow releases a
Python filesystem's files from its own threads, possibly after `read_table`
has returned, and if the interpreter was already shutting down the process
aborted ("terminate called without an active exception", exit code 134) after
its work was done, about one run in three to ten (pyarrow's open reports
apache/arrow#34314 and #39162 describe the same abort with other Python
filesystems). With the pause, none of 40 runs aborted.

### Reading from a remote

```python
so = {"options": {"endpoint_url": "http://127.0.0.1:9000"}}   # fsspec options of the remote, if any
pd.read_parquet("dsv://exp-42@s3://bucket/datasets/penguins/data/train.parquet", storage_options=so)
ds.dataset("data/", filesystem=dsv.DsvFileSystem(repo="s3://bucket/datasets/penguins", rev="v2"), format="parquet")
```

Nothing is cloned. `refs.json` is read once per filesystem (one request) and
revisions resolve against it. Each object (a commit, a manifest chunk, a file,
or one content-defined chunk of a big file) is fetched the first time a read
needs it, with the remote's pack indexes (cached on disk) telling where it is,
verified against its id, and kept in a local store in dsv's own format, so it
is fetched once, not once per read or per process. That store is:

- the `cache` option, when it names a dsv repository (its object store) or a folder;
- else the repository around the current folder, when one of its remotes has
  this URL (a clone of the remote, full or partial, shares its objects; that
  remote's configured options apply);
- else `$DSV_CACHE_DIR`, `$XDG_CACHE_HOME/dsv` or `~/.cache/dsv`, under
  `remotes/<hash of the URL>/`. Deleting that folder is always safe.

A read of a big file fetches only the chunks it touches; the file's chunk list
is checked against the file's id once all its chunks have been read (each chunk
is always checked against its own id). `fs.prefetch(paths)` fetches many files
in one batch (a data loader that knows its next batch); `fs.fetched` and
`fs.requests` count objects fetched and requests made. A remote that cannot be
reached raises `OSError`, wrong credentials `PermissionError`, a location with
no remote `FileNotFoundError`, an object that does not verify `OSError`
naming it (nothing of it is kept).
"""

SECTIONS: list[tuple[str, list[str]]] = [
    ("Top level", ["dsv.Repo", "dsv.current_version", "dsv.experiment_info", "dsv.write_parquet", "dsv.DsvFileSystem"]),
    ("Results", [
        "dsv.api.results.CommitResult", "dsv.api.results.StatusResult", "dsv.api.results.LogEntry", "dsv.api.results.LogResult",
        "dsv.api.results.ShowResult", "dsv.api.results.CheckoutResult", "dsv.api.results.ChangelogResult",
        "dsv.api.results.VersionInfo", "dsv.semantic.report.SemanticDiff", "dsv.semantic.report.SourceDiff",
        "dsv.metrics.records.MetricsResult", "dsv.base.tables.ResultTable", "dsv.base.tables.ResultList",
    ]),
    ("Errors", ["dsv.base.errors.DsvError"]),
]


def resolve(dotted: str) -> Any:
    """The object a dotted name names."""
    module, _, name = dotted.rpartition(".")
    obj = importlib.import_module(module)
    return getattr(obj, name)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "(no docstring)")


def _signature(obj: Any) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    return sig.replace("'", "").replace('"', "")


def render() -> str:
    """The whole of docs/api.md."""
    out = [INTRO]
    for title, names in SECTIONS:
        out.append(f"## {title}\n")
        for dotted in names:
            obj = resolve(dotted)
            short = dotted if not dotted.startswith("dsv.") or dotted.count(".") == 1 else dotted
            if inspect.isclass(obj):
                out.append(f"### class `{short}`\n")
                out.append(_doc(obj) + "\n")
                for name, member in inspect.getmembers(obj):
                    if name.startswith("_") or name in ("model_config", "model_fields", "model_computed_fields"):
                        continue
                    if member.__class__.__name__ in ("property", "cached_property") or isinstance(inspect.getattr_static(obj, name), property):
                        doc = inspect.getdoc(inspect.getattr_static(obj, name)) or ""
                        if not doc:
                            continue
                        out.append(f"- **`{name}`** (property): {_first_paragraph(doc)}")
                    elif inspect.isfunction(member) or inspect.ismethod(member):
                        if member.__name__ != name:
                            continue  # an alias (DsvFileSystem's refused writes share one method)
                        if member.__qualname__.split(".")[0] not in {c.__name__ for c in obj.__mro__} or member.__module__.split(".")[0] != "dsv":
                            continue
                        out.append(f"\n#### `{short.rpartition('.')[2]}.{name}{_signature(member)}`\n")
                        out.append(_doc(member) + "\n")
                out.append("")
            else:
                out.append(f"### `{short}{_signature(obj)}`\n")
                out.append(_doc(obj) + "\n")
    return "\n".join(out).rstrip() + "\n"


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = parser.parse_args()
    text = render()
    target = ROOT / "docs" / "api.md"
    if args.check:
        if not target.exists() or target.read_text() != text:
            print("docs/api.md is stale: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
