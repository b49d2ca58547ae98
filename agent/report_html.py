"""The supervisors' HTML report (R14): the table and two charts (matplotlib, inline SVG).

matplotlib is optional (``pip install 'evidock[report]'``) and imported only here.
Every value from the catalog is HTML-escaped; the page loads nothing from outside.
"""

from __future__ import annotations

import html
import io
import logging
from typing import Any

from ingest.description import CJK_FONTS, CSS
from ingest.report import Line, Report
from storage.errors import UsageError
from storage.text import shown

COLUMNS = (("recordings", "录像数", "recordings"), ("hours", "时长（小时）", "hours"),
           ("bytes", "字节", "bytes"), ("late", "超时", "late"),
           ("late_rate", "超时率", "late rate"),
           ("explanations_open", "待说明", "open explanations"),
           ("explanations_completed", "已说明", "completed explanations"),
           ("interruptions", "中断", "interruptions"), ("device_faults", "设备故障", "faults"))
GROUP_ZH = {"officer": "执法人员", "device": "执法记录仪", "category": "类别", "unit": "单位"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("svg")
        from matplotlib import pyplot
    except ImportError as exc:
        raise UsageError("the HTML report's charts need matplotlib, which is not installed: "
                         "pip install 'evidock[report]'; nothing was written") from exc
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    have = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in (f.strip('"') for f in CJK_FONTS) if name in have]
    if not cjk:
        raise UsageError("no font that covers Chinese is installed for the charts (e.g. "
                         "fonts-wqy-zenhei: scripts/system-deps.sh export); nothing was written")
    pyplot.rcParams["font.family"] = [*cjk, "DejaVu Sans"]
    pyplot.rcParams["svg.fonttype"] = "none"  # text stays text (selectable, searchable)
    return pyplot


def _bars(pyplot: Any, labels: list[str], values: list[float], title: str,
          percent: bool = False) -> str:
    fig, ax = pyplot.subplots(figsize=(7.5, 0.45 * max(len(labels), 3) + 1.2))
    ax.barh(labels, values, color="#3b6ea8")
    ax.invert_yaxis()
    ax.set_xlim(0, (max(values, default=0) or 1) * 1.15)  # room for the value labels
    ax.set_title(title)
    if percent:
        ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0%}")
    for y, v in enumerate(values):
        ax.annotate(f"{v:.0%}" if percent else f"{v:g}", (v, y), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    pyplot.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # without the XML prolog: inline in HTML


def _cell(line: Line, key: str) -> str:
    value = line.to_dict()[key]
    if key == "late_rate":
        return f"{float(value):.1%}"  # type: ignore[arg-type]
    if key == "bytes":
        return f"{int(value):,}"  # type: ignore[call-overload]
    return f"{value:g}" if isinstance(value, float) else str(value)


def html_report(report: Report, title_period: str) -> str:
    pyplot = _pyplot()
    labels = [shown(x.group, limit=40) for x in report.lines]
    charts = [
        _bars(pyplot, labels, [float(x.recordings) for x in report.lines],
              "录像数 Recordings"),
        _bars(pyplot, labels, [x.late_rate for x in report.lines],
              "超时入库率 Late storage rate (R2)", percent=True),
    ]
    head = "".join(f"<th>{html.escape(zh)}<br><span class=\"en\">{html.escape(en)}</span></th>"
                   for _, zh, en in COLUMNS)
    rows = []
    for line in [*report.lines, report.total]:
        name = "合计 total" if line is report.total else shown(line.group, limit=200)
        cells = "".join(f"<td class=\"n\">{html.escape(_cell(line, key))}</td>"
                        for key, _, _ in COLUMNS)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    by = report.by
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        "<title>执法记录统计 Recording statistics</title>",
        f"<style>{CSS} @page {{ size: A4 landscape; }} td.n {{ text-align: right; }}"
        " th { width: auto; } .chart svg { max-width: 100%; height: auto; }</style>",
        "</head><body>",
        '<h1>执法记录统计<span class="en">Recording statistics (R14)</span></h1>',
        f"<p>期间 Period: {html.escape(title_period)}　分组 By: {html.escape(GROUP_ZH[by])} "
        f"{html.escape(by)}</p>",
        f"<table><tr><th>{html.escape(GROUP_ZH[by])}<br><span class=\"en\">{by}</span></th>"
        f"{head}</tr>{''.join(rows)}</table>",
        *[f'<div class="chart">{svg}</div>' for svg in charts],
        "</body></html>\n"])
