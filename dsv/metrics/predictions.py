"""Per-sample predictions attached to a metrics record (docs/metrics.md, "Predictions").

A predictions table has one row per evaluated sample: the sample's key (the
source's key columns, or ``key``; ``path`` for a folder source), ``predicted``
(the predicted class) and ``confidence`` (the model's probability of the
predicted class, 0..1) and/or ``loss`` (the per-sample loss of the given
label, >= 0). Parquet or CSV with a header. dsv stores the file's bytes as they
are, as one object the record names; it validates them once, here, with DuckDB.
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dsv.base.errors import MetricsFormatError
from dsv.base.hashing import hash_bytes
from dsv.history.objects import ObjectIdStr

REQUIRED = "predicted"
SCORES = ("confidence", "loss")


class PredictionsRef(BaseModel):
    """What a metrics record says about its predictions object."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    oid: ObjectIdStr
    format: Literal["parquet", "csv"]
    rows: int
    columns: list[str]
    score: Literal["confidence", "loss"]


def predictions_format(data: bytes, name: str) -> str:
    """``parquet`` (by its magic bytes, or a .parquet/.pq name) or ``csv``."""
    if data[:4] == b"PAR1" or name.lower().endswith((".parquet", ".pq")):
        return "parquet"
    if name.lower().endswith((".csv", ".tsv")) or not name.lower().rsplit("/", 1)[-1].count("."):
        return "csv"
    raise MetricsFormatError(name, "predictions must be a Parquet or CSV file", hint="see docs/metrics.md, 'Predictions'")


def read_predictions(data: bytes, *, name: str) -> PredictionsRef:
    """Validate a predictions file; return the reference a record stores (its object id, format, rows, columns, score).

    Refused, naming the file: unreadable bytes, no ``predicted`` column, neither
    ``confidence`` nor ``loss``, a score that is not a number, a confidence
    outside 0..1, a negative loss, no column besides those (nothing to match samples by).
    """
    import duckdb

    fmt = predictions_format(data, name)
    fd, path = tempfile.mkstemp(prefix="dsv-predictions-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        con = duckdb.connect(":memory:")
        try:
            reader = f"read_parquet('{path}')" if fmt == "parquet" else f"read_csv('{path}', header=true, auto_detect=true, sample_size=-1)"
            try:
                cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
                (rows,) = con.execute(f"SELECT count(*) FROM {reader}").fetchall()[0]
            except duckdb.Error as err:
                detail = " ".join(str(err).replace(path, name).split())[:300]
                raise MetricsFormatError(name, f"cannot read the predictions ({detail})", hint="see docs/metrics.md, 'Predictions'") from err
            if REQUIRED not in cols:
                raise MetricsFormatError(name, f"predictions need a 'predicted' column (columns: {', '.join(cols)})", hint="see docs/metrics.md, 'Predictions'")
            scores = [s for s in SCORES if s in cols]
            if not scores:
                raise MetricsFormatError(name, "predictions need a 'confidence' or a 'loss' column", hint="see docs/metrics.md, 'Predictions'")
            if not [c for c in cols if c not in (REQUIRED, *SCORES)]:
                raise MetricsFormatError(name, "predictions need a key column (the source's key columns, 'key', or 'path')")
            for s in scores:
                t = cols[s]
                if not t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")):
                    raise MetricsFormatError(name, f"{s}: expected numbers, got a {t} column")
            if "confidence" in cols:
                (bad,) = con.execute(f"SELECT count(*) FROM {reader} WHERE confidence < 0 OR confidence > 1 OR isnan(confidence::DOUBLE)").fetchall()[0]
                if bad:
                    raise MetricsFormatError(name, f"confidence: {bad} value(s) outside 0..1")
            if "loss" in cols:
                (bad,) = con.execute(f"SELECT count(*) FROM {reader} WHERE loss < 0 OR isnan(loss::DOUBLE)").fetchall()[0]
                if bad:
                    raise MetricsFormatError(name, f"loss: {bad} negative or NaN value(s)")
        finally:
            con.close()
    finally:
        os.unlink(path)
    return PredictionsRef(oid=hash_bytes(data), format=fmt, rows=int(rows), columns=list(cols), score=scores[0])  # type: ignore[arg-type]
