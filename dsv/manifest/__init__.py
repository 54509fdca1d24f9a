"""Manifests: every file of a snapshot as chunked Arrow tables, their encoding, and file-level diffs.

``dsv.manifest.encoding`` defines the bytes, ``dsv.manifest.tables`` builds,
stores and loads manifests, ``dsv.manifest.diff`` compares them.
"""

from dsv.manifest.diff import ChangeKind, FileChange, FileDiff, diff_manifests, diff_tables
from dsv.manifest.encoding import ENTRY_SCHEMA, ROOT_SCHEMA, decode_chunk, decode_root, encode_chunk, encode_root
from dsv.manifest.tables import (
    BOUNDARY_BITS,
    MAX_CHUNK_ROWS,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODES,
    Manifest,
    empty_entries,
    entries_table,
    manifest_problems,
    read_manifest,
    row_problems,
    write_manifest,
    write_manifest_patch,
)

__all__ = [
    "BOUNDARY_BITS",
    "ENTRY_SCHEMA",
    "MAX_CHUNK_ROWS",
    "MODES",
    "MODE_EXEC",
    "MODE_FILE",
    "MODE_LINK",
    "ROOT_SCHEMA",
    "ChangeKind",
    "FileChange",
    "FileDiff",
    "Manifest",
    "decode_chunk",
    "decode_root",
    "diff_manifests",
    "diff_tables",
    "empty_entries",
    "encode_chunk",
    "encode_root",
    "entries_table",
    "read_manifest",
    "manifest_problems",
    "row_problems",
    "write_manifest",
    "write_manifest_patch",
]
