"""Format version numbers (docs/format.md), importable without pydantic."""

FORMAT_VERSION = 1
"""The repository and JSON-document format version this dsv reads and writes."""
