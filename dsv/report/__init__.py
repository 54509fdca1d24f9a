"""Rendering of ``dsv report``: one self-contained HTML page (inline SVG charts, inline thumbnails, no script, no network).

This layer sits between the CLI and the porcelain: it turns a
:class:`dsv.api.reporting.ReportData` into a string and never prints or writes.
"""
