"""Property: commit then checkout reproduces any tree byte for byte."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsv

from conftest import read_tree

_name = st.text(alphabet=st.sampled_from(list("ab-_ .üñ\n") + ["日", "x"]), min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..", ".dsv", ".git", ".dsvignore") and "/" not in s
)
_path = st.lists(_name, min_size=1, max_size=3).map("/".join)
_content = st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"same content", b"\x00" * 64]))
_kind = st.sampled_from(["file", "file", "file", "exec", "link"])


def _consistent(paths: list[str]) -> list[str]:
    """Drop paths that would need a file and a folder at the same place."""
    out: list[str] = []
    taken: set[str] = set()
    folders: set[str] = set()
    for p in paths:
        parts = p.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if p in taken or p in folders or prefixes & taken:
            continue
        out.append(p)
        taken.add(p)
        folders |= prefixes
    return out


_tree = st.lists(st.tuples(_path, _content, _kind), max_size=12).map(
    lambda items: {p: (c, k) for p, c, k in items if p in set(_consistent([q for q, _, _ in items]))}
)


def _materialize(root: Path, tree: dict[str, tuple[bytes, str]]) -> None:
    for entry in list(root.iterdir()):
        if entry.name == ".dsv":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for p, (content, kind) in tree.items():
        full = root / p
        full.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            os.symlink(content.decode("latin-1").replace("\x00", "0") or "target", full)
        else:
            full.write_bytes(content)
            if kind == "exec":
                os.chmod(full, 0o755)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tree, _tree)
def test_commit_checkout_round_trip(first: dict[str, tuple[bytes, str]], second: dict[str, tuple[bytes, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = dsv.Repo.init(root)
        _materialize(root, first)
        snap1 = read_tree(root)
        c1 = repo.commit("one", allow_empty=True)
        _materialize(root, second)
        snap2 = read_tree(root)
        c2 = repo.commit("two", allow_empty=True)
        repo.checkout(c1.id)
        assert read_tree(root) == snap1
        assert repo.status().clean
        repo.checkout(c2.id)
        assert read_tree(root) == snap2
        assert repo.status().clean
        for p, (content, kind) in second.items():
            if kind != "link":
                assert repo.read_file(c2.id, p) == content
                assert bool(os.stat(root / p).st_mode & 0o100) == (kind == "exec")
