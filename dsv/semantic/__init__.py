"""Semantic diff: what a dataset change did to each class and slice.

Samples are declared in ``dsv.toml`` (folder patterns and annotation tables);
the diff engine joins the two versions' samples with DuckDB (vectorised,
spilling to disk for tables larger than memory) and reports per-class,
per-slice and relabel counts, schema changes and changed cells.
"""
