"""Opening one version of an annotation table as a DuckDB view: CSV dialects and compression,
mixed newlines, and a readable diagnosis when a file does not parse (:mod:`dsv.semantic.tables` diffs them)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv.base.errors import SampleSourceError
from dsv.semantic.declaration import TableSource
from dsv.semantic.engine import lit, q

if TYPE_CHECKING:
    import duckdb


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


def empty_like(con: "duckdb.DuckDBPyConnection", view: str, other: Version) -> Version:
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


