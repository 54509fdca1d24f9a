"""``dsv audit`` and ``dsv report``: the review commands (issue 12), registered on the ``cli`` group."""

from __future__ import annotations

import click

from dsv.cli.app import _print_warnings, _repo, cli, json_option
from dsv.cli.render import emit_json, human_size


@cli.command()
@click.argument("spec", metavar="A..B")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), metavar="FILE", help="Write the report to FILE (default: stdout).")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default=None, help="html (default with -o FILE.html or no -o), md for a pull-request comment, or json.")
@json_option
@click.option("--metrics-name", default=None, metavar="NAME", help="Compare metrics records named NAME (default: each side's newest).")
@click.option("--thumbnails", type=click.IntRange(min=0), default=6, show_default=True, metavar="N", help="Samples shown per kind (relabeled, conflicting, hard) of image folder sources.")
@click.pass_context
def report(ctx: click.Context, spec: str, output: str | None, fmt: str | None, as_json: bool, metrics_name: str | None, thumbnails: int) -> None:
    """One self-contained page about the change A..B: classes, relabels, slices, metrics, audit, drift, samples.

    B alone means B~1..B. The HTML has no script and loads nothing: mail it, attach it to a CI run.
    """
    from dsv.cli.reportrender import render_report_markdown

    if as_json:
        fmt = "json"
    if fmt is None:
        fmt = "md" if output and output.lower().endswith(".md") else "html"
    data = _repo(ctx).report(spec, metrics_name=metrics_name, thumbnails=thumbnails)
    _print_warnings(data.warnings)
    if fmt == "json":
        import json as _json

        text = _json.dumps(data.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    elif fmt == "md":
        from dsv.cli.diffrender import md_safe

        text = "\n".join(md_safe(render_report_markdown(data))) + "\n"
    else:
        from dsv.report.html import render_html

        text = render_html(data)
    if output is None:
        click.echo(text, nl=False)
        return
    from dsv.base.fsio import atomic_write_bytes

    try:
        atomic_write_bytes(output, text.encode("utf-8"))
    except OSError as err:
        from dsv.base.errors import StorageError

        raise StorageError("write", output, err) from err
    click.echo(f"Wrote {output} ({human_size(len(text.encode('utf-8')))})", err=True)


@cli.command()
@click.argument("rev", required=False)
@click.option("--source", default=None, metavar="NAME", help="Audit only the sample source NAME.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text", show_default=True, help="Output format.")
@json_option
@click.option("--fail-on", default=None, metavar="CHECKS", help="Exit 1 when a finding exceeds its limit, e.g. conflicts,leakage,imbalance>10,missing-labels.")
@click.option("--min-samples", type=click.IntRange(min=0), default=None, metavar="N", help="Report classes with fewer than N samples (dsv.toml [audit], default 10).")
@click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N", help="Examples listed per finding (default 20).")
@click.option("--history", type=click.IntRange(min=0), default=None, metavar="N", help="Versions searched for labels going back and forth (default 10; 0 or 1: off).")
@click.option("--metrics-name", default=None, metavar="NAME", help="Hard samples from this metrics record's predictions (default: the newest with predictions).")
@click.pass_context
def audit(
    ctx: click.Context,
    rev: str | None,
    source: str | None,
    fmt: str,
    as_json: bool,
    fail_on: str | None,
    min_samples: int | None,
    limit: int | None,
    history: int | None,
    metrics_name: str | None,
) -> None:
    """Audit the samples of REV (default: the working tree): label conflicts, split leakage, duplicates,
    coverage and hard samples, per source and overall.

    With --fail-on, exit 1 when a listed check fails (for CI).
    """
    from dsv.cli.auditrender import render_audit

    report = _repo(ctx).audit(rev, source=source, min_samples=min_samples, limit=limit, history=history, metrics_name=metrics_name, fail_on=fail_on)
    _print_warnings(report.warnings)
    if as_json:
        fmt = "json"
    if fmt == "json":
        emit_json(report.to_dict())
    else:
        lines = render_audit(report, markdown=fmt == "md")
        from dsv.cli.diffrender import md_safe

        click.echo("\n".join(md_safe(lines) if fmt == "md" else lines))
    if report.failed:
        ctx.exit(1)
