"""The zoo report: ``report.json`` (all data), ``report.md`` and a self-contained ``report.html`` (inline CSS
and SVG, no scripts, no external assets): one row per model x target, and per model a plot of the max
relative error per blob along the network and a table of the worst blobs."""

from __future__ import annotations

import html
import json
import math
import os
from typing import TYPE_CHECKING, Any

from nnbridge.fileio import atomic_write

if TYPE_CHECKING:
    from nnbridge.zoo.executor import ZooRun

WORST_BLOBS = 8
MAX_CLASSES = 50
_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:left}th{background:#eee}
.passed{background:#d7f5d7}.failed{background:#f8d0d0}.skipped{background:#eee}
h2{margin-top:1.6em;border-bottom:1px solid #ccc}svg{background:#fafafa;border:1px solid #ddd}
.num{text-align:right;font-family:monospace;white-space:nowrap}pre{white-space:pre-wrap}"""


def rows(run: ZooRun) -> list[dict[str, Any]]:
    """One row per model x target (a model without targets run gives one row)."""
    out: list[dict[str, Any]] = []
    for result in run.results:
        accuracy = result.get("accuracy") or {}
        detection = result.get("detection") or {}
        map_source = (detection.get("source", {}).get("ap") or {}).get("map")
        targets = result.get("targets") or [{"target": "-", "status": result["status"], "reason": result["reason"]}]
        for target in targets:
            acc = accuracy.get("targets", {}).get(target["target"], {})
            det = detection.get("targets", {}).get(target["target"], {})
            out.append({"model": result["name"], "target": target["target"], "status": target["status"],
                        "reason": target.get("reason", ""), "worst_blob": target.get("worst_blob"),
                        "worst_rel": target.get("worst_rel"), "seconds": target.get("seconds"),
                        "source_bytes": result.get("source_bytes"), "size": target.get("size"),
                        "top1_source": accuracy.get("source", {}).get("top1"), "top1": acc.get("top1"),
                        "top5_source": accuracy.get("source", {}).get("top5"), "top5": acc.get("top5"),
                        "agreement": acc.get("agreement"), "max_prob_diff": acc.get("max_prob_diff"),
                        "box_agreement": det.get("agreement"), "mean_iou": det.get("mean_iou"),
                        "max_score_diff": det.get("max_score_diff"), "map_source": map_source,
                        "map": (det.get("ap") or {}).get("map"), "resumed": bool(result.get("resumed"))})
    return out


def write_report(run: ZooRun) -> None:
    data = {"manifest": run.manifest, "seconds": round(run.seconds, 3), "summary": run.summary(),
            "rows": rows(run), "models": run.results}
    with atomic_write(os.path.join(run.report_dir, "report.json"), "w") as out:
        json.dump(data, out, indent=1, default=str)
    with atomic_write(os.path.join(run.report_dir, "report.md"), "w") as out:
        out.write(markdown(run))
    with atomic_write(os.path.join(run.report_dir, "report.html"), "w") as out:
        out.write(html_page(run))


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "err":
        return f"{value:.2e}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "iou":
        return f"{value:.6f}"
    if kind == "s":
        return f"{value:.2f}"
    if kind == "bytes":
        return f"{value / 1e6:.2f} MB" if value >= 1e5 else f"{value / 1e3:.1f} kB"
    return str(value)


_COLUMNS = [("model", "model", ""), ("target", "target", ""), ("status", "status", ""),
            ("worst rel err", "worst_rel", "err"), ("worst blob", "worst_blob", ""), ("time s", "seconds", "s"),
            ("source size", "source_bytes", "bytes"), ("converted size", "size", "bytes"),
            ("top-1 src", "top1_source", "pct"), ("top-1", "top1", "pct"), ("top-5 src", "top5_source", "pct"),
            ("top-5", "top5", "pct"), ("top-1 agree", "agreement", "pct"), ("max prob diff", "max_prob_diff", "err"),
            ("box agree", "box_agreement", "pct"), ("mean IoU", "mean_iou", "iou"),
            ("max score diff", "max_score_diff", "err"), ("mAP src", "map_source", "pct"), ("mAP", "map", "pct"),
            ("reason", "reason", "")]


def markdown(run: ZooRun) -> str:
    lines = ["# nnbridge zoo report", "", f"Manifest: `{run.manifest}`", "", "```", run.summary(), "```", "",
             "| " + " | ".join(c[0] for c in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows(run):
        cells = [_fmt(row[key], kind).replace("|", "\\|") for _, key, kind in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    for result in run.results:
        table = class_table(result)
        if table:
            lines += ["", f"## {result['name']}: top-1 per class", "", "| " + " | ".join(table[0]) + " |",
                      "|" + "---|" * len(table[0])]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table[1:]]
        for target in result.get("targets", []):
            worst = _worst(target.get("blobs", []))
            if worst:
                lines += ["", f"## {result['name']} -> {target['target']}: worst blobs", "",
                          "| blob | max rel err | max abs err | result |", "|---|---|---|---|"]
                lines += [f"| {b['name']} | {_fmt(b['max_rel'], 'err')} | {_fmt(b['max_abs'], 'err')} | "
                          f"{'pass' if b['passed'] else 'FAIL ' + b.get('reason', '')} |" for b in worst]
    return "\n".join(lines) + "\n"


def class_table(result: dict[str, Any]) -> list[list[str]]:
    """Header + one row per class (name from the manifest's labels file or class folders), at most
    MAX_CLASSES rows; empty without per-class accuracy."""
    classes = (result.get("accuracy") or {}).get("classes") or []
    if not classes:
        return []
    targets = sorted({k for row in classes for k in row.get("top1", {})})
    table = [["class", "images", "top-1 src", *[f"top-1 {t}" for t in targets]]]
    for row in classes[:MAX_CLASSES]:
        table.append([f"{row['label']}: {row['name']}", str(row["images"]), _fmt(row["top1_source"], "pct"),
                      *[_fmt(row["top1"].get(t), "pct") for t in targets]])
    return table


def _worst(blobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(blobs, key=lambda b: (b["passed"], -(b["max_rel"] if b["max_rel"] is not None else -1)))[
        :WORST_BLOBS]


def svg_plot(blobs: list[dict[str, Any]], rtol: float, width: int = 640, height: int = 180) -> str:
    """Max relative error per blob in network order, log scale, with the tolerance as a dashed line."""
    values = [b["max_rel"] for b in blobs]
    finite = [v for v in values if v is not None and v > 0]
    low = min([*finite, rtol]) / 10 if finite else rtol / 1e4
    high = max([*finite, rtol]) * 10
    lo, hi = math.log10(low), math.log10(high)
    left, bottom, top = 50, height - 20, 10

    def y(v: float) -> float:
        return bottom - (math.log10(max(v, low)) - lo) / (hi - lo) * (bottom - top)

    step = (width - left - 10) / max(len(values) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#888"/>']
    for exponent in range(math.ceil(lo), math.floor(hi) + 1):
        ty = y(10.0 ** exponent)
        parts.append(f'<text x="{left - 4}" y="{ty + 4:.1f}" font-size="10" text-anchor="end">1e{exponent}</text>')
    parts.append(f'<line x1="{left}" y1="{y(rtol):.1f}" x2="{width - 10}" y2="{y(rtol):.1f}" stroke="#c33" '
                 'stroke-dasharray="4 3"><title>tolerance</title></line>')
    points = [(left + i * step, y(b["max_rel"] if b["max_rel"] is not None else low), b)
              for i, b in enumerate(blobs)]
    if len(points) > 1:
        parts.append('<polyline fill="none" stroke="#369" points="'
                     + " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points) + '"/>')
    for px, py, blob in points:
        colour = "#369" if blob["passed"] else "#c33"
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>'
                     f'{html.escape(blob["name"])}: {_fmt(blob["max_rel"], "err")}</title></circle>')
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="10">blobs in network order '
                 f'({len(values)})</text></svg>')
    return "".join(parts)


def html_page(run: ZooRun) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>nnbridge zoo report</title>",
           f"<style>{_CSS}</style></head><body><h1>nnbridge zoo report</h1>",
           f"<p>Manifest <code>{esc(run.manifest)}</code></p><pre>{esc(run.summary())}</pre>",
           "<table id='summary'><tr>" + "".join(f"<th>{esc(c[0])}</th>" for c in _COLUMNS) + "</tr>"]
    for row in rows(run):
        cells = "".join(f"<td class='{'num' if kind else ''}'>{esc(_fmt(row[key], kind))}</td>"
                        for _, key, kind in _COLUMNS)
        out.append(f"<tr class='{esc(row['status'])}'>{cells}</tr>")
    out.append("</table>")
    for result in run.results:
        table = class_table(result)
        if table:
            out.append(f"<h2>{esc(result['name'])}: top-1 per class</h2><table><tr>"
                       + "".join(f"<th>{esc(c)}</th>" for c in table[0]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table[1:]]
            out.append("</table>")
        for target in result.get("targets", []):
            blobs = target.get("blobs", [])
            if not blobs:
                continue
            out.append(f"<h2>{esc(result['name'])} &rarr; {esc(target['target'])}</h2>")
            out.append(svg_plot(blobs, rtol=_rtol(run, result["name"])))
            out.append("<table><tr><th>blob</th><th>max rel err</th><th>max abs err</th><th>result</th></tr>")
            for blob in _worst(blobs):
                verdict = "pass" if blob["passed"] else "FAIL " + blob.get("reason", "")
                out.append(f"<tr class='{'passed' if blob['passed'] else 'failed'}'><td>{esc(blob['name'])}</td>"
                           f"<td class='num'>{_fmt(blob['max_rel'], 'err')}</td>"
                           f"<td class='num'>{_fmt(blob['max_abs'], 'err')}</td><td>{esc(verdict)}</td></tr>")
            out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _rtol(run: ZooRun, name: str) -> float:
    for result in run.results:
        if result["name"] == name:
            return float(result.get("rtol", 1e-4))
    return 1e-4
