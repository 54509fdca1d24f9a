"""Table sources: read two versions of an annotation table and join them by key.

How a column reads is decided once, from both versions, so that a value added
in one version never changes how the other values read (docs/diff-format.md,
"Column types"):

* **CSV** is read as the file writes it (every cell as text). Keys, labels and
  slice values are that text (``T`` stays ``T``, ``1.0`` stays ``1.0``). Other
  cells compare as values of the type that reads the column in *both* versions
  (DuckDB's sniffer type when both sides agree, a number when both are numbers,
  text otherwise): ``0.5`` equals ``0.50`` in a numeric column, and a column
  holding text in either version compares as written. Numbers and keys are read
  exactly from their digits (:func:`exact_number`), never through a double.
* **Parquet and JSONL** carry their types. A column of the same type on both
  sides compares natively; numbers of different types compare as numbers;
  anything else, and every key, label and slice value of a mixed column,
  compares as canonical text (strings unquoted, whole floats as integers).
* ``types = { col = "..." }`` in ``dsv.toml`` pins a column's type (``integer``
  reads ``1.0`` as 1 and never rounds ``1.5``; a value that does not read as its
  type keeps its text and is warned about).

The joined table has one row per sample: ``in_a``, ``in_b``, the key, ``label_a``,
``label_b``, each slice on both sides, ``relabeled`` and ``changed`` (content:
other columns, and the bytes of the file a row names); the summaries in
:mod:`dsv.semantic.engine` are group-bys over it, and count a slice that differs
as a move, apart from ``changed``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv.base.errors import SampleSourceError
from dsv.semantic.declaration import TableSource
from dsv.semantic.detail import nested_detail
from dsv.semantic.engine import lit, q, summarize
from dsv.semantic.report import CellChange, SchemaChange, SourceDiff

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE", "DECIMAL")
PINNED_TYPES = {"string": "VARCHAR", "integer": "HUGEINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
"""The DuckDB type behind each type a ``dsv.toml`` may pin."""


@dataclass(frozen=True)
class Version:
    """One version of a table, exposed as a view.

    Attributes:
        view: the view's name.
        types: column -> type as the file reads on its own (CSV: DuckDB's sniffer),
            for the schema section.
        rows: number of rows.
        as_text: the view holds every cell as the text the file writes (CSV).
    """

    view: str
    types: dict[str, str]
    rows: int
    as_text: bool


# -- reading -------------------------------------------------------------------------


def _csv_options(source: TableSource, *, compressed: bool) -> str:
    """read_csv options fixing everything but the column types: the same dialect in every version.

    DuckDB's sniffer would otherwise pick the quote, escape and comment characters,
    the rows to skip and the delimiter per version, so that one row added in B (a
    value written ``"c"``) changed how A's ``'a'`` read. A ragged row is then an
    error naming its line, not a reason to guess another dialect.
    """
    d = source.dialect
    gz = ", compression='gzip'" if compressed else ""
    return f"header=true, delim={lit(d.delimiter)}, quote={lit(d.quote)}, escape={lit(d.escape)}, comment='', skip=0{gz}"


def _reader(path: str, source: TableSource, *, as_text: bool = False, compressed: bool | None = None) -> str:
    fmt = source.resolved_format
    if fmt == "parquet":
        return f"read_parquet({lit(path)})"
    if compressed is None:
        compressed = _compressed(source)
    if fmt == "jsonl":
        gz = ", compression='gzip'" if compressed else ""
        return f"read_json({lit(path)}, format='newline_delimited'{gz})"
    text = ", all_varchar=true" if as_text else ", sample_size=-1"
    return f"read_csv({lit(path)}, auto_detect=true, {_csv_options(source, compressed=compressed)}{text})"


def _open(con: "duckdb.DuckDBPyConnection", view: str, disk_path: str, source: TableSource, *, compressed: bool | None, table: bool) -> tuple[dict[str, str], dict[str, str], int]:
    """(types as the file reads on its own, columns of the view, rows); ``table``: materialise (the file is temporary)."""
    as_text = source.resolved_format == "csv"
    if as_text:
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(disk_path, source, compressed=compressed)}").fetchall()}
    kind = "TABLE" if table else "VIEW"
    con.execute(f"CREATE TEMP {kind} {q(view)} AS SELECT * FROM {_reader(disk_path, source, as_text=as_text, compressed=compressed)}")
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(view)}").fetchall()}
    if not as_text:
        types = cols
    # Surfaces parse errors now, with their line; free for Parquet (metadata), and the
    # row count lets the key check run inside the join (see diff_table).
    (rows,) = con.execute(f"SELECT count(*) FROM {q(view)}").fetchall()[0]
    return types, cols, int(rows)


def load_table(con: "duckdb.DuckDBPyConnection", view: str, disk_path: str, source: TableSource, side: str) -> Version:
    """Expose one version of a table source as a view.

    A CSV file is read in the table's one dialect (:func:`_csv_options`), sniffed
    over every row only for the types it reads as on its own (the schema section),
    and exposed as text, as written. A CSV whose lines end in a mix of CRLF and LF
    (rows appended by another tool), which DuckDB cannot parse, is read from a copy
    with every line break outside quotes written LF; that costs a pass over the
    file only when the plain read has failed. Parse errors become one line naming
    the file, the version and, where DuckDB gives it, the line.
    """
    import duckdb

    as_text = source.resolved_format == "csv"
    try:
        types, cols, rows = _open(con, view, disk_path, source, compressed=None, table=False)
    except duckdb.Error as err:
        con.execute(f"DROP VIEW IF EXISTS {q(view)}")
        if not as_text:
            detail = _clean_duckdb_message(str(err), [disk_path], f"{source.path}@{side}")
            raise SampleSourceError(f"cannot read {source.path} at {side}: {detail}", hint="fix the file, or the [[tables]] entry in dsv.toml") from err
        types, cols, rows = _open_mixed_newlines(con, view, disk_path, source, side, err)
    if list(types) != list(cols):  # pragma: no cover - both reads share the header
        types = {c: types.get(c, "VARCHAR") for c in cols}
    # Only the key must exist on every side; a label, slice or file column added in a
    # later version is NULL on the versions without it.
    missing = [c for c in source.key if c not in cols]
    if missing:
        message = f"{source.path} at {side} has no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(cols)})"
        hint = "check key/label/slices/file in dsv.toml, or the --key/--label/--slice/--file flags"
        other = _other_delimiter(source, cols) if as_text else None
        if other is not None:
            # One column whose name holds another separator: the file is read with the wrong
            # delimiter. Said in the message itself, which `dsv check` shows without the hint.
            d = source.dialect
            how = "declared in dsv.toml" if source.delimiter else "from the extension: ',' for .csv, a tab for .tsv"
            message += (
                f"; it was read with the delimiter {_char_name(d.delimiter)} ({how}); "
                f"for values separated by {_char_name(other)}, declare delimiter = {_toml_str(other)} in its [[tables]] entry of dsv.toml"
            )
            hint = "see 'CSV dialect' in docs/diff-format.md"
        raise SampleSourceError(message, hint=hint)
    return Version(view, types, rows, as_text)


def _other_delimiter(source: TableSource, cols: dict[str, str]) -> str | None:
    """The separator a one-column CSV's header holds, if it is read with another delimiter."""
    if len(cols) != 1:
        return None
    header = next(iter(cols))
    return next((c for c in (";", "\t", "|", ",") if c != source.dialect.delimiter and c in header), None)


def _empty_like(con: "duckdb.DuckDBPyConnection", view: str, other: Version) -> Version:
    """A version with ``other``'s columns and no rows (a side where the table does not exist)."""
    con.execute(f"CREATE TEMP VIEW {q(view)} AS SELECT * FROM {q(other.view)} LIMIT 0")
    return Version(view, dict(other.types), 0, other.as_text)


def _char_name(c: str) -> str:
    return {"\t": "a tab", ",": "','", ";": "';'", "|": "'|'"}.get(c, repr(c))


def _toml_str(c: str) -> str:
    return '"\\t"' if c == "\t" else json.dumps(c)


def _open_mixed_newlines(
    con: "duckdb.DuckDBPyConnection", view: str, disk_path: str, source: TableSource, side: str, first: Exception
) -> tuple[dict[str, str], dict[str, str], int]:
    """After a failed CSV read: read a copy with LF line breaks if the file mixes them, else raise the failure, with its line."""
    import tempfile

    import duckdb

    name = f"{source.path} at {side}"
    d = source.dialect
    fd, copy = tempfile.mkstemp(prefix="dsv-newlines-", dir=_temp_dir(con))
    try:
        compressed = _compressed(source)
        with os.fdopen(fd, "wb") as dst, _open_raw(disk_path, compressed) as src:
            kinds = normalise_newlines(src, dst, d.quote.encode(), d.escape.encode())
        if len(kinds) < 2:
            raise _csv_error(con, disk_path, compressed, source, name, first, paths=[disk_path]) from first
        try:
            # A table, not a view: the copy is deleted on return.
            return _open(con, view, copy, source, compressed=False, table=True)
        except duckdb.Error as err:
            raise _csv_error(con, copy, False, source, name, err, paths=[copy, disk_path]) from err
    finally:
        try:
            os.unlink(copy)
        except OSError:
            pass


def _temp_dir(con: "duckdb.DuckDBPyConnection") -> str | None:
    """DuckDB's spill folder (the store's tmp folder for a diff), else the system's."""
    try:
        (where,) = con.execute("SELECT current_setting('temp_directory')").fetchall()[0]
    except Exception:  # pragma: no cover - every DuckDB has the setting
        return None
    return where if where and os.path.isabs(where) and os.path.isdir(where) else None


def _compressed(source: TableSource) -> bool:
    """Stored objects have no file extension: compression comes from the dataset path."""
    return source.path.lower().endswith(".gz")


def _open_raw(disk_path: str, compressed: bool) -> Any:
    import gzip

    return gzip.open(disk_path, "rb") if compressed else open(disk_path, "rb")


def normalise_newlines(src: Any, dst: Any, quote: bytes, escape: bytes, chunk_size: int = 1 << 22) -> set[bytes]:
    """Copy a CSV, writing every line break outside quoted values as LF; return the kinds of break seen there.

    Each break stays one break, so line numbers are unchanged; a break inside a
    quoted value (``"two\r\nlines"``) is kept byte for byte. With RFC 4180 quoting
    (``escape`` the quote, or none) the quotes alone tell inside from outside (a
    doubled quote closes and reopens the value), so the work is done by
    ``bytes.split`` and ``replace``; an ``escape`` of its own escapes the next byte
    inside quotes, which takes a byte-level scan of the special bytes.
    """
    if escape and escape != quote:
        return _normalise_escaped(src, dst, quote, escape, chunk_size)
    kinds: set[bytes] = set()
    in_quotes = False
    carry_cr = False  # the last chunk ended with a CR outside quotes (already written as LF)
    while True:
        chunk = src.read(chunk_size)
        if not chunk:
            break
        if carry_cr:
            carry_cr = False
            if chunk[:1] == b"\n":
                kinds.add(b"\r\n")
                chunk = chunk[1:]
            else:
                kinds.add(b"\r")
        parts = chunk.split(quote) if quote else [chunk]
        first = 1 if in_quotes else 0
        last_outside = (len(parts) - 1 - first) % 2 == 0
        trailing_cr = last_outside and parts[-1].endswith(b"\r")
        if trailing_cr:
            # Its LF, if any, starts the next chunk.
            carry_cr = True
            parts[-1] = parts[-1][:-1]
        outside = parts[first::2]
        text = b"\0".join(outside)  # a separator: no CR of one part pairs with the LF of the next
        crlf, cr, lf = text.count(b"\r\n"), text.count(b"\r"), text.count(b"\n")
        if crlf:
            kinds.add(b"\r\n")
        if cr > crlf:
            kinds.add(b"\r")
        if lf > crlf:
            kinds.add(b"\n")
        if cr:
            parts[first::2] = [p.replace(b"\r\n", b"\n").replace(b"\r", b"\n") for p in outside]
        if trailing_cr:
            parts[-1] += b"\n"
        dst.write(quote.join(parts) if quote else parts[0])
        in_quotes = (in_quotes + len(parts) - 1) % 2 == 1
    if carry_cr:
        kinds.add(b"\r")
    return kinds


def _normalise_escaped(src: Any, dst: Any, quote: bytes, escape: bytes, chunk_size: int) -> set[bytes]:
    """:func:`normalise_newlines` for a dialect whose escape character is not the quote."""
    specials = {b"\r", b"\n", escape} | ({quote} if quote else set())
    pattern = re.compile(b"[" + b"".join(re.escape(c) for c in sorted(specials)) + b"]")
    q_byte = quote[0] if quote else -1
    e_byte = escape[0]
    kinds: set[bytes] = set()
    in_quotes = False
    carry_cr = False  # the last chunk ended with a CR outside quotes (already written as LF)
    carry_escape = False  # the last chunk ended with an escape inside quotes
    while True:
        chunk = src.read(chunk_size)
        if not chunk:
            break
        skip_to = 0
        if carry_cr:
            carry_cr = False
            if chunk[:1] == b"\n":
                kinds.add(b"\r\n")
                skip_to = 1
            else:
                kinds.add(b"\r")
        start = skip_to
        if carry_escape:
            carry_escape = False
            skip_to = max(skip_to, 1)
        out = []
        for m in pattern.finditer(chunk, skip_to):
            i = m.start()
            if i < skip_to:
                continue
            c = chunk[i]
            if in_quotes:
                if c == e_byte:
                    if i + 1 == len(chunk):
                        carry_escape = True
                    skip_to = i + 2
                elif c == q_byte:
                    in_quotes = False
            elif c == q_byte:
                in_quotes = True
            elif c == 10:  # LF
                kinds.add(b"\n")
            elif c == 13:  # CR: written LF; a following LF is dropped
                out.append(chunk[start:i])
                out.append(b"\n")
                if i + 1 == len(chunk):
                    carry_cr = True
                    start = i + 1
                elif chunk[i + 1] == 10:
                    kinds.add(b"\r\n")
                    start = skip_to = i + 2
                else:
                    kinds.add(b"\r")
                    start = i + 1
        out.append(chunk[start:])
        dst.write(b"".join(out))
    if carry_cr:
        kinds.add(b"\r")
    return kinds


_DUCKDB_NOISE = ("LINE 1:", "Possible fixes", "Possible Solution", "file = ")
_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)\s*(?:Original Line: ?(.*?)\n)?(.*?)(?:\n|$)", re.S)
_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _clean_duckdb_message(message: str, disk_paths: list[str], name: str) -> str:
    """DuckDB's error as one line about the user's file: no SQL excerpt, temp paths or reader options."""
    for path in disk_paths:
        message = message.replace(path, name)
    m = _CSV_LINE.search(message)
    if m:
        line, original, reason = m.group(1), (m.group(2) or "").strip(), m.group(3).strip().rstrip(".")
        cols = _COLUMNS.search(reason)
        if cols:
            reason = f"expected {cols.group(1)} values (the header's), found {cols.group(2)}"
        reason = reason[:1].lower() + reason[1:]
        shown = original if len(original) <= 80 else original[:77] + "..."
        return f"line {line}: {reason}" + (f": {shown}" if shown else "")
    cut = min((i for i in (message.find(n) for n in _DUCKDB_NOISE) if i >= 0), default=len(message))
    return " ".join(message[:cut].split())[:400].rstrip(" .:") or "unreadable"


