"""Metrics files: detect their format and normalize them into a :class:`MetricSet`.

A metrics file is UTF-8 JSON in one of three formats, tried in this order
(docs/metrics.md is the contract):

1. ``sklearn``: ``sklearn.metrics.classification_report(..., output_dict=True)``
   dumped to JSON. Class rows become ``classes``; ``accuracy`` and the
   ``* avg`` rows become ``overall`` (``macro_avg.f1``...).
2. ``dsv``: ``{"overall": {...}, "classes": {...}, "slices": {...}}``, any
   non-empty subset, plus an optional ``"format": 1``.
3. ``flat``: a JSON object of numbers, nested objects flattened with dots
   (DVC's ``metrics.json``); everything lands in ``overall``.

Parsing is pure (bytes in, model out) and strict: anything that is not clearly
one of the formats raises :class:`MetricsFormatError` naming the file and the
key path, never a silently wrong :class:`MetricSet`. Values must be finite
numbers; booleans, strings, ``null``, ``NaN`` and ``Infinity`` are refused.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from dsv.base.errors import MetricsFormatError, format_key_path

__all__ = [
    "DSV_METRICS_FORMAT_VERSION",
    "MetricSet",
    "MetricsFormatError",
    "SourceFormat",
    "format_key_path",
    "parse_metrics",
]

_log = logging.getLogger(__name__)

SourceFormat = Literal["sklearn", "flat", "dsv"]
"""Which of the accepted formats a :class:`MetricSet` was read from."""

DSV_METRICS_FORMAT_VERSION = 1
"""The only value the optional ``"format"`` key of the dsv form may take."""

_DOCS_HINT = "see docs/metrics.md for the accepted metrics formats"

# A scikit-learn report row: the keys that make a value look like one, and the full set.
_SKLEARN_SHAPE = frozenset({"precision", "recall", "f1-score"})
_SKLEARN_ROW_KEYS = ("precision", "recall", "f1-score", "support")
# Averages classification_report may emit; which ones depends on the labels and task.
_SKLEARN_AVERAGES = ("micro avg", "macro avg", "weighted avg", "samples avg")
_DSV_SECTIONS = ("overall", "classes", "slices")

class MetricSet(BaseModel):
    """Metrics of one model run, normalized whatever file format they came from.

    Every number is a finite float (counts such as scikit-learn's ``support``
    included). Class names and slice values are the strings the file used.

    Attributes:
        source_format: the format the file was detected as.
        overall: metric name -> value, for the whole evaluation set.
        classes: class name -> metric name -> value.
        slices: slice column -> slice value -> metric name -> value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    source_format: SourceFormat
    overall: dict[str, float] = Field(default_factory=dict)
    classes: dict[str, dict[str, float]] = Field(default_factory=dict)
    slices: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready copy: ``source_format``, ``overall``, ``classes``, ``slices``.

        Without ``source_format`` the result is a valid file in the dsv form.
        """
        return self.model_dump(mode="json")

    def class_names(self) -> list[str]:
        """The class names with per-class metrics, sorted."""
        return sorted(self.classes)

    def metric_names(self) -> list[str]:
        """Every metric name used in ``overall``, ``classes`` or ``slices``, sorted, once each."""
        names = set(self.overall)
        for metrics in self.classes.values():
            names.update(metrics)
        for values in self.slices.values():
            for metrics in values.values():
                names.update(metrics)
        return sorted(names)


def parse_metrics(data: bytes, *, name: str) -> MetricSet:
    """Parse a metrics file, detecting its format.

    Args:
        data: the file's bytes (UTF-8 JSON; a leading byte-order mark is allowed).
        name: how errors refer to the source, usually its file name.

    Returns:
        The normalized metrics.

    Raises:
        MetricsFormatError: the bytes are not UTF-8 JSON, the top level is not a
            non-empty object, a value is not a finite number where one is
            expected, or the document fits none of the formats. The message
            names ``name`` and the key path.
    """
    top = _decode(data, name)
    parser = _Parser(name)
    try:
        result = parser.parse(top)
    except RecursionError as err:
        raise MetricsFormatError(name, "objects are nested too deeply") from err
    _log.debug(
        "%s: %s metrics, %d overall, %d classes, %d slice columns",
        name,
        result.source_format,
        len(result.overall),
        len(result.classes),
        len(result.slices),
    )
    return result


class _DuplicateKeyError(Exception):
    """A JSON object repeats a key (``json`` would silently keep the last one)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` building a dict, refusing repeated keys."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def _decode(data: bytes, name: str) -> Any:
    """Decode UTF-8 JSON, turning every failure into a :class:`MetricsFormatError`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise MetricsFormatError(name, f"not UTF-8 text (invalid byte at offset {err.start})") from err
    try:
        # NaN and Infinity parse to floats here; the value checks refuse them with their key path.
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as err:
        raise MetricsFormatError(name, f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from err
    except _DuplicateKeyError as err:
        raise MetricsFormatError(name, f"not valid metrics JSON: the key {err.key!r} appears twice in one object") from err
    except RecursionError as err:
        raise MetricsFormatError(name, "not valid JSON: nested too deeply") from err
    except ValueError as err:  # e.g. an integer literal longer than Python's digit limit
        raise MetricsFormatError(name, f"not valid JSON: {err}") from err


def _describe(value: Any) -> str:
    """A short, JSON-flavoured description of a value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "an empty object" if not value else "an object"
    return type(value).__name__


class _Parser:
    """Validates a decoded document against the formats; errors name the source."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, keys: tuple[str, ...], detail: str, *, hint: str | None = None) -> NoReturn:
        """Raise a :class:`MetricsFormatError` at ``keys``."""
        raise MetricsFormatError(self.name, detail, keys=keys, hint=hint)

    # -- the document ---------------------------------------------------------

    def parse(self, top: Any) -> MetricSet:
        """Check the top level, detect the format, parse it."""
        if not isinstance(top, dict):
            self.fail((), f"expected a JSON object at the top level, got {_describe(top)}")
        if not top:
            self.fail((), "expected metrics, got an empty JSON object")
        kind = self.detect(top)
        if kind == "sklearn":
            result = self.parse_sklearn(top)
        elif kind == "dsv":
            result = self.parse_dsv(top)
        else:
            result = self.parse_flat(top)
        if not (result.overall or result.classes or result.slices):
            self.fail((), "no metrics: 'overall', 'classes' and 'slices' are all empty")
        return result

    @staticmethod
    def detect(top: Mapping[str, Any]) -> SourceFormat:
        """Pick the format of a non-empty top-level object.

        scikit-learn when some value is an object with precision, recall and
        f1-score, unless the object also has a dsv section and none of the
        report's own keys (``accuracy``, ``* avg``): that is the dsv form with
        metrics that happen to be called precision/recall/f1-score. Then the
        dsv form when ``overall``, ``classes`` or ``slices`` maps to an object.
        Otherwise flat.
        """
        report_rows = any(isinstance(v, dict) and _SKLEARN_SHAPE <= v.keys() for v in top.values())
        report_keys = "accuracy" in top or any(k in top for k in _SKLEARN_AVERAGES)
        dsv_sections = any(isinstance(top.get(k), dict) for k in _DSV_SECTIONS)
        if report_rows and (report_keys or not dsv_sections):
            return "sklearn"
        if dsv_sections:
            return "dsv"
        return "flat"

    # -- values ---------------------------------------------------------------

    def number(self, value: Any, keys: tuple[str, ...]) -> float:
        """A finite number as float; booleans, strings, null, NaN, Infinity refused."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(keys, f"expected a number, got {_describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(
                keys,
                f"expected a finite number, got {_describe(value)}",
                hint="leave the metric out, or write a number (scikit-learn: pass zero_division=0)",
            )
        try:
            result = float(value)
        except OverflowError:
            self.fail(keys, f"number out of range: {str(value)[:20]}...")
        if not math.isfinite(result):  # a float literal too large for a double, like 1e400
            self.fail(keys, "number out of range")
        return result

    def metric_name(self, key: str, keys: tuple[str, ...]) -> None:
        """Refuse an empty metric name."""
        if not key:
            self.fail(keys, "a metric name is empty")

    def metric_map(self, value: Any, keys: tuple[str, ...], *, allow_empty: bool) -> dict[str, float]:
        """An object of metric name -> number."""
        if not isinstance(value, dict):
            self.fail(keys, f"expected an object of metric name -> number, got {_describe(value)}")
        if not value and not allow_empty:
            self.fail(keys, "expected at least one metric, got an empty object")
        out: dict[str, float] = {}
        for key, item in value.items():
            self.metric_name(key, keys + (key,))
            out[key] = self.number(item, keys + (key,))
        return out

    # -- scikit-learn ---------------------------------------------------------

    def parse_sklearn(self, top: dict[str, Any]) -> MetricSet:
        """A scikit-learn ``classification_report(output_dict=True)``."""
        overall: dict[str, float] = {}
        classes: dict[str, dict[str, float]] = {}
        for key, value in top.items():
            if key == "accuracy":
                overall["accuracy"] = self.number(value, (key,))
            elif key in _SKLEARN_AVERAGES:
                prefix = key.replace(" ", "_")
                for metric, number in self.sklearn_row(value, (key,)).items():
                    overall[f"{prefix}.{metric}"] = number
            elif isinstance(value, dict):
                classes[key] = self.sklearn_row(value, (key,))
            else:
                self.fail(
                    (key,),
                    f"expected a class row with precision, recall, f1-score and support, got {_describe(value)} "
                    "(this looks like a scikit-learn classification report, whose only top-level number is 'accuracy')",
                )
        return MetricSet(source_format="sklearn", overall=overall, classes=classes)

    def sklearn_row(self, value: Any, keys: tuple[str, ...]) -> dict[str, float]:
        """One report row (a class or an average), with ``f1-score`` renamed ``f1``."""
        if not isinstance(value, dict):
            self.fail(keys, f"expected an object with precision, recall, f1-score and support, got {_describe(value)}")
        unexpected = [k for k in value if k not in _SKLEARN_ROW_KEYS]
        if unexpected:
            self.fail(
                keys + (unexpected[0],),
                "unexpected key in a scikit-learn report row (expected precision, recall, f1-score, support)",
            )
        missing = [k for k in _SKLEARN_ROW_KEYS if k not in value]
        if missing:
            self.fail(keys, f"missing {', '.join(repr(k) for k in missing)} (a scikit-learn report row has precision, recall, f1-score, support)")
        row: dict[str, float] = {}
        for key in _SKLEARN_ROW_KEYS:
            number = self.number(value[key], keys + (key,))
            if key == "support" and (number < 0 or not number.is_integer()):
                self.fail(keys + (key,), f"expected a count (a whole number >= 0), got {_describe(value[key])}")
            row["f1" if key == "f1-score" else key] = number
        return row

    # -- dsv form -------------------------------------------------------------

    def parse_dsv(self, top: dict[str, Any]) -> MetricSet:
        """The dsv general form: ``overall``, ``classes``, ``slices``, optional ``format``."""
        for key in top:
            if key not in _DSV_SECTIONS and key != "format":
                self.fail(
                    (key,),
                    "unexpected top-level key in the dsv form (allowed: overall, classes, slices, format)",
                    hint="put run-wide metrics under 'overall'; " + _DOCS_HINT,
                )
        if "format" in top:
            version = top["format"]
            if isinstance(version, bool) or not isinstance(version, int):
                self.fail(("format",), f"expected the integer {DSV_METRICS_FORMAT_VERSION}, got {_describe(version)}")
            if version != DSV_METRICS_FORMAT_VERSION:
                self.fail(
                    ("format",),
                    f"format version {version} is not supported; this dsv reads version {DSV_METRICS_FORMAT_VERSION}",
                    hint="upgrade dsv to read this metrics file",
                )
        overall = self.metric_map(top["overall"], ("overall",), allow_empty=True) if "overall" in top else {}
        classes: dict[str, dict[str, float]] = {}
        if "classes" in top:
            section = top["classes"]
            if not isinstance(section, dict):
                self.fail(("classes",), f"expected an object of class name -> metrics, got {_describe(section)}")
            for cls, metrics in section.items():
                classes[cls] = self.metric_map(metrics, ("classes", cls), allow_empty=False)
        slices: dict[str, dict[str, dict[str, float]]] = {}
        if "slices" in top:
            section = top["slices"]
            if not isinstance(section, dict):
                self.fail(("slices",), f"expected an object of slice column -> value -> metrics, got {_describe(section)}")
            for column, values in section.items():
                if not column:
                    self.fail(("slices", column), "a slice column name is empty")
                if not isinstance(values, dict):
                    self.fail(("slices", column), f"expected an object of slice value -> metrics, got {_describe(values)}")
                if not values:
                    self.fail(("slices", column), "expected at least one slice value, got an empty object")
                slices[column] = {
                    v: self.metric_map(metrics, ("slices", column, v), allow_empty=False) for v, metrics in values.items()
                }
        return MetricSet(source_format="dsv", overall=overall, classes=classes, slices=slices)

    # -- flat -----------------------------------------------------------------

    def parse_flat(self, top: dict[str, Any]) -> MetricSet:
        """Numbers, possibly in nested objects (flattened with dots), all into ``overall``."""
        if "format" in top:
            # Likely a dsv-form file with a misspelt section; reading it flat would be silently wrong.
            self.fail(
                ("format",),
                "'format' is reserved for the dsv form, which also needs an 'overall', 'classes' or 'slices' object",
            )
        overall: dict[str, float] = {}
        self.flatten(top, (), overall)
        return MetricSet(source_format="flat", overall=overall)

    def flatten(self, obj: dict[str, Any], keys: tuple[str, ...], out: dict[str, float]) -> None:
        """Add the numbers of ``obj`` to ``out`` under dotted names."""
        for key, value in obj.items():
            path = keys + (key,)
            self.metric_name(key, path)
            if isinstance(value, dict):
                if not value:
                    self.fail(path, "expected a number or an object of numbers, got an empty object")
                self.flatten(value, path, out)
                continue
            flat = ".".join(path)
            if flat in out:
                self.fail(path, f"another key also flattens to the metric name {flat!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, f"expected a number or an object of numbers, got {_describe(value)}")
            out[flat] = self.number(value, path)
