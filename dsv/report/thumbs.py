"""Thumbnails as inline data URIs: downscaled with Pillow when it is installed, else the original bytes when small."""

from __future__ import annotations

import base64
import io

THUMB_SIZE = 160
"""Longest side of a thumbnail, in pixels."""
MAX_INLINE = 256 << 10
"""Without Pillow, images up to this size are inlined as they are; larger ones are listed without a picture."""


def thumbnail(data: bytes, mime: str) -> str | None:
    """A ``data:`` URI showing the image, or ``None`` when it cannot be inlined small enough."""
    try:
        from PIL import Image
    except ImportError:
        Image = None  # type: ignore[assignment]  # noqa: N806
    if Image is not None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                out = io.BytesIO()
                if im.mode in ("RGBA", "LA", "P"):
                    im.save(out, format="PNG", optimize=True)
                    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
                im.convert("RGB").save(out, format="JPEG", quality=85)
                return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
        except Exception:  # noqa: BLE001 - a file Pillow cannot decode is shown as it is, if small
            pass
    if len(data) <= MAX_INLINE:
        return f"data:{mime};base64," + base64.b64encode(data).decode()
    return None