def _csv_error(
    con: "duckdb.DuckDBPyConnection", disk_path: str, compressed: bool, source: TableSource, name: str, err: Exception, *, paths: list[str]
) -> SampleSourceError:
    """The error for a CSV that cannot be read: with DuckDB's line where a strict re-read finds one, and a hint that fits."""
    message = str(err)
    if "CSV Error on Line" not in message:
        message = _csv_diagnosis(con, disk_path, compressed, source) or message
    detail = _clean_duckdb_message(message, paths, name)
    d = source.dialect
    declared = "declared" if any(x is not None for x in (source.delimiter, source.quote, source.escape)) else "RFC 4180"
    if "quote" in detail.lower():
        inside = "doubled" if d.escape == d.quote else f"escaped with {d.escape!r}" if d.escape else "not escaped"
        hint = (
            f"dsv reads every version of this table {'with its declared dialect' if declared == 'declared' else 'as RFC 4180'}: "
            f"values quoted with {repr(d.quote) if d.quote else 'nothing'}, a quote inside one {inside}; a file that escapes quotes with a backslash "
            f"declares escape = \"\\\\\" in its [[tables]] entry of dsv.toml"
        )
    elif "values (the header's)" in detail:
        hint = (
            f"every row needs as many values as the header; the delimiter is {_char_name(d.delimiter)}"
            + ("" if source.delimiter else " (from the extension: , for .csv, a tab for .tsv)")
            + ": declare another with delimiter = \";\" in the table's [[tables]] entry of dsv.toml"
        )
    elif "utf-8" in detail.lower() or "unicode" in detail.lower():
        hint = "dsv reads CSV as UTF-8: save the file as UTF-8"
    else:
        hint = "fix the file, or the [[tables]] entry in dsv.toml (delimiter, quote, escape)"
    return SampleSourceError(f"cannot read {name}: {detail}", hint=hint)


