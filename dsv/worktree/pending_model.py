"""The schema of record of ``.dsv/CHECKOUT`` (docs/format.md): a strict pydantic model.

Imported only to read a record back (after a checkout stopped part-way), so that
an ordinary checkout does not pay for importing pydantic;
:class:`dsv.worktree.pending.CheckoutRecord` writes the same document.
"""

from __future__ import annotations

from typing import Literal

from dsv.base.ondisk import OnDiskModel
from dsv.history.objects import AwareDatetime, ObjectIdStr


class CheckoutRecordModel(OnDiskModel):
    """A checkout in progress, as validated when read."""

    type: Literal["checkout"] = "checkout"
    rev: str
    commit: ObjectIdStr
    source: ObjectIdStr | None = None
    paths: tuple[str, ...] | None = None
    started: AwareDatetime
