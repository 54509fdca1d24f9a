"""CSV is read with one fixed dialect in every version, and every line ending (issue 8b, items 1 and 2).

Sniffing the quote and escape characters per version let one row added in B
(``"c"``) change how A's ``'a'`` read: a false relabel. The dialect is RFC 4180
(quote ``"``, a quote inside a quoted value doubled), the delimiter comes from the
extension, and ``dsv.toml`` may declare another dialect for a table. A file whose
lines end in a mix of CRLF and LF reads like either; a file that cannot be read
is an error naming the file, the version and the line.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dsv
from dsv.base.errors import CorruptMetadataError, SampleSourceError
from dsv.semantic.declaration import Declaration, TableSource, parse_declaration
from dsv.semantic.report import SourceDiff

from conftest import run_dsv, write_tree


def _two(repo: dsv.Repo, root: Path, a: dict, b: dict) -> None:
    write_tree(root, a)
    repo.commit("a")
    write_tree(root, b)
    repo.commit("b")


def _diff(repo: dsv.Repo, path: str = "t.csv", rows: int | None = None, **extra: object) -> SourceDiff:
    table = TableSource(path=path, key=["id"], label="label", **extra)  # type: ignore[arg-type]
    return repo.semantic_diff("HEAD~1", "HEAD", declaration=Declaration(tables=[table]), rows=rows).sources[0]


def _summary(src: SourceDiff) -> tuple:
    t = src.totals
    return (t.added, t.removed, t.relabeled, t.modified, t.unchanged), {c.cls: (c.before, c.after) for c in src.classes}


# -- one dialect in both versions -----------------------------------------------------


def test_single_quotes_are_text_whatever_another_version_quotes(repo: dsv.Repo, repo_dir: Path) -> None:
    """The reported case: A alone would sniff ' as the quote; B's "c" would not."""
    _two(repo, repo_dir, {"t.csv": "id,label\n1,'a'\n2,b\n"}, {"t.csv": "id,label\n1,'a'\n2,b\n3,\"c\"\n"})
    totals, classes = _summary(_diff(repo))
    assert totals == (1, 0, 0, 0, 2)
    assert classes == {"'a'": (1, 1), "b": (1, 1), "c": (0, 1)}


def test_doubled_quotes_and_backslashes_read_as_rfc_4180(repo: dsv.Repo, repo_dir: Path) -> None:
    a = 'id,label,note\n1,"p""q",x\\y\n2,b,"a,b"\n'
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "3,'c',\\\n"})
    src = _diff(repo, rows=None)
    assert _summary(src) == ((1, 0, 0, 0, 2), {'p"q': (1, 1), "b": (1, 1), "'c'": (0, 1)})
    assert src.cells == ()


def test_a_backslash_escaped_quote_is_an_error_naming_the_line_and_the_escape_key(repo: dsv.Repo, repo_dir: Path) -> None:
    """``"x\\"y"`` is not RFC 4180: refused with the line, never read some guessed way."""
    _two(repo, repo_dir, {"t.csv": 'id,label\n1,"x\\"y"\n2,b\n'}, {"t.csv": 'id,label\n1,"x\\"y"\n2,b\n3,"p""q"\n'})
    with pytest.raises(SampleSourceError) as info:
        _diff(repo)
    err = info.value
    assert "t.csv at HEAD~1" in err.message and "line 2" in err.message, err.message
    assert "escape" in (err.hint or ""), err.hint
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", cwd=repo_dir)
    stderr = proc.stderr.decode()
    assert proc.returncode != 0 and "line 2" in stderr and "t.csv at HEAD~1" in stderr, stderr
    assert "/objects/" not in stderr and "Possible fixes" not in stderr, stderr


def test_a_declared_escape_reads_backslash_escapes(repo: dsv.Repo, repo_dir: Path) -> None:
    toml = '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "label"\nescape = "\\\\"\n'
    a = 'id,label,note\n1,a,"x\\"y"\n2,b,z\n'
    _two(repo, repo_dir, {"t.csv": a, "dsv.toml": toml}, {"t.csv": a + '3,b,"p\\"q"\n'})
    src = repo.semantic_diff("HEAD~1", "HEAD", rows=None).sources[0]
    assert _summary(src) == ((1, 0, 0, 0, 2), {"a": (1, 1), "b": (1, 2)})
    assert src.cells == ()


def test_a_declared_delimiter_and_quote(repo: dsv.Repo, repo_dir: Path) -> None:
    toml = "[[tables]]\npath = \"t.csv\"\nkey = \"id\"\nlabel = \"label\"\ndelimiter = \";\"\nquote = \"'\"\n"
    a = "id;label\n1;'a;b'\n2;'it''s'\n"
    _two(repo, repo_dir, {"t.csv": a, "dsv.toml": toml}, {"t.csv": a + '3;"c"\n'})
    src = repo.semantic_diff("HEAD~1", "HEAD").sources[0]
    assert _summary(src) == ((1, 0, 0, 0, 2), {"a;b": (1, 1), "it's": (1, 1), '"c"': (0, 1)})


