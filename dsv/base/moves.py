"""The one rule that pairs removed and added files into moves, for every command.

A file removed at one path and a file added at another with the same content id
are a move. When several removed and added files share a content id, the k-th
removed path and the k-th added path, each in path order (UTF-8 byte order),
are paired; the rest stay removed or added. ``status``, ``commit`` summaries,
``diff`` and the semantic diff all use this function, so they always agree,
whatever the order a directory listing returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Hashable


def _utf8_key(path: str) -> bytes:
    return path.encode("utf-8", "surrogatepass")


def pair_moves(removed: Iterable[tuple[str, Hashable]], added: Iterable[tuple[str, Hashable]]) -> list[tuple[str, str]]:
    """``(old path, new path)`` pairs, sorted by new path, from ``(path, content id)`` pairs."""
    gone: dict[Hashable, list[str]] = {}
    for path, oid in removed:
        gone.setdefault(oid, []).append(path)
    new: dict[Hashable, list[str]] = {}
    for path, oid in added:
        if oid in gone:
            new.setdefault(oid, []).append(path)
    pairs: list[tuple[str, str]] = []
    for oid, news in new.items():
        olds = sorted(gone[oid], key=_utf8_key)
        pairs.extend(zip(olds, sorted(news, key=_utf8_key)))
    pairs.sort(key=lambda p: _utf8_key(p[1]))
    return pairs