def _csv_diagnosis(con: "duckdb.DuckDBPyConnection", disk_path: str, compressed: bool, source: TableSource) -> str | None:
    """When DuckDB cannot sniff a CSV (no line in its error), re-read it with fixed text columns to find the bad line."""
    import csv
    import io

    import duckdb

    d = source.dialect
    try:
        with _open_raw(disk_path, compressed) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as f:
            reader = csv.reader(
                f,
                delimiter=d.delimiter,
                quotechar=d.quote or None,
                quoting=csv.QUOTE_MINIMAL if d.quote else csv.QUOTE_NONE,
                doublequote=d.escape == d.quote,
                escapechar=(d.escape or None) if d.escape != d.quote else None,
            )
            header = next(reader, None)
    except (OSError, csv.Error, EOFError):
        return None
    if not header or len(set(header)) != len(header):
        return None
    columns = "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in header) + "}"
    try:
        con.execute(f"SELECT count(*) FROM read_csv({lit(disk_path)}, auto_detect=false, columns={columns}, {_csv_options(source, compressed=compressed)})").fetchall()
    except duckdb.Error as err:
        return str(err)
    return None


# -- how a column reads ----------------------------------------------------------------


def _numeric(t: str | None) -> bool:
    return t is not None and t.startswith(_INTEGERS + _FLOATS)


