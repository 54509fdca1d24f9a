"""``.dsv/CHECKOUT``: the record of a checkout that has started changing the working tree.

Written (durably) just before a checkout's first change to the tree, deleted
after HEAD and the stat cache are updated. If it is still there, a checkout
stopped part-way (killed, power cut): ``status`` says so, ``commit`` refuses
(the tree holds a mix of two versions), and running the same checkout again
completes it. Like git's ``MERGE_HEAD``.
"""

from __future__ import annotations

import datetime as dt
import os

from dsv.base.errors import CorruptMetadataError, StorageError
from dsv.base.formats import DOCUMENT_FORMAT, canonical_json
from dsv.base.fsio import atomic_write_bytes, read_bytes
from dsv.base.records import FrozenRecord, init_field

RECORD_NAME = "CHECKOUT"


class CheckoutRecord(FrozenRecord):
    """A checkout in progress: the revision as typed, the commit it named, and the paths (or all).

    Written without pydantic (every checkout writes one); read back through the
    strict model :class:`dsv.worktree.pending_model.CheckoutRecordModel`, the
    schema of record, which a test holds to the same bytes.
    """

    __slots__ = ("rev", "commit", "source", "paths", "started")

    rev: str
    commit: str
    source: str | None
    """The commit HEAD named when the checkout started (``None``: no commit yet)."""
    paths: tuple[str, ...] | None
    started: dt.datetime

    def __init__(self, rev: str, commit: str, source: str | None, paths: tuple[str, ...] | None, started: dt.datetime) -> None:
        init_field(self, "rev", rev)
        init_field(self, "commit", commit)
        init_field(self, "source", source)
        init_field(self, "paths", paths)
        init_field(self, "started", started)

    def command(self) -> str:
        """The command that finishes it (paths are relative to the repository root)."""
        import shlex

        if self.paths is None:
            return f"dsv checkout {shlex.quote(self.rev)}"
        return f"dsv checkout {shlex.quote(self.rev)} -- " + " ".join(shlex.quote(p) for p in self.paths) + " (from the repository root)"

    def to_json_bytes(self) -> bytes:
        """The record's canonical JSON document."""
        from dsv.history.documents import json_time

        return canonical_json(
            {
                "commit": self.commit,
                "format": DOCUMENT_FORMAT,
                "paths": None if self.paths is None else list(self.paths),
                "rev": self.rev,
                "source": self.source,
                "started": json_time(self.started),
                "type": "checkout",
            }
        )


def read_record(dsv_dir: str) -> CheckoutRecord | None:
    """The pending checkout, or ``None``."""
    path = os.path.join(dsv_dir, RECORD_NAME)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StorageError("read", path, err) from err
    from dsv.worktree.pending_model import CheckoutRecordModel

    try:
        model = CheckoutRecordModel.from_json_bytes(data, what=path)
    except CorruptMetadataError as err:
        err.hint = f"a checkout stopped part-way and its record is damaged; run 'dsv checkout --force REV' to restore a version (it replaces {path})"
        raise
    return CheckoutRecord(model.rev, model.commit, model.source, model.paths, model.started)


def write_record(dsv_dir: str, record: CheckoutRecord) -> None:
    """Record a checkout before it changes the tree (durable)."""
    atomic_write_bytes(os.path.join(dsv_dir, RECORD_NAME), record.to_json_bytes())


def clear_record(dsv_dir: str) -> None:
    """The checkout finished.

    Not made durable (no folder fsync, ~2 ms a checkout): a record that a
    power cut brings back is stale once HEAD names its target and its paths
    hold the target's version (status, commit and checkout delete it), and
    where a file the switch wrote came back empty (working-tree files are not
    fsynced, as in git) it rightly says to run the checkout again.
    """
    try:
        os.unlink(os.path.join(dsv_dir, RECORD_NAME))
    except FileNotFoundError:
        pass
