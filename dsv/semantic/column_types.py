"""How a column of an annotation table reads, decided once from both versions (docs/diff-format.md,
"Column types"): common types, canonical text, exact numbers, pinned types (:mod:`dsv.semantic.tables`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsv.semantic.declaration import TableSource
from dsv.semantic.engine import q
from dsv.semantic.table_files import Version

if TYPE_CHECKING:
    import duckdb


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE", "DECIMAL")
PINNED_TYPES = {"string": "VARCHAR", "integer": "HUGEINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
"""The DuckDB type behind each type a ``dsv.toml`` may pin."""


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


def json_text(x: str) -> str:
    return f"CAST(to_json({x}) AS VARCHAR)"


def _json_either(value: str, text: str) -> str:
    return f"(CASE WHEN {value} IS NOT NULL THEN {json_text(value)} ELSE {json_text(text)} END)"


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
                shown = f"(CASE WHEN {whole} IS NOT NULL THEN {whole} ELSE {json_text(ka)} END)"
                return KeyColumn(col, ka, kb, shown, (f"TRY_CAST({whole} AS HUGEINT)", ka))
            if _numeric(typ):
                return KeyColumn(col, ka, kb, json_text(ka), (f"TRY_CAST({exact_number(ka)} AS DECIMAL(38, 10))", ka))
            return KeyColumn(col, ka, kb, json_text(ka), (ka,))
        x = f"a.{q(col)}"
        if ta == tb and ta != "JSON":
            return KeyColumn(col, x, f"b.{q(col)}", json_text(x), (x,))
        return KeyColumn(col, self.raw("a", col), self.raw("b", col), json_text(x), (self.raw("a", col),))

    def cell(self, col: str) -> tuple[str, str, str]:
        """``(same, shown_a, shown_b)`` for a column on both sides: whether the cells hold the same value, and their JSON."""
        xa, xb = f"a.{q(col)}", f"b.{q(col)}"
        if self.textual(col):
            typ = self.compare_type(col)
            ra, rb = self.raw("a", col), self.raw("b", col)
            if typ == "VARCHAR":
                return f"({ra} IS NOT DISTINCT FROM {rb})", json_text(ra), json_text(rb)
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
            return f"({xa} IS NOT DISTINCT FROM {xb})", json_text(xa), json_text(xb)
        if _numeric(ta) and _numeric(tb):
            return f"(CAST({xa} AS DOUBLE) IS NOT DISTINCT FROM CAST({xb} AS DOUBLE))", json_text(xa), json_text(xb)
        return f"({canon(xa, ta)} IS NOT DISTINCT FROM {canon(xb, tb)})", json_text(xa), json_text(xb)

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


def has_json_arrays(con: "duckdb.DuckDBPyConnection", version: Version, col: str) -> bool:
    """Whether a JSON-typed column (a JSONL column mixing types) holds any array."""
    if version.types.get(col) != "JSON":
        return False
    (found,) = con.execute(f"SELECT bool_or(json_type({q(col)}) = 'ARRAY') FROM {q(version.view)}").fetchall()[0]
    return bool(found)


