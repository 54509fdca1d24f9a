"""dsv report: one self-contained HTML page, checked in a real headless browser (Debian's chromium via Playwright).

The page must render without console errors or network requests, and its charts
must hold the numbers of the JSON embedded in it (and of ``dsv report --json``).
A screenshot is kept under ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest

import dsv
from dsv.report.thumbs import MAX_INLINE, THUMB_SIZE, thumbnail

from conftest import run_dsv, write_tree

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG written by hand (no imaging library needed to make test data)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def report_repo(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> Path:
    """Two versions of an image folder plus a table: relabels, a conflict, leakage, drift, metrics with predictions."""
    files: dict[str, bytes | str] = {}
    colours = {"cat": (230, 120, 40), "dog": (50, 110, 210), "bird": (70, 170, 90)}
    n = 0
    for split in ("train", "test"):
        for label, rgb in colours.items():
            for i in range(5 if split == "train" else 3):
                n += 1
                files[f"img/{split}/{label}/{i}.png"] = png(40 + n, 30, (rgb[0], (rgb[1] + 7 * n) % 256, rgb[2]))
    lines = ["id,y,split,age,city"]
    for i in range(200):
        lines.append(f"{i},{'ab'[i % 2]},{('train', 'test')[i % 3 == 0]},{30 + i % 17},{'xyz'[i % 3]}")
    files["meta.csv"] = "\n".join(lines) + "\n"
    files["dsv.toml"] = (
        '[[folders]]\npattern = "img/{split}/{label}/*"\nname = "images"\n'
        '[[tables]]\npath = "meta.csv"\nkey = "id"\nlabel = "y"\nslices = ["split"]\n'
    )
    write_tree(repo_dir, files)
    repo.commit("v1")
    repo.create_tag("v1")
    # Relabel two cats as dogs (moves), copy a dog into bird (a conflict), a train cat into test (leakage).
    os.rename(repo_dir / "img/train/cat/0.png", repo_dir / "img/train/dog/10.png")
    os.rename(repo_dir / "img/train/cat/1.png", repo_dir / "img/train/dog/11.png")
    shutil.copy(repo_dir / "img/train/dog/2.png", repo_dir / "img/train/bird/12.png")
    shutil.copy(repo_dir / "img/train/cat/2.png", repo_dir / "img/test/cat/13.png")
    lines = ["id,y,split,age,city"]
    for i in range(200):
        lines.append(f"{i},{'ab'[i % 2]},{('train', 'test')[i % 3 == 0]},{45 + i % 17},{'xyw'[i % 3]}")
    write_tree(repo_dir, {"meta.csv": "\n".join(lines) + "\n"})
    repo.commit("relabel cats, add birds")
    repo.create_tag("v2")
    (tmp_path / "m1.json").write_text(json.dumps({"overall": {"accuracy": 0.8}, "classes": {"cat": {"f1": 0.7}, "dog": {"f1": 0.8}, "bird": {"f1": 0.6}}}))
    (tmp_path / "m2.json").write_text(json.dumps({"overall": {"accuracy": 0.85}, "classes": {"cat": {"f1": 0.75}, "dog": {"f1": 0.78}, "bird": {"f1": 0.7}}}))
    (tmp_path / "p.csv").write_text(
        "path,predicted,confidence\nimg/train/dog/10.png,cat,0.97\nimg/train/dog/3.png,dog,0.9\nimg/train/bird/0.png,bird,0.8\n"
        "img/train/bird/12.png,dog,0.95\nimg/train/dog/4.png,dog,0.85\n"
    )
    repo.add_metrics("v1", tmp_path / "m1.json", name="run1", meta={"source": "images"})
    repo.add_metrics("v2", tmp_path / "m2.json", name="run2", meta={"source": "images"}, predictions=tmp_path / "p.csv")
    return repo_dir


def test_report_json_and_markdown(report_repo: Path) -> None:
    js = json.loads(run_dsv("report", "v1..v2", "--json", cwd=report_repo, check=True).stdout)
    assert js["format"] == 1 and js["range"] == "v1..v2" and len(js["commits"]) == 1
    images = {s["name"]: s for s in js["diff"]["sources"]}["images"]
    assert images["relabels"] == [{"from": "cat", "to": "dog", "count": 2}]
    assert js["audit"]["new"]["sources"][0]["conflicts"]["contents"] == 1
    assert js["drift"]["flagged"] is True
    kinds = [i["kind"] for i in js["images"]]
    assert kinds.count("relabeled") == 2 and "conflict" in kinds and "hard" in kinds
    assert all(i["mime"] == "image/png" and i["bytes"] > 0 for i in js["images"])
    md = run_dsv("report", "v1..v2", "--format", "md", cwd=report_repo, check=True).stdout.decode()
    assert md.startswith("## Data change: v1 → v2") and "| cat | dog | 2 |" in md and "### Audit findings" in md and "## Drift" in md
    assert "relabeled: `img/train/dog/10.png` (cat → dog)" in md
    # B alone is B~1..B.
    assert json.loads(run_dsv("report", "v2", "--json", cwd=report_repo, check=True).stdout)["old"]["commit"] == js["old"]["commit"]


def test_report_html_is_self_contained(report_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = run_dsv("report", "v1..v2", "-o", str(out), cwd=report_repo, check=True)
    assert "Wrote" in proc.stderr.decode()
    page = out.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script src" not in page
    assert page.count('<img src="data:image/') >= 4
    data = json.loads(page.split('<script type="application/json" id="dsv-report-data">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    assert data == json.loads(run_dsv("report", "v1..v2", "--json", cwd=report_repo, check=True).stdout) | {"warnings": data["warnings"]}


def test_report_in_a_real_browser(report_repo: Path, tmp_path: Path) -> None:
    exe = chromium_path()
    if exe is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    out = tmp_path / "report.html"
    run_dsv("report", "v1..v2", "-o", str(out), cwd=report_repo, check=True)
    with sync_api.sync_playwright() as p:
        # Playwright gives the browser a fresh, empty profile of its own.
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda err: problems.append(f"pageerror: {err}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_load_state("load")
            data = json.loads(page.locator("#dsv-report-data").text_content())
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}", file=sys.stderr)
            assert problems == []
            assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
            assert page.title() == "dsv report v1..v2"
            # Class bars hold the diff's counts, in attributes and in their labels.
            for source in data["diff"]["sources"]:
                for c in source["classes"]:
                    for side in ("before", "after"):
                        sel = f'svg[data-chart="classes"][data-source="{source["name"]}"] rect[data-cls="{c["class"] or ""}"][data-side="{side}"]'
                        assert int(page.locator(sel).get_attribute("data-value")) == c[side]
                        label = page.locator(f'svg[data-chart="classes"][data-source="{source["name"]}"] text[data-cls="{c["class"] or ""}"][data-side="{side}"]')
                        assert label.text_content() == str(c[side])
                # The relabel heatmap: every cell of the matrix, and the text in non-empty cells.
                for r in source["relabels"]:
                    cell = page.locator(f'svg[data-chart="relabels"][data-source="{source["name"]}"] rect[data-src="{r["from"]}"][data-dst="{r["to"]}"]')
                    assert int(cell.get_attribute("data-value")) == r["count"]
                    text = page.locator(f'svg[data-chart="relabels"][data-source="{source["name"]}"] text[data-src="{r["from"]}"][data-dst="{r["to"]}"]')
                    assert text.text_content() == str(r["count"])
                for s in source["slices"]:
                    row = page.locator(f'tr[data-chart="slices"][data-source="{source["name"]}"][data-column="{s["column"]}"][data-value="{s["value"]}"]')
                    assert (int(row.get_attribute("data-before")), int(row.get_attribute("data-after"))) == (s["before"], s["after"])
            n_cells = page.locator('svg[data-chart="relabels"] rect').count()
            assert n_cells == sum(len({r["from"] for r in s["relabels"]}) * len({r["to"] for r in s["relabels"]}) for s in data["diff"]["sources"])
            # Audit counts at both ends.
            for side in ("old", "new"):
                for s in data["audit"][side]["sources"]:
                    for kind, count in s["counts"].items():
                        row = page.locator(f'tr[data-chart="audit"][data-source="{s["name"]}"][data-kind="{kind}"]')
                        assert int(row.get_attribute("data-before" if side == "old" else "data-after")) == count
            # Drift per column.
            for s in data["drift"]["sources"]:
                for c in s["columns"]:
                    row = page.locator(f'tr[data-chart="drift"][data-source="{s["name"]}"][data-column="{c["column"]}"]')
                    assert row.get_attribute("data-flagged") == str(c["flagged"]).lower()
                    for stat in ("psi", "ks"):
                        shown = row.get_attribute(f"data-{stat}")
                        assert (shown == "" and c[stat] is None) or float(shown) == pytest.approx(c[stat])
            # Metrics beside data, per class.
            for src in data["metrics"]["sources"]:
                for c in src["classes"]:
                    for m in c["metrics"]:
                        cell = page.locator(f'tr[data-chart="metrics"][data-cls="{c["class"]}"] td[data-metric="{m["metric"]}"]')
                        assert float(cell.get_attribute("data-after")) == pytest.approx(m["after"])
            # Summary cards.
            relabeled = sum(s["totals"]["relabeled"] for s in data["diff"]["sources"])
            assert int(page.locator('[data-card="relabeled"]').get_attribute("data-value")) == relabeled
            # Thumbnails decoded by the browser (naturalWidth > 0), at most THUMB_SIZE wide when Pillow downscaled them.
            widths = page.eval_on_selector_all(".gallery img", "els => els.map(e => e.naturalWidth)")
            assert len(widths) == len(data["images"]) and all(w > 0 for w in widths)
            # The page is laid out: the heading is visible and the charts have size.
            assert page.locator("h1").is_visible()
            box = page.locator('svg[data-chart="classes"]').first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 30
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


# -- thumbnails ------------------------------------------------------------------------------------


def test_thumbnails_downscale_with_pillow() -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    uri = thumbnail(png(400, 200, (10, 20, 30)), "image/png")
    assert uri is not None and uri.startswith("data:image/")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        assert max(im.size) == THUMB_SIZE and im.size == (THUMB_SIZE, THUMB_SIZE // 2)


def test_thumbnails_without_pillow_inline_small_originals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    small = png(20, 20, (1, 2, 3))
    assert thumbnail(small, "image/png") == "data:image/png;base64," + base64.b64encode(small).decode()
    assert thumbnail(b"\x00" * (MAX_INLINE + 1), "image/png") is None
