"""``dsv.toml``: how to read samples, labels and slices from a dataset.

::

    [[folders]]
    pattern = "images/{split}/{label}/*"   # {label} is the class; other {names} are slices

    [[tables]]
    path = "annotations/train.csv"
    key = "id"                  # or ["a", "b"]
    label = "species"
    slices = ["island", "sex"]
    file = "image_path"         # optional
    types = { zip = "string" }  # optional: pin how a column reads (string, integer, number, boolean)
    delimiter = ";"             # optional, CSV: else "," (a tab for .tsv); quote = '"', escape = '"'

The declaration is versioned with the data; a diff uses the newer side's.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dsv.base.errors import CorruptMetadataError, UsageError
from dsv.base.formats import DECLARATION_FILE
from dsv.base.globs import PLACEHOLDER as _PLACEHOLDER

TABLE_FORMATS = ("csv", "parquet", "jsonl")
ColumnType = Literal["string", "integer", "number", "boolean"]
"""Types a ``dsv.toml`` may pin a table column to (``types = { col = "string" }``)."""
COLUMN_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")


class FolderSource(BaseModel):
    """One sample per file; the class (and slices) come from the path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str
    name: str | None = None
    labels: list[str] | None = None
    splits: list[str] | None = None

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        stripped = _PLACEHOLDER.sub("", value)
        if "{" in stripped or "}" in stripped:
            raise ValueError("braces must form placeholders like {label} or {split} (letters, digits, _)")
        names = _PLACEHOLDER.findall(value)
        if any(n.startswith("_") for n in names):
            raise ValueError("placeholder names may not start with '_'")
        if "label" not in names:
            raise ValueError("a folder pattern needs a {label} placeholder")
        if len(names) != len(set(names)):
            raise ValueError("a placeholder appears twice")
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("the pattern must be relative to the dataset root")
        return value

    @model_validator(mode="after")
    def _check_roles(self) -> "FolderSource":
        _check_audit_fields(self.labels, self.splits, self.slices)
        return self

    @property
    def slices(self) -> list[str]:
        """The placeholders other than ``label``, in order."""
        return [n for n in _PLACEHOLDER.findall(self.pattern) if n != "label"]

    @property
    def split_slices(self) -> list[str]:
        """The split-like slices, between whose values the audit looks for leakage."""
        return split_slices(self.slices, self.splits)

    @property
    def display_name(self) -> str:
        """How the source is named in reports."""
        return self.name or self.pattern


