"""Metrics file formats: detection, normalization, round trips and every refusal."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dsv.base.errors import DsvError
from dsv.metrics.formats import MetricSet, MetricsFormatError, format_key_path, parse_metrics

NAME = "metrics.json"


def parse(doc: Any) -> MetricSet:
    """Parse a Python value dumped to JSON."""
    return parse_metrics(json.dumps(doc).encode(), name=NAME)


def refused(doc: Any | bytes) -> MetricsFormatError:
    """The error parsing ``doc`` (a Python value, or raw bytes) raises."""
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(MetricsFormatError) as info:
        parse_metrics(data, name=NAME)
    return info.value


# Copied from the output of scikit-learn 1.9.1:
#   classification_report(["cat", "dog", "cat", "bird"], ["cat", "cat", "cat", "bird"],
#                         output_dict=True, zero_division=0)
# It always runs, so the format stays covered where scikit-learn is not installed.
SKLEARN_LITERAL = {
    "bird": {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 1.0},
    "cat": {"precision": 0.6666666666666666, "recall": 1.0, "f1-score": 0.8, "support": 2.0},
    "dog": {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0},
    "accuracy": 0.75,
    "macro avg": {"precision": 0.5555555555555555, "recall": 0.6666666666666666, "f1-score": 0.6, "support": 4.0},
    "weighted avg": {"precision": 0.5833333333333333, "recall": 0.75, "f1-score": 0.65, "support": 4.0},
}


def expected_from_report(report: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """The overall and classes a report must map to (docs/metrics.md), computed independently."""
    rename = {"precision": "precision", "recall": "recall", "f1-score": "f1", "support": "support"}
    overall: dict[str, float] = {}
    classes: dict[str, dict[str, float]] = {}
    for key, value in report.items():
        if key == "accuracy":
            overall["accuracy"] = float(value)
        elif key.endswith(" avg"):
            for metric, number in value.items():
                overall[f"{key.replace(' ', '_')}.{rename[metric]}"] = float(number)
        else:
            classes[key] = {rename[m]: float(n) for m, n in value.items()}
    return overall, classes


# -- scikit-learn -------------------------------------------------------------


def test_sklearn_literal_report() -> None:
    m = parse(SKLEARN_LITERAL)
    assert m.source_format == "sklearn"
    assert m.classes["cat"] == {"precision": 0.6666666666666666, "recall": 1.0, "f1": 0.8, "support": 2.0}
    assert m.overall == {
        "accuracy": 0.75,
        "macro_avg.precision": 0.5555555555555555,
        "macro_avg.recall": 0.6666666666666666,
        "macro_avg.f1": 0.6,
        "macro_avg.support": 4.0,
        "weighted_avg.precision": 0.5833333333333333,
        "weighted_avg.recall": 0.75,
        "weighted_avg.f1": 0.65,
        "weighted_avg.support": 4.0,
    }
    assert m.slices == {}
    assert m.class_names() == ["bird", "cat", "dog"]
    assert m.metric_names() == sorted(
        ["accuracy", "precision", "recall", "f1", "support"]
        + [f"{a}.{k}" for a in ("macro_avg", "weighted_avg") for k in ("precision", "recall", "f1", "support")]
    )


def test_sklearn_integer_support_from_older_versions() -> None:
    report = copy.deepcopy(SKLEARN_LITERAL)
    for row in report.values():
        if isinstance(row, dict):
            row["support"] = int(row["support"])
    assert parse(report).classes["cat"]["support"] == 2.0


def _real_reports() -> list[dict[str, Any]]:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    np = pytest.importorskip("numpy")
    report = sklearn_metrics.classification_report
    return [
        # Multiclass with string labels: accuracy, macro avg, weighted avg.
        report(["cat", "dog", "cat", "bird", "dog"], ["cat", "cat", "cat", "bird", "dog"], output_dict=True, zero_division=0),
        # Integer labels and a subset of them: keys "0", "1" and a micro avg instead of accuracy.
        report([0, 1, 2, 1], [0, 1, 1, 1], labels=[0, 1], output_dict=True, zero_division=0),
        # Multilabel: micro, macro, weighted and samples avg.
        report(
            np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]]),
            np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]]),
            target_names=["person", "car", "tree"],
            output_dict=True,
            zero_division=0,
        ),
    ]


def test_sklearn_real_reports_round_trip() -> None:
    for report in _real_reports():
        m = parse(report)  # json.dumps: exactly what a training script writes
        overall, classes = expected_from_report(report)
        assert m.source_format == "sklearn"
        assert m.overall == overall
        assert m.classes == classes
        assert all(isinstance(k, str) for k in m.classes)


def test_sklearn_real_report_with_integer_labels_keeps_string_keys() -> None:
    report = _real_reports()[1]
    m = parse(report)
    assert m.class_names() == ["0", "1"]
    assert "micro_avg.f1" in m.overall and "accuracy" not in m.overall


def test_sklearn_real_multilabel_has_samples_avg() -> None:
    m = parse(_real_reports()[2])
    assert m.class_names() == ["car", "person", "tree"]
    assert {"samples_avg.f1", "micro_avg.precision", "macro_avg.recall", "weighted_avg.support"} <= m.overall.keys()


def test_sklearn_report_with_a_class_named_like_a_dsv_section() -> None:
    report = copy.deepcopy(SKLEARN_LITERAL)
    report["classes"] = report.pop("dog")
    m = parse(report)
    assert m.source_format == "sklearn"
    assert m.class_names() == ["bird", "cat", "classes"]


# -- flat ---------------------------------------------------------------------


def test_flat_scalars() -> None:
    m = parse({"accuracy": 0.91, "loss": 0.27, "epochs": 12, "lr": 3e-4, "delta": -1})
    assert m.source_format == "flat"
    assert m.overall == {"accuracy": 0.91, "loss": 0.27, "epochs": 12.0, "lr": 3e-4, "delta": -1.0}
    assert all(type(v) is float for v in m.overall.values())
    assert m.classes == {} and m.slices == {}


def test_flat_nested_dvc_style() -> None:
    doc = {"train": {"loss": 0.1, "acc": 0.97}, "val": {"loss": 0.3, "acc": 0.9, "per_epoch": {"best": 4}}, "step": 1000}
    m = parse(doc)
    assert m.source_format == "flat"
    assert m.overall == {
        "train.loss": 0.1,
        "train.acc": 0.97,
        "val.loss": 0.3,
        "val.acc": 0.9,
        "val.per_epoch.best": 4.0,
        "step": 1000.0,
    }
    assert m.metric_names() == sorted(m.overall)


def test_flat_keeps_numbers_named_like_dsv_sections() -> None:
    assert parse({"overall": 0.8, "classes": 10}).overall == {"overall": 0.8, "classes": 10.0}


def test_flat_accepts_a_utf8_bom() -> None:
    m = parse_metrics(b"\xef\xbb\xbf" + json.dumps({"acc": 1}).encode(), name=NAME)
    assert m.overall == {"acc": 1.0}


# -- dsv form -----------------------------------------------------------------

DSV_DOC = {
    "format": 1,
    "overall": {"accuracy": 0.91, "macro_f1": 0.88},
    "classes": {"cat": {"f1": 0.93, "recall": 0.9}, "dog": {"f1": 0.84}, "0": {"f1": 0.5}},
    "slices": {
        "island": {"Biscoe": {"accuracy": 0.95}, "Dream": {"accuracy": 0.85, "f1": 0.8}},
        "split.name": {"": {"accuracy": 0.5}},
    },
}


def test_dsv_form_with_slices() -> None:
    m = parse(DSV_DOC)
    assert m.source_format == "dsv"
    assert m.overall == {"accuracy": 0.91, "macro_f1": 0.88}
    assert m.classes == {"cat": {"f1": 0.93, "recall": 0.9}, "dog": {"f1": 0.84}, "0": {"f1": 0.5}}
    assert m.slices["island"]["Dream"] == {"accuracy": 0.85, "f1": 0.8}
    assert m.slices["split.name"] == {"": {"accuracy": 0.5}}
    assert m.class_names() == ["0", "cat", "dog"]
    assert m.metric_names() == ["accuracy", "f1", "macro_f1", "recall"]


@pytest.mark.parametrize("section", ["overall", "classes", "slices"])
def test_dsv_form_any_single_section(section: str) -> None:
    m = parse({section: DSV_DOC[section]})
    assert m.source_format == "dsv"
    assert getattr(m, section) == getattr(parse(DSV_DOC), section)


def test_dsv_form_empty_sections_are_fine_beside_a_full_one() -> None:
    m = parse({"overall": {}, "classes": {"cat": {"f1": 1}}, "slices": {}})
    assert m.overall == {} and m.slices == {} and m.classes == {"cat": {"f1": 1.0}}


def test_dsv_form_with_metrics_named_like_sklearn_is_not_a_report() -> None:
    m = parse({"overall": {"precision": 0.9, "recall": 0.8, "f1-score": 0.85}})
    assert m.source_format == "dsv"
    assert m.overall == {"precision": 0.9, "recall": 0.8, "f1-score": 0.85}
    assert m.classes == {}


def test_to_dict_is_a_dsv_form_file() -> None:
    for doc in (SKLEARN_LITERAL, DSV_DOC, {"train": {"loss": 0.1}}):
        m = parse(doc)
        d = m.to_dict()
        assert d["source_format"] == m.source_format
        assert set(d) == {"source_format", "overall", "classes", "slices"}
        again = parse({k: v for k, v in d.items() if k != "source_format"})
        assert again.model_copy(update={"source_format": m.source_format}) == m


def test_to_dict_is_a_copy() -> None:
    m = parse(DSV_DOC)
    m.to_dict()["classes"]["cat"]["f1"] = 0.0
    assert m.classes["cat"]["f1"] == 0.93


metric_names = st.text(min_size=1, max_size=8)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**12), 10**12)
metric_maps = st.dictionaries(metric_names, finite, min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    overall=st.dictionaries(metric_names, finite, max_size=4),
    classes=st.dictionaries(st.text(max_size=6), metric_maps, max_size=4),
    slices=st.dictionaries(metric_names, st.dictionaries(st.text(max_size=6), metric_maps, min_size=1, max_size=3), max_size=3),
)
def test_dsv_form_round_trips(overall: dict, classes: dict, slices: dict) -> None:
    doc = {"overall": overall, "classes": classes, "slices": slices}
    if not (overall or classes or slices):
        assert "no metrics" in refused(doc).message
        return
    m = parse(doc)
    assert m.source_format == "dsv"
    assert json.loads(json.dumps(m.to_dict())) == {"source_format": "dsv", **json.loads(json.dumps(doc))}


# -- the model ----------------------------------------------------------------


def test_metric_set_is_frozen_strict_and_finite() -> None:
    m = parse(DSV_DOC)
    with pytest.raises(ValidationError):
        m.overall = {}  # type: ignore[misc]
    with pytest.raises(ValidationError):
        MetricSet(source_format="flat", overall={"a": 1.0}, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MetricSet(source_format="flat", overall={"a": math.nan})
    with pytest.raises(ValidationError):
        MetricSet(source_format="flat", overall={"a": "1"})  # type: ignore[dict-item]
    with pytest.raises(ValidationError):
        MetricSet(source_format="csv", overall={"a": 1.0})  # type: ignore[arg-type]


# -- refusals -----------------------------------------------------------------

REFUSALS: list[tuple[str, Any, str]] = [
    # Whole-file problems.
    ("top-level list", [{"acc": 1}], "metrics.json: expected a JSON object at the top level, got a list"),
    ("top-level number", 0.9, "metrics.json: expected a JSON object at the top level, got 0.9"),
    ("top-level string", "acc", "metrics.json: expected a JSON object at the top level, got 'acc'"),
    ("top-level null", None, "metrics.json: expected a JSON object at the top level, got null"),
    ("empty object", {}, "metrics.json: expected metrics, got an empty JSON object"),
    ("bad JSON", b'{\n  "acc": \n}', "metrics.json: not valid JSON: Expecting value (line 3, column 1)"),
    ("not UTF-8", b'{"acc": 1, "\xe9": 2}', "metrics.json: not UTF-8 text (invalid byte at offset 12)"),
    ("duplicate key", b'{"acc": 0.5, "acc": 0.9}', "metrics.json: not valid metrics JSON: the key 'acc' appears twice in one object"),
    # Non-finite numbers, wherever they are.
    ("NaN", b'{"acc": NaN}', "metrics.json: acc: expected a finite number, got NaN"),
    ("Infinity", b'{"val": {"loss": Infinity}}', "metrics.json: val.loss: expected a finite number, got Infinity"),
    ("-Infinity", b'{"classes": {"cat": {"f1": -Infinity}}}', "metrics.json: classes.cat.f1: expected a finite number, got -Infinity"),
    ("overflowing float", b'{"acc": 1e400}', "metrics.json: acc: expected a finite number, got Infinity"),
    ("overflowing int", b'{"acc": 1' + b"0" * 400 + b"}", "metrics.json: acc: number out of range: 10000000000000000000..."),
    # Flat.
    ("flat boolean", {"acc": 0.9, "converged": True}, "metrics.json: converged: expected a number or an object of numbers, got true"),
    ("flat string", {"acc": "high"}, "metrics.json: acc: expected a number or an object of numbers, got 'high'"),
    ("flat null", {"train": {"acc": None}}, "metrics.json: train.acc: expected a number or an object of numbers, got null"),
    ("flat list", {"losses": [0.3, 0.2]}, "metrics.json: losses: expected a number or an object of numbers, got a list"),
    ("flat empty group", {"acc": 1, "val": {}}, "metrics.json: val: expected a number or an object of numbers, got an empty object"),
    ("flat empty key", {"": 1}, 'metrics.json: [""]: a metric name is empty'),
    ("flat collision", {"train": {"loss": 1}, "train.loss": 2}, "metrics.json: [\"train.loss\"]: another key also flattens to the metric name 'train.loss'"),
    ("flat with format", {"format": 1, "overal": {"acc": 1}}, "metrics.json: format: 'format' is reserved for the dsv form, which also needs an 'overall', 'classes' or 'slices' object"),
    # dsv form.
    ("dsv extra key", {"overall": {"acc": 1}, "train": {"loss": 0.1}}, "metrics.json: train: unexpected top-level key in the dsv form (allowed: overall, classes, slices, format)"),
    ("dsv misspelt section", {"overall": {"acc": 1}, "clases": {"cat": {"f1": 1}}}, "metrics.json: clases: unexpected top-level key in the dsv form (allowed: overall, classes, slices, format)"),
    ("dsv format 2", {"format": 2, "overall": {"acc": 1}}, "metrics.json: format: format version 2 is not supported; this dsv reads version 1"),
    ("dsv format string", {"format": "1", "overall": {"acc": 1}}, "metrics.json: format: expected the integer 1, got '1'"),
    ("dsv format bool", {"format": True, "overall": {"acc": 1}}, "metrics.json: format: expected the integer 1, got true"),
    ("dsv class metric string", {"classes": {"cat": {"f1": "high"}}}, "metrics.json: classes.cat.f1: expected a number, got 'high'"),
    ("dsv class metric bool", {"classes": {"cat": {"f1": False}}}, "metrics.json: classes.cat.f1: expected a number, got false"),
    ("dsv class not object", {"classes": {"cat": 0.9}}, "metrics.json: classes.cat: expected an object of metric name -> number, got 0.9"),
    ("dsv class empty", {"classes": {"cat": {}}}, "metrics.json: classes.cat: expected at least one metric, got an empty object"),
    ("dsv nested overall", {"overall": {"train": {"loss": 1}}}, "metrics.json: overall.train: expected a number, got an object"),
    ("dsv overall not object", {"overall": 0.9, "classes": {"cat": {"f1": 1}}}, "metrics.json: overall: expected an object of metric name -> number, got 0.9"),
    ("dsv classes not object", {"overall": {"a": 1}, "classes": ["cat"]}, "metrics.json: classes: expected an object of class name -> metrics, got a list"),
    ("dsv slices not object", {"overall": {"a": 1}, "slices": 3}, "metrics.json: slices: expected an object of slice column -> value -> metrics, got 3"),
    ("dsv slice column not object", {"slices": {"island": 3}}, "metrics.json: slices.island: expected an object of slice value -> metrics, got 3"),
    ("dsv slice column empty", {"slices": {"island": {}}}, "metrics.json: slices.island: expected at least one slice value, got an empty object"),
    ("dsv slice column unnamed", {"slices": {"": {"a": {"f1": 1}}}}, 'metrics.json: slices[""]: a slice column name is empty'),
    ("dsv slice value metrics", {"slices": {"island": {"Dream": {"acc": None}}}}, "metrics.json: slices.island.Dream.acc: expected a number, got null"),
    ("dsv slice value key with dot", {"slices": {"ver": {"1.2": {"acc": "x"}}}}, 'metrics.json: slices.ver["1.2"].acc: expected a number, got \'x\''),
    ("dsv empty metric name", {"overall": {"": 1}}, 'metrics.json: overall[""]: a metric name is empty'),
    ("dsv all sections empty", {"overall": {}, "classes": {}}, "metrics.json: no metrics: 'overall', 'classes' and 'slices' are all empty"),
]


@pytest.mark.parametrize(("doc", "message"), [(d, m) for _, d, m in REFUSALS], ids=[i for i, _, _ in REFUSALS])
def test_refusals(doc: Any, message: str) -> None:
    err = refused(doc)
    assert err.message == message
    assert str(err) == message
    assert err.name == NAME
    assert err.hint


_DELETE = object()


def _report(*keys: str, value: Any) -> dict[str, Any]:
    """``SKLEARN_LITERAL`` with the value at ``keys`` replaced (or deleted with ``_DELETE``)."""
    report = copy.deepcopy(SKLEARN_LITERAL)
    node = report
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return report


SKLEARN_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("string support", _report("cat", "support", value="2"), "metrics.json: cat.support: expected a number, got '2'"),
    ("fractional support", _report("cat", "support", value=2.5), "metrics.json: cat.support: expected a count (a whole number >= 0), got 2.5"),
    ("negative support", _report("dog", "support", value=-1), "metrics.json: dog.support: expected a count (a whole number >= 0), got -1"),
    ("boolean precision", _report("cat", "precision", value=True), "metrics.json: cat.precision: expected a number, got true"),
    ("null f1", _report("cat", "f1-score", value=None), "metrics.json: cat.f1-score: expected a number, got null"),
    ("NaN in an average", _report("macro avg", "recall", value=math.nan), "metrics.json: macro avg.recall: expected a finite number, got NaN"),
    ("missing support", _report("cat", "support", value=_DELETE), "metrics.json: cat: missing 'support' (a scikit-learn report row has precision, recall, f1-score, support)"),
    ("extra row key", _report("cat", "iou", value=0.5), "metrics.json: cat.iou: unexpected key in a scikit-learn report row (expected precision, recall, f1-score, support)"),
    ("string accuracy", _report("accuracy", value="0.75"), "metrics.json: accuracy: expected a number, got '0.75'"),
    ("extra top-level number", _report("loss", value=0.3), "metrics.json: loss: expected a class row with precision, recall, f1-score and support, got 0.3 (this looks like a scikit-learn classification report, whose only top-level number is 'accuracy')"),
    ("average not an object", _report("weighted avg", value=0.65), "metrics.json: weighted avg: expected an object with precision, recall, f1-score and support, got 0.65"),
    ("class row not a dict", _report("bird", value=[1.0, 1.0, 1.0, 1]), "metrics.json: bird: expected a class row with precision, recall, f1-score and support, got a list (this looks like a scikit-learn classification report, whose only top-level number is 'accuracy')"),
    ("mixed with the dsv form", _report("overall", value={"acc": 0.75}), "metrics.json: overall.acc: unexpected key in a scikit-learn report row (expected precision, recall, f1-score, support)"),
    # A DVC file grouping metrics named like a report row, without support: refused, not guessed.
    ("dvc group named like a row", {"val": {"precision": 0.9, "recall": 0.8, "f1-score": 0.85}}, "metrics.json: val: missing 'support' (a scikit-learn report row has precision, recall, f1-score, support)"),
]


@pytest.mark.parametrize(("doc", "message"), [(d, m) for _, d, m in SKLEARN_REFUSALS], ids=[i for i, _, _ in SKLEARN_REFUSALS])
def test_sklearn_refusals(doc: dict[str, Any], message: str) -> None:
    assert refused(doc).message == message


def test_refusal_hints_point_somewhere_useful() -> None:
    assert refused({"acc": "x"}).hint == "see docs/metrics.md for the accepted metrics formats"
    assert "zero_division=0" in (refused(b'{"acc": NaN}').hint or "")
    assert "upgrade dsv" in (refused({"format": 9, "overall": {"a": 1}}).hint or "")
    assert "'overall'" in (refused({"overall": {"a": 1}, "x": {"b": 2}}).hint or "")


def test_error_is_a_dsv_error_with_exit_code_3_and_data() -> None:
    err = refused({"classes": {"cat": {"f1": "high"}}})
    assert isinstance(err, DsvError)
    assert MetricsFormatError.exit_code == 3 and err.exit_code == 3
    assert err.name == NAME
    assert err.keys == ("classes", "cat", "f1")
    assert err.detail == "expected a number, got 'high'"
    whole = refused(b"[]")
    assert whole.keys == ()


def test_error_names_the_given_source() -> None:
    with pytest.raises(MetricsFormatError, match=r"^runs/7/eval\.json: not valid JSON: .*\(line 1, column 1\)$"):
        parse_metrics(b"", name="runs/7/eval.json")


def test_deeply_nested_json_is_refused_cleanly() -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    err = refused(deep)
    assert "nested too deeply" in err.message


def test_format_key_path() -> None:
    assert format_key_path(("classes", "cat", "f1")) == "classes.cat.f1"
    assert format_key_path(("macro avg", "f1-score")) == "macro avg.f1-score"
    assert format_key_path(("slices", "a.b", "x")) == 'slices["a.b"].x'
    assert format_key_path(("", "x")) == '[""].x'
    assert format_key_path((" padded", "y")) == '[" padded"].y'


# Any leaf of a valid report replaced by a non-number must be refused, naming that leaf.
_LEAVES = [(k, m) for k, v in SKLEARN_LITERAL.items() if isinstance(v, dict) for m in v] + [("accuracy", None)]
_NOT_NUMBERS = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.just(math.nan))


@settings(max_examples=80, deadline=None)
@given(leaf=st.sampled_from(_LEAVES), bad=_NOT_NUMBERS)
def test_sklearn_never_accepts_a_non_number(leaf: tuple[str, str | None], bad: Any) -> None:
    report = copy.deepcopy(SKLEARN_LITERAL)
    row, metric = leaf
    if metric is None:
        report[row] = bad
    else:
        report[row][metric] = bad
    err = refused(report)
    assert err.keys == ((row,) if metric is None else (row, metric))
    assert "expected a" in err.detail


@settings(max_examples=60, deadline=None)
@given(doc=st.recursive(finite, lambda inner: st.dictionaries(st.text(alphabet="abc_", min_size=1, max_size=3), inner, min_size=1, max_size=3), max_leaves=12))
def test_flat_documents_parse_or_refuse_never_lose_a_number(doc: Any) -> None:
    if not isinstance(doc, dict):
        return

    def leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for key, value in node.items():
            name = f"{prefix}{key}"
            out.extend(leaves(value, name + ".") if isinstance(value, dict) else [(name, float(value))])
        return out

    m = parse(doc)
    assert m.source_format == "flat"
    assert sorted(m.overall.items()) == sorted(leaves(doc))


def test_the_examples_in_docs_parse_as_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```json\n")[1:]]
    parsed = [parse_metrics(b.encode(), name="docs") for b in blocks]
    assert [m.source_format for m in parsed] == ["sklearn", "dsv", "flat"]
    sklearn_doc, dsv_doc, flat_doc = parsed
    assert sklearn_doc == parse(SKLEARN_LITERAL)
    assert dsv_doc.class_names() == ["cat", "dog"]
    assert dsv_doc.slices["sex"]["m"] == {"accuracy": 0.90}
    assert sorted(flat_doc.overall) == ["accuracy", "step", "train.acc", "train.loss", "val.acc", "val.loss"]