def test_tsv_reads_tabs_and_a_declared_delimiter_overrides_the_extension(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id\tlabel\n1\t'a'\n2\tb,c\n"
    _two(repo, repo_dir, {"t.tsv": a, "u.tsv": a.replace("\t", "|")}, {"t.tsv": a + '3\t"c"\n', "u.tsv": (a + '3\t"c"\n').replace("\t", "|")})
    assert _summary(_diff(repo, "t.tsv")) == ((1, 0, 0, 0, 2), {"'a'": (1, 1), "b,c": (1, 1), "c": (0, 1)})
    assert _summary(_diff(repo, "u.tsv", delimiter="|")) == ((1, 0, 0, 0, 2), {"'a'": (1, 1), "b,c": (1, 1), "c": (0, 1)})


def test_comment_and_skip_are_never_sniffed(repo: dsv.Repo, repo_dir: Path) -> None:
    """A row starting with # is a row, in every version."""
    a = "id,label\n#1,a\n2,b\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "3,c\n"})
    totals, classes = _summary(_diff(repo))
    assert totals == (1, 0, 0, 0, 2) and classes == {"a": (1, 1), "b": (1, 1), "c": (0, 1)}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('delimiter = ";;"', "one character"),
        ('quote = "ab"', "one character"),
        ('delimiter = "\\n"', "line break"),
        ('delimiter = "\'"\nquote = "\'"', "differ"),
        ('path = "t.parquet"\ndelimiter = ";"', "CSV"),
    ],
)
def test_dialect_keys_are_validated(entry: str, problem: str) -> None:
    toml = '[[tables]]\nkey = "id"\nlabel = "label"\n' + ("" if entry.startswith("path") else 'path = "t.csv"\n') + entry + "\n"
    with pytest.raises(CorruptMetadataError) as info:
        parse_declaration(toml.encode(), where="dsv.toml")
    assert problem in str(info.value), str(info.value)


# -- line endings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (b"id,label\r\n1,a\r\n2,b\r\n", b"id,label\r\n1,a\r\n2,b\r\n3,c\n4,d\n"),  # CRLF file, LF rows appended
        (b"id,label\n1,a\n2,b\n", b"id,label\n1,a\n2,b\n3,c\r\n4,d\r\n"),  # the reverse
        (b"id,label\n1,a\n2,b\n", b"id,label\r\n1,a\n2,b\r\n3,c\n4,d"),  # every other line, no final newline
    ],
)
def test_mixed_line_endings_read_like_either(repo: dsv.Repo, repo_dir: Path, a: bytes, b: bytes) -> None:
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = _diff(repo, rows=None)
    assert _summary(src) == ((2, 0, 0, 0, 2), {"a": (1, 1), "b": (1, 1), "c": (0, 1), "d": (0, 1)})
    assert src.cells == ()


def test_mixed_line_endings_keep_line_breaks_inside_quotes(repo: dsv.Repo, repo_dir: Path) -> None:
    a = b'id,label,note\r\n1,a,"two\r\nlines"\r\n2,b,"x\ny"\r\n'
    b = a + b'3,c,"p""q\r\n"\n'
    _two(repo, repo_dir, {"t.csv.gz": gzip.compress(a)}, {"t.csv.gz": gzip.compress(b)})
    src = _diff(repo, "t.csv.gz", rows=None)
    assert _summary(src) == ((1, 0, 0, 0, 2), {"a": (1, 1), "b": (1, 1), "c": (0, 1)})
    assert src.cells == ()
    # The values inside quotes are kept byte for byte: a changed line break is a change.
    write_tree(repo_dir, {"t.csv.gz": gzip.compress(b.replace(b'"two\r\nlines"', b'"two\nlines"'))})
    repo.commit("c")
    assert [(c.column, c.old, c.new) for c in _diff(repo, "t.csv.gz", rows=None).cells] == [("note", "two\r\nlines", "two\nlines")]


def test_an_unreadable_file_with_mixed_line_endings_names_file_version_and_line(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": b"id,label\r\n1,a\r\n"}, {"t.csv": b'id,label\r\n1,a\r\n2,b\n3,"c"d\n'})
    with pytest.raises(SampleSourceError) as info:
        _diff(repo)
    assert "t.csv at HEAD:" in info.value.message and "line 4" in info.value.message, info.value.message


def test_a_ragged_row_names_its_line(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n"}, {"t.csv": "id,label\n1,a\n2,b,extra\n"})
    with pytest.raises(SampleSourceError) as info:
        _diff(repo)
    assert "t.csv at HEAD:" in info.value.message and "line 3" in info.value.message, info.value.message


# -- the line-break normaliser, against a plain byte-by-byte model -------------------------


def _model_normalise(data: bytes, quote: bytes, escape: bytes) -> tuple[bytes, set[bytes]]:
    out, kinds, in_quotes, i = bytearray(), set(), False, 0
    while i < len(data):
        c = data[i : i + 1]
        if in_quotes:
            if escape and escape != quote and c == escape:
                out += data[i : i + 2]
                i += 2
                continue
            if c == quote:
                in_quotes = False
        elif quote and c == quote:
            in_quotes = True
        elif c == b"\r":
            crlf = data[i + 1 : i + 2] == b"\n"
            kinds.add(b"\r\n" if crlf else b"\r")
            out += b"\n"
            i += 2 if crlf else 1
            continue
        elif c == b"\n":
            kinds.add(b"\n")
        out += c
        i += 1
    return bytes(out), kinds


@settings(max_examples=1000, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b",", b'"', b"\\", b"\r", b"\n", b"\r\n"]), max_size=40).map(b"".join),
    dialect=st.sampled_from([(b'"', b'"'), (b'"', b"\\"), (b"", b""), (b"'", b"")]),
    chunk=st.integers(1, 9),
)
@example(data=b'a\r"x"\nb', dialect=(b'"', b'"'), chunk=9)  # a CR and an LF apart, around a quoted value
def test_normalise_newlines_matches_a_byte_model(data: bytes, dialect: tuple[bytes, bytes], chunk: int) -> None:
    import io

    from dsv.semantic.table_files import normalise_newlines

    out = io.BytesIO()
    kinds = normalise_newlines(io.BytesIO(data), out, *dialect, chunk_size=chunk)
    assert (out.getvalue(), kinds) == _model_normalise(data, *dialect)