def _integer(t: str | None) -> bool:
    return t in _INTEGERS


def _nested(t: str) -> bool:
    """Structs, maps, unions and lists (``VARCHAR[]``, ``INTEGER[3]``): compared as their JSON text when retyped."""
    return t.startswith(("STRUCT(", "MAP(", "UNION(")) or t.endswith("]")


def common_type(ta: str | None, tb: str | None) -> str:
    """The type that reads a column's values in both versions: the same type, a number, or text."""
    if ta is None or tb is None:
        return ta or tb or "VARCHAR"
    if ta == tb:
        return ta
    if _integer(ta) and _integer(tb):
        return "HUGEINT"
    if _numeric(ta) and _numeric(tb):
        return "DOUBLE"
    return "VARCHAR"


def _float_text(x: str) -> str:
    """A float as text; whole numbers as integers (1.0 -> "1"), so int columns widened to float keep their values."""
    return (
        f"(CASE WHEN isfinite({x}) AND {x} = floor({x}) AND abs({x}) < 1e18 THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) "
        f"ELSE CAST({x} AS VARCHAR) END)"
    )


def canon(x: str, typ: str) -> str:
    """SQL: a typed value as canonical text (strings as they are, whole floats as integers, JSON unquoted)."""
    if typ == "VARCHAR":
        return x
    if typ == "JSON":
        # A column mixing JSON types: each value by its own type, so "cat" reads as cat and 1.0 as 1;
        # objects and arrays as minified JSON, as nested types below.
        return (
            f"(CASE json_type({x}) WHEN 'VARCHAR' THEN json_extract_string({x}, '$') "
            f"WHEN 'DOUBLE' THEN {_float_text(f'CAST({x} AS DOUBLE)')} WHEN 'NULL' THEN NULL "
            f"WHEN 'OBJECT' THEN CAST(json({x}) AS VARCHAR) WHEN 'ARRAY' THEN CAST(json({x}) AS VARCHAR) "
            f"ELSE CAST({x} AS VARCHAR) END)"
        )
    if _nested(typ):
        return f"CAST(to_json({x}) AS VARCHAR)"
    if typ.startswith(_FLOATS):
        return _float_text(f"CAST({x} AS DOUBLE)")
    return f"CAST({x} AS VARCHAR)"


_PLAIN_NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
_CANONICAL_NUMBER = r"(0|-?[1-9][0-9]*)(\.[0-9]*[1-9])?|-0\.[0-9]*[1-9]"


def exact_number(text: str) -> str:
    """SQL: a number written in plain decimal notation as its canonical text, exactly; NULL for anything else.

    No ``+``, no leading zeros, no trailing fractional zeros, no ``-`` on zero:
    ``+2.00``, ``2.0`` and ``02`` are ``2``, ``0.50`` is ``0.5``. Computed on the
    digits, never through a double, so ``9007199254740993`` stays itself; the
    result is a valid JSON number. (Exponent forms like ``1e3`` are not plain.)
    """
    t = f"trim({text})"
    i = f"ltrim(regexp_extract({t}, '^[+-]?([0-9]*)', 1), '0')"
    f = f"rtrim(regexp_extract({t}, '\\.([0-9]*)$', 1), '0')"
    # Text already canonical (most integers, most decimals) is itself: one regex, not five.
    return (
        f"(CASE WHEN regexp_full_match({text}, '{_CANONICAL_NUMBER}') THEN {text} "
        f"WHEN regexp_full_match({t}, '{_PLAIN_NUMBER}') THEN concat("
        f"CASE WHEN starts_with({t}, '-') AND ({i} <> '' OR {f} <> '') THEN '-' ELSE '' END, "
        f"CASE WHEN {i} = '' THEN '0' ELSE {i} END, CASE WHEN {f} = '' THEN '' ELSE '.' || {f} END) END)"
    )


