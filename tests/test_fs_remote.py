"""``dsv://`` straight from a remote (issue 11): S3 on loopback (moto) and a folder remote.

Reads are compared with the bytes a checkout of the same revision writes;
fetches are counted at the remote (objects and requests), and a second read of
anything is served by the local cache.
"""

from __future__ import annotations

import io
import os
import random
import sys
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
import dsv.base.hashing  # noqa: E402
from dsv.api.fs import DsvFileSystem  # noqa: E402
from faultutil import read_tree, write_files  # noqa: E402


def _big_parquet(n: int = 400_000) -> bytes:
    rng = random.Random(4)
    table = pa.table(
        {
            "id": list(range(n)),
            "label": [rng.choice(["cat", "dog", "bird"]) for _ in range(n)],
            "score": [rng.random() for _ in range(n)],
            "note": [f"sample {i} {rng.random()}" for i in range(n)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=50_000)
    return buf.getvalue()


@pytest.fixture(scope="module")
def parquet_bytes() -> bytes:
    data = _big_parquet()
    assert len(data) > 8 * 1024 * 1024  # stored as content-defined chunks
    return data


def _publish(root: Path, url: str, options: dict[str, str], parquet: bytes) -> dict[str, dict[str, bytes]]:
    """A repository with tags v1 and v2 pushed to ``url``; returns each version's files."""
    rng = random.Random(5)
    v1 = {
        "labels.csv": b"id,label\n1,cat\n2,dog\n",
        "data/train.parquet": parquet,
        **{f"images/cat/{i:03d}.png": rng.randbytes(300) for i in range(4)},
    }
    write_files(root, v1)
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    repo.create_tag("v1")
    v2 = dict(v1)
    v2["labels.csv"] = b"id,label\n1,cat\n2,cat\n3,bird\n"
    v2["images/bird/000.png"] = rng.randbytes(700)
    write_files(root, v2)
    repo.commit("v2")
    repo.create_tag("v2")
    repo.add_remote("origin", url, options)
    repo.push("origin", all_branches=True, tags=True)
    return {"v1": v1, "v2": v2}


@pytest.fixture
def s3_published(s3_env, tmp_path: Path, parquet_bytes: bytes, monkeypatch: pytest.MonkeyPatch):
    url = f"s3://{s3_env.new_bucket()}/datasets/penguins"
    options = {"endpoint_url": s3_env.endpoint}
    files = _publish(tmp_path / "origin", url, options, parquet_bytes)
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return url, options, files


def test_pandas_pyarrow_and_polars_read_a_version_straight_from_s3(s3_published) -> None:
    import pandas as pd
    import polars as pl

    url, options, files = s3_published
    so = {"options": options}
    for rev in ("v1", "v2"):
        want = files[rev]
        got = pd.read_csv(f"dsv://{rev}@{url}/labels.csv", storage_options=so)
        assert got.equals(pd.read_csv(io.BytesIO(want["labels.csv"])))
        frame = pd.read_parquet(f"dsv://{rev}@{url}/data/train.parquet", storage_options=so)
        assert frame.equals(pq.read_table(io.BytesIO(want["data/train.parquet"])).to_pandas())
    fs = DsvFileSystem(repo=url, rev="v2", options=options)
    assert pq.read_table("data/train.parquet", filesystem=fs).equals(pq.read_table(io.BytesIO(files["v2"]["data/train.parquet"])))
    with fs.open("data/train.parquet", "rb") as f:
        assert pl.read_parquet(f).shape == (400_000, 4)
    with fsspec.open(f"dsv://v2@{url}/images/bird/000.png", "rb", options=options) as f:
        assert f.read() == files["v2"]["images/bird/000.png"]
    # The whole tree, byte for byte, as a checkout of v2 writes it.
    assert {p: fs.cat_file(p) for p in fs.find("")} == files["v2"]
    assert sorted(fs.ls("images", detail=False)) == ["images/bird", "images/cat"]
    assert fs.info("labels.csv")["size"] == len(files["v2"]["labels.csv"])
    # Every other revision syntax works against the remote's refs.
    assert DsvFileSystem(repo=url, rev="v2~1", options=options).cat_file("labels.csv") == files["v1"]["labels.csv"]
    assert DsvFileSystem(repo=url, rev="main", options=options).commit_id == fs.commit_id
    assert DsvFileSystem(repo=url, rev=fs.commit_id[:12], options=options).commit_id == fs.commit_id


def test_a_parquet_column_from_s3_fetches_a_fraction_of_the_file_once(s3_published) -> None:
    url, options, files = s3_published
    size = len(files["v1"]["data/train.parquet"])
    fs = DsvFileSystem(repo=url, rev="v1", options=options)
    chunks = fs._view.chunk_list(fs.info("data/train.parquet")["oid"])
    assert chunks is not None and len(chunks) >= 8
    local = fs._view.local
    before = fs.fetched
    with fs.open("data/train.parquet", "rb") as f:
        pf = pq.ParquetFile(f)
        assert pf.metadata.num_rows == 400_000
        col = pf.read_row_group(0, columns=["label"])
    assert col.num_rows == 50_000
    held = [c for c, _ in chunks if local.has(c)]
    held_bytes = sum(n for c, n in chunks if local.has(c))
    assert fs.fetched - before == len(held) < len(chunks)
    assert held_bytes < size / 3, (held_bytes, size)
    # Read again (a new filesystem, same cache): nothing more is fetched.
    again = DsvFileSystem(repo=url, rev="v1", options=options, skip_instance_cache=True)
    assert again is not fs and again._view is not fs._view
    with again.open("data/train.parquet", "rb") as f:
        pq.ParquetFile(f).read_row_group(0, columns=["label"])
    assert again.fetched == 0
    # Once every chunk has been read, the file's chunk list is stored (verified) too.
    assert again.cat_file("data/train.parquet") == files["v1"]["data/train.parquet"]
    assert again._view.local.has(again.info("data/train.parquet")["oid"])


def test_misses_name_the_revision_and_the_remote(s3_published, tmp_path: Path) -> None:
    url, options, _ = s3_published
    with pytest.raises(FileNotFoundError, match="nope"):
        DsvFileSystem(repo=url, rev="nope", options=options)
    fs = DsvFileSystem(repo=url, rev="v1", options=options)
    with pytest.raises(FileNotFoundError, match="v1"):
        fs.info("images/bird/000.png")  # only in v2
    with pytest.raises(IsADirectoryError):
        fs.cat_file("images")
    with pytest.raises(PermissionError, match="read-only"):
        fs.pipe_file("x", b"1")
    bucket = url.split("/")[2]
    with pytest.raises(FileNotFoundError, match="no dsv remote"):
        fsspec.open(f"dsv://v1@s3://{bucket}/elsewhere/labels.csv", "rb", options=options).open()
    with pytest.raises(FileNotFoundError, match="no dsv repository or remote"):
        fsspec.open(f"dsv://v1@{tmp_path}/nothing/here.csv", "rb").open()


def test_reads_from_a_remote_share_the_store_of_a_clone_of_it(s3_published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, options, files = s3_published
    clone = dsv.Repo.clone(url, tmp_path / "clone", depth=1, paths=["labels.csv"], options=options)
    inner = clone.repository.local_store
    oid = dsv.base.hashing.hash_bytes(files["v2"]["images/bird/000.png"])
    assert not inner.has(oid)
    monkeypatch.chdir(tmp_path / "clone")
    fs = DsvFileSystem(repo=url, rev="v2")  # options come from the clone's configured remote
    assert fs.cat_file("images/bird/000.png") == files["v2"]["images/bird/000.png"]
    assert dsv.Repo(tmp_path / "clone").repository.local_store.has(oid)  # fetched into the clone's own store
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pack"))


def test_a_torch_style_loop_over_a_remote_fetches_each_object_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "origin"
    rng = random.Random(7)
    images = {f"img/{i % 10}/{i:05d}.png": rng.randbytes(64) for i in range(10_000)}
    write_files(root, images)
    repo = dsv.Repo.init(root)
    repo.commit("images")
    remote = tmp_path / "remote"
    repo.add_remote("origin", str(remote))
    repo.push("origin", all_branches=True)
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    fs = DsvFileSystem(repo=str(remote), rev="main")
    order = list(images)
    for epoch in range(2):
        rng.shuffle(order)  # as a DataLoader with shuffle=True would
        before = fs.fetched
        for p in order[:2500]:
            with fs.open(p, "rb") as f:
                assert f.read() == images[p]
        if epoch == 0:
            first = fs.fetched - before
        else:
            second_new = fs.fetched - before
    distinct = {dsv.base.hashing.hash_bytes(v) for v in images.values()}
    assert len(distinct) == 10_000
    # Epoch 1 fetched its 2,500 images and the manifest chunks holding them; epoch 2 only the images it had not read.
    assert 2500 <= first <= 2500 + 20
    seen_twice = 2500 - second_new
    assert second_new <= 2500 and seen_twice >= 0
    # A batch prefetch of everything left costs one fetch, then the whole tree reads locally.
    fs.prefetch(list(images))
    requests = fs.requests
    fetched = fs.fetched
    assert {p: fs.cat_file(p) for p in images} == images
    assert fs.fetched == fetched and fs.requests == requests


def test_a_forged_object_on_the_remote_is_refused_and_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "origin"
    write_files(root, {"a.txt": b"hello world\n" * 50, "b.txt": b"other\n"})
    repo = dsv.Repo.init(root)
    repo.commit("one")
    remote = tmp_path / "remote"
    repo.add_remote("origin", str(remote))
    repo.push("origin", all_branches=True)
    oid = dsv.base.hashing.hash_bytes(b"hello world\n" * 50)
    # Corrupt the file's bytes inside its remote pack (stored raw: flip the byte where the content is).
    packs = sorted((remote / "packs").glob("pack-*.pack"))
    flipped = False
    for p in packs:
        data = bytearray(p.read_bytes())
        at = data.find(b"hello world\n" * 5)
        if at >= 0:
            data[at] ^= 0x20
            p.chmod(0o644)
            p.write_bytes(bytes(data))
            flipped = True
    assert flipped
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    fs = DsvFileSystem(repo=str(remote), rev="main")
    with pytest.raises(OSError, match=oid[:10]):
        fs.cat_file("a.txt")
    assert fs.cat_file("b.txt") == b"other\n"
    assert not fs._view.local.has(oid)
    assert read_tree(root)["a.txt"] == b"hello world\n" * 50


def test_bad_remotes_raise_the_os_errors_fsspec_users_expect(s3_env, s3_auth_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(OSError, match="dsv://v1") as info:
        DsvFileSystem(repo="s3://bucket/penguins", rev="v1", options={"endpoint_url": f"http://127.0.0.1:{port}"})
    assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(PermissionError, match="dsv://v1"):
        DsvFileSystem(repo="s3://bucket/penguins", rev="v1", options={"endpoint_url": s3_auth_server.endpoint})
    with pytest.raises(FileNotFoundError, match="dsv://v1"):
        DsvFileSystem(repo=f"s3://{s3_env.new_bucket()}/empty", rev="v1", options={"endpoint_url": s3_env.endpoint})
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pack"))
