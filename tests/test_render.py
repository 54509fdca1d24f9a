"""The CLI's shared renderers (dsv.cli.render)."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dsv.cli.render import quote_path


@settings(max_examples=500, deadline=None)
@given(st.text())
@example("with space.txt")
@example("tab\there")
@example("nbsp\u00a0name")
@example("ideographic\u3000space")
@example("line\u2028sep")
@example("-starts-with-dash")
@example("bell\x07")
@example("plain/path.jpg")
@example("caf\u00e9/\u732b.png")
def test_quote_path_quotes_exactly_names_with_spaces_controls_or_a_leading_dash(path: str) -> None:
    needs = any(c.isspace() or ord(c) < 32 for c in path) or path.startswith("-")
    shown = quote_path(path)
    assert shown == (json.dumps(path, ensure_ascii=False) if needs else path)