def exact_integer(text: str) -> str:
    """SQL: the canonical text of an integer written in plain notation, also as a whole decimal (``1.0``, ``2.00``); else NULL."""
    n = exact_number(text)
    return f"(CASE WHEN NOT contains({n}, '.') THEN {n} END)"


def cast_text(text: str, typ: str) -> str:
    """SQL: text read as ``typ``, NULL where it does not read as one.

    An integer is read exactly, from its digits: ``1.0`` is 1, ``1.5`` is no integer
    (never rounded), and one beyond HUGEINT is none either.
    """
    if typ == "VARCHAR":
        return text
    if _integer(typ):
        return f"TRY_CAST({exact_integer(text)} AS {typ})"
    return f"TRY_CAST({text} AS {typ})"


def declared_text(text: str, pinned: str) -> str:
    """SQL: the canonical text of a value of a declared type, NULL where the value is not one.

    ``integer`` and ``number`` are exact (:func:`exact_integer`, :func:`exact_number`);
    a number written with an exponent (``1e3``) reads through a double.
    """
    if pinned == "integer":
        return exact_integer(text)
    if pinned == "number":
        return f"coalesce({exact_number(text)}, {canon(f'TRY_CAST({text} AS DOUBLE)', 'DOUBLE')})"
    typ = PINNED_TYPES[pinned]
    return canon(cast_text(text, typ), typ)


def file_path(x: str) -> str:
    """SQL: a ``file`` cell as the dataset path it names: a leading ``./`` (or several) dropped.

    ``./img/x.png`` names ``img/x.png``, as ``dsv ls`` prints it. A leading ``/`` is
    kept: an absolute path names no file of the dataset.
    """
    return f"regexp_replace({x}, '^(\\./)+', '')"


def _json(x: str) -> str:
    return f"CAST(to_json({x}) AS VARCHAR)"


def _json_either(value: str, text: str) -> str:
    return f"(CASE WHEN {value} IS NOT NULL THEN {_json(value)} ELSE {_json(text)} END)"


@dataclass(frozen=True)
class KeyColumn:
    """A key column: join expressions on both sides, its JSON in changed cells, its sort order."""

    name: str
    a: str
    b: str
    shown: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    """How the columns of one table source read on both sides (SQL over the aliases ``a`` and ``b``)."""

    source: TableSource
    a: Version
    b: Version

    def raw(self, side: str, col: str) -> str:
        """The cell as text: CSV as written, other formats as canonical text; NULL where the column is absent."""
        version = self.a if side == "a" else self.b
        t = version.types.get(col)
        if t is None:
            return "NULL::VARCHAR"
        x = f"{side}.{q(col)}"
        return x if version.as_text else canon(x, t)

    def text(self, side: str, col: str) -> str:
        """A key, label or slice value: the raw text, or the canonical form of its declared type."""
        raw = self.raw(side, col)
        pinned = self.source.types.get(col)
        if pinned is None or pinned == "string":
            return raw
        return f"coalesce({declared_text(raw, pinned)}, {raw})"

    def compare_type(self, col: str) -> str:
        """The type a column's cells compare as (CSV and declared types)."""
        pinned = self.source.types.get(col)
        if pinned is not None:
            return PINNED_TYPES[pinned]
        return common_type(self.a.types.get(col), self.b.types.get(col))

    def textual(self, col: str) -> bool:
        """Whether the column compares through text (CSV, or a declared type)."""
        return self.a.as_text or col in self.source.types

    def key(self, col: str) -> "KeyColumn":
        """How a key column matches rows, shows in changed cells and orders them."""
        ta, tb = self.a.types.get(col), self.b.types.get(col)
        if self.textual(col):
            # Matched as text: as written, or in its declared type's exact canonical form
            # (never through a double). Shown as that text, a JSON integer where the column
            # holds integers in both versions (or is declared integer); ordered by exact
            # value where the column holds numbers.
            typ = self.compare_type(col)
            ka, kb = self.text("a", col), self.text("b", col)
            if _integer(typ):
                whole = exact_integer(ka)
                shown = f"(CASE WHEN {whole} IS NOT NULL THEN {whole} ELSE {_json(ka)} END)"
                return KeyColumn(col, ka, kb, shown, (f"TRY_CAST({whole} AS HUGEINT)", ka))
            if _numeric(typ):
                return KeyColumn(col, ka, kb, _json(ka), (f"TRY_CAST({exact_number(ka)} AS DECIMAL(38, 10))", ka))
            return KeyColumn(col, ka, kb, _json(ka), (ka,))
        x = f"a.{q(col)}"
        if ta == tb and ta != "JSON":
            return KeyColumn(col, x, f"b.{q(col)}", _json(x), (x,))
        return KeyColumn(col, self.raw("a", col), self.raw("b", col), _json(x), (self.raw("a", col),))

    def cell(self, col: str) -> tuple[str, str, str]:
        """``(same, shown_a, shown_b)`` for a column on both sides: whether the cells hold the same value, and their JSON."""
        xa, xb = f"a.{q(col)}", f"b.{q(col)}"
        if self.textual(col):
            typ = self.compare_type(col)
            ra, rb = self.raw("a", col), self.raw("b", col)
            if typ == "VARCHAR":
                return f"({ra} IS NOT DISTINCT FROM {rb})", _json(ra), _json(rb)
            ca, cb = cast_text(ra, typ), cast_text(rb, typ)
            if typ.startswith(_FLOATS):
                # Numbers written plainly compare exactly, from their digits (0.5 = 0.50, but
                # 9007199254740993 is not 9007199254740992.0) and show as written values;
                # exponent forms, inf and nan compare as doubles.
                # (A CASE, so that only cells written differently pay for the parsing.)
                na, nb = exact_number(ra), exact_number(rb)
                same = (
                    f"(CASE WHEN {ra} IS NOT DISTINCT FROM {rb} THEN true WHEN {na} IS NOT NULL AND {nb} IS NOT NULL "
                    f"THEN {na} = {nb} ELSE coalesce({ca} = {cb}, false) END)"
                )
                return same, f"coalesce({na}, {_json_either(ca, ra)})", f"coalesce({nb}, {_json_either(cb, rb)})"
            # Written the same, or the same value of the column's type (T and true in a boolean column).
            same = f"(CASE WHEN {ra} IS NOT DISTINCT FROM {rb} THEN true ELSE coalesce({ca} = {cb}, false) END)"
            return same, _json_either(ca, ra), _json_either(cb, rb)
        ta, tb = self.a.types[col], self.b.types[col]
        if ta == tb and ta != "JSON":
            return f"({xa} IS NOT DISTINCT FROM {xb})", _json(xa), _json(xb)
        if _numeric(ta) and _numeric(tb):
            return f"(CAST({xa} AS DOUBLE) IS NOT DISTINCT FROM CAST({xb} AS DOUBLE))", _json(xa), _json(xb)
        return f"({canon(xa, ta)} IS NOT DISTINCT FROM {canon(xb, tb)})", _json(xa), _json(xb)

    def labels(self, side: str, col: str, json_arrays: bool) -> str:
        """A label set: sorted, without repeats; a scalar label is a one-class set; missing is empty."""
        version = self.a if side == "a" else self.b
        t = version.types.get(col)
        if t is None:
            return "[]::VARCHAR[]"
        x = f"{side}.{q(col)}"
        if t.endswith("[]") and not version.as_text:
            elem = canon("e", t[:-2])
            return f"coalesce(list_sort(list_distinct(list_transform({x}, lambda e: {elem}))), []::VARCHAR[])"
        if t == "JSON" and json_arrays:
            arr = f"list_sort(list_distinct(list_transform(CAST({x} AS JSON[]), lambda e: {canon('e', 'JSON')})))"
            return (
                f"(CASE WHEN {x} IS NULL OR json_type({x}) = 'NULL' THEN []::VARCHAR[] "
                f"WHEN json_type({x}) = 'ARRAY' THEN {arr} ELSE [{canon(x, 'JSON')}] END)"
            )
        text = self.text(side, col)
        return f"(CASE WHEN {text} IS NULL THEN []::VARCHAR[] ELSE [{text}] END)"