class TableSource(BaseModel):
    """One sample per row of an annotation table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    key: list[str]
    label: str
    slices: list[str] = Field(default_factory=list)
    file: str | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None
    name: str | None = None
    types: dict[str, ColumnType] = Field(default_factory=dict)
    labels: list[str] | None = None
    splits: list[str] | None = None
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> "TableSource":
        if not self.key:
            raise ValueError("key needs at least one column")
        used = [*self.key, self.label, *self.slices] + ([self.file] if self.file else [])
        if len(used) != len(set(used)):
            raise ValueError("key, label, slices and file must name different columns")
        if self.format is None and table_format(self.path) is None:
            raise ValueError(f"cannot tell the format of {self.path!r}; add format = 'csv' | 'parquet' | 'jsonl'")
        _check_audit_fields(self.labels, self.splits, self.slices)
        _check_dialect(self)
        return self

    @property
    def split_slices(self) -> list[str]:
        """The split-like slices, between whose values the audit looks for leakage."""
        return split_slices(self.slices, self.splits)

    @property
    def dialect(self) -> "CsvDialect":
        """How a CSV version is parsed: the same in every version, never sniffed."""
        delim = self.delimiter
        if delim is None:
            delim = "\t" if self.path.lower().endswith((".tsv", ".tsv.gz")) else ","
        quote = '"' if self.quote is None else self.quote
        return CsvDialect(delim, quote, quote if self.escape is None else self.escape)

    @property
    def resolved_format(self) -> str:
        """csv, parquet or jsonl."""
        return self.format or table_format(self.path) or "csv"

    @property
    def display_name(self) -> str:
        """How the source is named in reports."""
        return self.name or self.path


SPLIT_NAMES = ("split", "fold", "subset", "partition")
"""Slice names taken as split-like when a source does not declare ``splits``."""


def split_slices(slices: list[str], declared: list[str] | None) -> list[str]:
    """The declared split-like slices, else those whose name contains split, fold, subset or partition."""
    if declared is not None:
        return list(declared)
    return [s for s in slices if any(n in s.lower() for n in SPLIT_NAMES)]


def _check_audit_fields(labels: list[str] | None, splits: list[str] | None, slices: list[str]) -> None:
    if labels is not None:
        if len(labels) != len(set(labels)):
            raise ValueError("labels: a class is listed twice")
    for s in splits or []:
        if s not in slices:
            raise ValueError(f"splits: {s!r} is not a slice of this source (slices: {', '.join(slices) or 'none'})")


class AuditSettings(BaseModel):
    """``[audit]``: thresholds of ``dsv audit`` (docs/audit.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_samples: int = Field(default=10, ge=0)
    """A class with fewer samples (overall, or within a slice value) is reported as small."""
    limit: int = Field(default=20, ge=0)
    """Examples listed per finding kind (per class for hard samples)."""
    history: int = Field(default=10, ge=0)
    """Commits of first-parent history searched for labels flipping back and forth."""


class DriftPair(BaseModel):
    """``[[drift.pairs]]``: a reference table and a current one, compared column by column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: str
    current: str
    name: str | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None

    @property
    def display_name(self) -> str:
        """How reports name the pair."""
        return self.name or f"{self.reference} -> {self.current}"


class DriftSettings(BaseModel):
    """``[drift]``: thresholds of ``dsv diff --drift`` (docs/audit.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi: float = Field(default=0.2, ge=0)
    ks: float = Field(default=0.1, ge=0, le=1)
    bins: int = Field(default=10, ge=2, le=1000)
    pairs: list[DriftPair] = Field(default_factory=list)
class CsvDialect(NamedTuple):
    """The CSV dialect of a table: RFC 4180 (quote ``"``, a quote inside a value doubled) unless declared.

    ``quote`` or ``escape`` empty: no quoting, no escaping.
    """

    delimiter: str
    quote: str
    escape: str


def _check_dialect(table: "TableSource") -> None:
    given = {k: v for k, v in (("delimiter", table.delimiter), ("quote", table.quote), ("escape", table.escape)) if v is not None}
    if not given:
        return
    if table.resolved_format != "csv":
        raise ValueError(f"{', '.join(given)} apply to CSV tables only ({table.path!r} is {table.resolved_format})")
    for key, value in given.items():
        if len(value) > 1 or (key == "delimiter" and len(value) != 1):
            raise ValueError(f"{key} must be one character{'' if key == 'delimiter' else ' (or empty: none)'}, got {value!r}")
        if value in ("\n", "\r"):
            raise ValueError(f"{key} cannot be a line break")
    dialect = table.dialect
    if dialect.quote and dialect.delimiter == dialect.quote:
        raise ValueError(f"delimiter and quote must differ, both are {dialect.quote!r}")


class Declaration(BaseModel):
    """The sample sources of a dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folders: list[FolderSource] = Field(default_factory=list)
    tables: list[TableSource] = Field(default_factory=list)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)

    def __bool__(self) -> bool:
        return bool(self.folders or self.tables)


def table_format(path: str) -> str | None:
    """The table format implied by a file name."""
    lower = path.lower()
    if lower.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        return "csv"
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
        return "jsonl"
    return None


def validation_message(err: ValidationError, limit: int = 3) -> str:
    """The problems of a pydantic error as one plain line, ``where: what; ...`` (no pydantic jargon).

    Unknown keys come first: a misspelt key (``lable``) is usually why a required one is missing.
    """
    problems = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    return "; ".join(_one_problem(e) for e in problems[:limit])


def _one_problem(problem: Any) -> str:
    loc = ".".join(str(p) for p in problem["loc"])
    kind = problem["type"]
    value = problem.get("input")
    ctx = problem.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        what = str(ctx["error"])
    elif kind == "literal_error":
        allowed = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        what = f"expected one of {allowed}, got {value!r}"
    elif kind == "missing":
        what = "missing (required)"
    elif kind == "extra_forbidden":
        what = "unknown key"
    elif kind.endswith("_type"):
        what = f"expected {kind[: -len('_type')].replace('_', ' ')}, got {value!r}"
    else:
        what = str(problem["msg"]).removeprefix("Value error, ")
    return f"{loc}: {what}" if loc else what


def parse_declaration(text: bytes, *, where: str) -> Declaration:
    """Parse ``dsv.toml`` bytes; errors name the file and the problem."""
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise CorruptMetadataError(where, f"not valid TOML ({err})", hint="fix the file; see docs/diff-format.md") from err
    try:
        return Declaration.model_validate(raw)
    except ValidationError as err:
        raise CorruptMetadataError(where, validation_message(err), hint="see docs/diff-format.md for the dsv.toml syntax (docs/audit.md for labels, splits, [audit] and [drift])") from err


def declaration_from_flags(
    tables: list[str], keys: list[str], label: str | None, slices: list[str], file: str | None, folders: list[str]
) -> Declaration | None:
    """A declaration from command-line flags (``--table``/``--folder``), or ``None`` if none were given."""
    if not tables and not folders:
        if keys or label or slices or file:
            raise UsageError("--key, --label, --slice and --file go with --table")
        return None
    table_sources = []
    for path in tables:
        if not keys or not label:
            raise UsageError(f"--table {path} needs --key and --label")
        if table_format(path) is None:
            raise UsageError(
                f"--table {path}: cannot tell the table format from the file name",
                hint="name a .csv, .tsv, .parquet, .pq, .jsonl or .ndjson file (or .csv.gz, .tsv.gz, .jsonl.gz), "
                "or declare it in dsv.toml with format = 'csv' | 'parquet' | 'jsonl'",
            )
        try:
            table_sources.append(TableSource(path=path, key=keys, label=label, slices=slices, file=file))
        except ValidationError as err:
            raise UsageError(f"--table {path}: {validation_message(err, limit=1).split(': ', 1)[-1]}") from err
    folder_sources = []
    for pattern in folders:
        try:
            folder_sources.append(FolderSource(pattern=pattern))
        except ValidationError as err:
            raise UsageError(f"--folder {pattern}: {validation_message(err, limit=1).split(': ', 1)[-1]}") from err
    return Declaration(folders=folder_sources, tables=table_sources)


def commit_warnings(root: str) -> list[str]:
    """Warnings for the ``dsv.toml`` being committed at ``root``: the commit goes on, but a broken one is said now.

    Data is never held hostage to a config typo; without this, the problem would
    only appear later, in ``dsv diff`` or as a changelog warning.
    """
    import os

    path = os.path.join(root, DECLARATION_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    try:
        parse_declaration(data, where=DECLARATION_FILE)
    except CorruptMetadataError as err:
        return [f"{err.message}; committed as it is, but diff stops on it and changelog skips it until fixed ('dsv check' validates it)"]
    return []