def _json_arrays(con: "duckdb.DuckDBPyConnection", version: Version, col: str) -> bool:
    """Whether a JSON-typed column (a JSONL column mixing types) holds any array."""
    if version.types.get(col) != "JSON":
        return False
    (found,) = con.execute(f"SELECT bool_or(json_type({q(col)}) = 'ARRAY') FROM {q(version.view)}").fetchall()[0]
    return bool(found)


# -- keys --------------------------------------------------------------------------------


def _check_keys_in_join(
    con: "duckdb.DuckDBPyConnection", j: str, a: Version, b: Version, source: TableSource, sides: tuple[str, str]
) -> None:
    """Prove both sides' keys unique from the join, without a group-by over every row.

    If side A repeats key k: when B has k, the join repeats B's row, so B's rows
    in the join outnumber B's rows; when B lacks k, k repeats among the removed
    rows, a small set to group. Symmetrically for B. Only on failure are the full
    tables grouped, to name the repeated keys.
    """
    n = len(source.key)
    keys = ", ".join(f"__k{i}" for i in range(n))
    any_null = " OR ".join(f"__k{i} IS NULL" for i in range(n))
    (nulls,) = con.execute(f"SELECT count(*) FROM {q(j)} WHERE {any_null}").fetchall()[0]
    if nulls:
        raise SampleSourceError(
            f"{source.path}: {nulls} row(s) have an empty key ({', '.join(source.key)})", hint="every sample needs a key value to be matched across versions"
        )
    in_a, in_b, dup_removed, dup_added = con.execute(
        f"""SELECT count(*) FILTER (in_a), count(*) FILTER (in_b),
                   (SELECT count(*) FROM (SELECT {keys} FROM {q(j)} WHERE in_a AND NOT in_b GROUP BY ALL HAVING count(*) > 1)),
                   (SELECT count(*) FROM (SELECT {keys} FROM {q(j)} WHERE in_b AND NOT in_a GROUP BY ALL HAVING count(*) > 1))
            FROM {q(j)}"""
    ).fetchall()[0]
    if in_b != b.rows or dup_removed:
        check_unique_keys(con, a.view, source, sides[0])
    if in_a != a.rows or dup_added:
        check_unique_keys(con, b.view, source, sides[1])
    if in_a != a.rows or in_b != b.rows or dup_removed or dup_added:
        # Reached when two keys differ natively but read as the same text (a JSONL id 1 and "1").
        raise SampleSourceError(f"{source.path}: key {', '.join(source.key)} is not unique", hint="a key must identify one sample")


def check_unique_keys(con: "duckdb.DuckDBPyConnection", view: str, source: TableSource, side: str) -> None:
    """Refuse a table whose key repeats, naming a few repeated keys."""
    keys = ", ".join(q(k) for k in source.key)
    dups = con.execute(f"SELECT {keys}, count(*) AS n FROM {q(view)} GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 5").fetchall()
    if dups:
        shown = "; ".join(", ".join(str(v) for v in d[:-1]) + f" (x{d[-1]})" for d in dups)
        raise SampleSourceError(f"{source.path} at {side}: key {', '.join(source.key)} is not unique: {shown}", hint="a key must identify one sample")


def schema_changes(cols_a: dict[str, str], cols_b: dict[str, str]) -> list[SchemaChange]:
    """Columns added, removed and retyped between two versions."""
    out = [SchemaChange(c, "removed", t, None) for c, t in cols_a.items() if c not in cols_b]
    out += [SchemaChange(c, "added", None, t) for c, t in cols_b.items() if c not in cols_a]
    out += [SchemaChange(c, "type_changed", cols_a[c], t) for c, t in cols_b.items() if c in cols_a and cols_a[c] != t]
    return out


# -- the diff ----------------------------------------------------------------------------


def diff_table(
    con: "duckdb.DuckDBPyConnection",
    path_a: str | None,
    path_b: str | None,
    source: TableSource,
    *,
    side_a: str,
    side_b: str,
    file_oids: tuple["pa.Table", "pa.Table"] | None,
    by: list[str],
    rows: int | None,
    tag: str,
) -> SourceDiff:
    """Diff two versions of an annotation table (``None`` for a side where the file does not exist)."""
    # An empty file holds no samples (and no schema): treat it like a missing file.
    path_a = path_a if path_a and os.path.getsize(path_a) > 0 else None
    path_b = path_b if path_b and os.path.getsize(path_b) > 0 else None
    if path_a is None and path_b is None:
        return SourceDiff(source.display_name, "table", read=True)
    va, vb = f"ta_{tag}", f"tb_{tag}"
    a = load_table(con, va, path_a, source, side_a) if path_a else None
    b = load_table(con, vb, path_b, source, side_b) if path_b else None
    if a is None:
        assert b is not None
        a = _empty_like(con, va, b)
    if b is None:
        b = _empty_like(con, vb, a)
    schema = schema_changes(a.types, b.types) if path_a and path_b else []
    for c in [source.label, *source.slices, *([source.file] if source.file else [])]:
        if c not in a.types and c not in b.types:
            raise SampleSourceError(
                f"{source.path} has no column {c!r} at {side_a} or {side_b} (columns: {', '.join(b.types or a.types)})",
                hint="check label/slices/file in dsv.toml, or the --label/--slice/--file flags",
            )
    r = Reading(source, a, b)
    warnings = _type_warnings(source, a, b, side_a, side_b) + _declared_type_warnings(con, r, side_a, side_b)

    ta, tb = a.types.get(source.label), b.types.get(source.label)
    arrays = (_json_arrays(con, a, source.label), _json_arrays(con, b, source.label))
    multilabel = not a.as_text and ((ta or "").endswith("[]") or (tb or "").endswith("[]") or any(arrays))
    if multilabel:
        label_a, label_b = r.labels("a", source.label, arrays[0]), r.labels("b", source.label, arrays[1])
    else:
        label_a, label_b = r.text("a", source.label), r.text("b", source.label)

    keys = [r.key(k) for k in source.key]
    join_on = " AND ".join(f"{k.a} = {k.b}" for k in keys)
    # Content: every other column present on both sides, and the content of the file a
    # row names. Label (relabeled) and slices (moved) are counted apart.
    file_col = source.file if source.file and file_oids is not None else None
    special = {*source.key, source.label, *source.slices, *([file_col] if file_col else [])}
    payload = [c for c in b.types if c in a.types and c not in special]
    diffs = [f"NOT {r.cell(c)[0]}" for c in payload]
    file_join = ""
    if file_col and file_oids is not None:
        con.register(f"fo_a_{tag}", file_oids[0])
        con.register(f"fo_b_{tag}", file_oids[1])
        oid_a = oid_b = "NULL"
        path_a, path_b = file_path(r.raw("a", file_col)), file_path(r.raw("b", file_col))
        if file_col in a.types:
            file_join += f" LEFT JOIN fo_a_{tag} foa ON foa.path = {path_a}"
            oid_a = "foa.oid"
        if file_col in b.types:
            file_join += f" LEFT JOIN fo_b_{tag} fob ON fob.path = {path_b}"
            oid_b = "fob.oid"
        # Same bytes at a new path (the image moved with its row) is no change of content;
        # where a path names no file, the paths themselves are compared.
        diffs.append(
            f"(CASE WHEN {oid_a} IS NOT NULL AND {oid_b} IS NOT NULL THEN {oid_a} <> {oid_b} "
            f"ELSE {path_a} IS DISTINCT FROM {path_b} END)"
        )
    changed = " OR ".join(diffs) if diffs else "false"
    slices = ", ".join(f"{r.text('a', s)} AS s_a_{i}, {r.text('b', s)} AS s_b_{i}" for i, s in enumerate(source.slices))
    keys_out = ", ".join(f"coalesce({k.a}, {k.b}) AS __k{i}" for i, k in enumerate(keys))
    j = f"j_{tag}"
    con.execute(
        f"""CREATE TEMP TABLE {j} AS
            SELECT a.__present IS NOT NULL AS in_a, b.__present IS NOT NULL AS in_b, {keys_out},
                   {label_a} AS label_a, {label_b} AS label_b, {slices + ',' if slices else ''}
                   (a.__present IS NOT NULL AND b.__present IS NOT NULL AND {label_a} IS DISTINCT FROM {label_b}) AS relabeled,
                   (a.__present IS NOT NULL AND b.__present IS NOT NULL AND ({changed})) AS changed
            FROM (SELECT *, true AS __present FROM {q(va)}) a
            FULL OUTER JOIN (SELECT *, true AS __present FROM {q(vb)}) b ON {join_on}{file_join}"""
    )
    _check_keys_in_join(con, j, a, b, source, (side_a, side_b))
    result = summarize(con, j, source.slices, multilabel=multilabel, by=by, name=source.display_name, kind="table")
    cells: list[CellChange] = []
    truncated = False
    if rows != 0:
        # Every cell that differs: content, file path, label and slices (the counts classify them).
        # A label, slice or file column that one version lacks is NULL there, as the
        # counts have it: its cells show NULL -> value.
        shown: list[tuple[str, tuple[str, str, str]]] = [(c, r.cell(c)) for c in payload]
        if file_col:
            if file_col in a.types and file_col in b.types:
                shown.append((file_col, r.cell(file_col)))
            else:
                fa, fb = r.raw("a", file_col), r.raw("b", file_col)
                shown.append((file_col, (f"({fa} IS NOT DISTINCT FROM {fb})", _json(fa), _json(fb))))
        # Listed exactly when the sample is relabeled; a label list shows as written.
        same_label = f"({label_a} IS NOT DISTINCT FROM {label_b})"
        if multilabel:
            as_written = [_json(f"{side}.{q(source.label)}") if source.label in v.types else "NULL" for side, v in (("a", a), ("b", b))]
            shown.append((source.label, (same_label, as_written[0], as_written[1])))
        else:
            shown.append((source.label, (same_label, _json(label_a), _json(label_b))))
        for s in source.slices:
            sa, sb = r.text("a", s), r.text("b", s)
            shown.append((s, (f"({sa} IS NOT DISTINCT FROM {sb})", _json(sa), _json(sb))))
        cells, truncated = _cell_changes(con, va, vb, keys, join_on, shown, rows)
    return result.replace(schema=tuple(schema), cells=tuple(cells), cells_truncated=truncated, warnings=tuple(warnings))


def _type_warnings(source: TableSource, a: Version, b: Version, side_a: str, side_b: str) -> list[str]:
    """A type change of a label or slice column: said once, since it often means a stray value."""
    out = []
    roles = [(source.label, "label")] + [(s, "slice") for s in source.slices]
    for col, role in roles:
        ta, tb = a.types.get(col), b.types.get(col)
        if ta is None or tb is None or ta == tb or col in source.types:
            continue
        how = "as the file writes them" if a.as_text else "as text"
        out.append(
            f"{source.path}: {role} column {col!r} reads as {ta} at {side_a} and as {tb} at {side_b}; "
            f"its values are compared {how} (pin a type with types = {{ {col} = \"...\" }} in dsv.toml)"
        )
    return out


def _declared_type_warnings(con: "duckdb.DuckDBPyConnection", r: Reading, side_a: str, side_b: str) -> list[str]:
    """Values that do not read as their column's declared type (``1.5`` in an ``integer`` column): said, never rounded."""
    pinned = {c: t for c, t in r.source.types.items() if t != "string"}
    out = []
    for side, version, name in (("a", r.a, side_a), ("b", r.b, side_b)):
        cols = [c for c in pinned if c in version.types]
        if not cols or not version.rows:
            continue
        exprs = []
        for c in cols:
            raw = r.raw(side, c)
            bad = f"{raw} IS NOT NULL AND {declared_text(raw, pinned[c])} IS NULL"
            exprs.append(f"count(*) FILTER (WHERE {bad}), min({raw}) FILTER (WHERE {bad})")
        found = con.execute(f"SELECT {', '.join(exprs)} FROM {q(version.view)} {side}").fetchall()[0]
        for i, c in enumerate(cols):
            n, first = found[2 * i], found[2 * i + 1]
            if n:
                an = "an" if pinned[c] == "integer" else "a"
                out.append(
                    f"{r.source.path}: column {c!r} is declared {pinned[c]}, but {n} value{'' if n == 1 else 's'} at {name} "
                    f"{'does' if n == 1 else 'do'} not read as {an} {pinned[c]} (first: {first!r}); "
                    f"{'it compares' if n == 1 else 'they compare'} as written, never rounded"
                )
    return out


def _cell_changes(
    con: "duckdb.DuckDBPyConnection",
    va: str,
    vb: str,
    keys: list[KeyColumn],
    join_on: str,
    columns: list[tuple[str, tuple[str, str, str]]],
    limit: int | None,
) -> tuple[list[CellChange], bool]:
    """Changed cells of samples present on both sides, in key order, at most ``limit``."""
    n = len(keys)
    key_cols = ", ".join(f"{k.shown} AS __s{i}" for i, k in enumerate(keys))
    order_cols = ", ".join(f"{o} AS __o{i}_{j}" for i, k in enumerate(keys) for j, o in enumerate(k.order))
    order = ", ".join(f"__o{i}_{j}" for i, k in enumerate(keys) for j, _ in enumerate(k.order))
    parts = []
    for c, (same, shown_a, shown_b) in columns:
        parts.append(
            f"SELECT {key_cols}, {lit(c)} AS __col, {shown_a} AS __old, {shown_b} AS __new, {order_cols} "
            f"FROM {q(va)} a JOIN {q(vb)} b ON {join_on} WHERE NOT {same}"
        )
    if not parts:
        return [], False
    cap = "" if limit is None else f" LIMIT {int(limit) + 1}"
    rows = con.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY {order}, __col{cap}").fetchall()
    truncated = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    out = []
    for row in rows:
        key = {k.name: None if v is None else _finite(json.loads(v)) for k, v in zip(keys, row[:n])}
        col, old, new = row[n : n + 3]
        old_v = _finite(None if old is None else json.loads(old))
        new_v = _finite(None if new is None else json.loads(new))
        out.append(CellChange(key, col, old_v, new_v, nested_detail(old_v, new_v)))
    return out, truncated


def _finite(v: Any) -> Any:
    """Non-finite floats as the strings "NaN", "Infinity", "-Infinity": JSON has no such numbers."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v
