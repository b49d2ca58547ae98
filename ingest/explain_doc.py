"""The printed written explanation (情况说明) of one explanation, for the case file.

Pure: a dict of what the catalog holds (agent/explain_cli.py gathers it) becomes one
self-contained HTML page, which agent/pdf.py prints to PDF. It shows the facts evidock
recorded, then each statement officers made (reason, text, signers, and a line for
each signer's handwritten signature). An open explanation gets blank lines and
signature boxes to be filled in by hand. Every value is escaped as in the export
description (storage.text.shown, then HTML escaping).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ingest.description import CSS, local_time, rows_html, value_text
from ingest.explain import KINDS, REASON_ZH, Reason, signers_for

TITLE = ("情况说明", "Written explanation")
STATUS = {"open": "待说明 open: no statement yet", "completed": "已说明 completed"}


def fact_rows(exp: Mapping[str, Any], zone: str) -> list[tuple[str, str, str]]:
    kind = str(exp["kind"])
    about = KINDS[kind][1] if kind in KINDS else "unknown kind"
    officer = exp.get("officer")
    return [
        ("编号", "Explanation", f"#{exp['id']}"),
        ("状态", "Status", STATUS.get(str(exp["status"]), value_text(exp["status"]))),
        ("规则", "Rule", f"{value_text(exp['rule'])}: {about}"),
        ("类别", "Kind", value_text(kind)),
        ("发生时间", "When", local_time(exp["occurred_at"], zone)),
        ("执法记录仪", "Recorder", value_text(exp["device"])),
        ("执法人员", "Officer", value_text(
            f"{officer} {exp.get('officer_name') or ''}".strip() if officer else None)),
        ("文件", "File on the recorder", value_text(exp["source_path"])),
        ("录像记录", "Recording", value_text(exp["recording_id"])),
        ("入库会话", "Dock session", value_text(exp["session"])),
        ("发现情况", "What evidock found", value_text(exp["error"])),
        ("处理情况", "What evidock did", value_text(exp["action"])),
    ]


def _reason(value: str) -> str:
    try:
        reason = Reason(value)
    except ValueError:
        return value_text(value)
    return f"{REASON_ZH[reason]} {reason.value}"


def statement_rows(st: Mapping[str, Any], zone: str) -> list[tuple[str, str, str]]:
    return [("说明编号", "Statement", f"#{st['id']}"
             + (f" (更正 corrects #{st['corrects']})" if st.get("corrects") else "")),
            ("说明时间", "Made", local_time(st["made_at"], zone)),
            ("原因", "Reason", _reason(str(st["reason"]))),
            ("说明", "Statement", value_text(st["text"]))]


def _signature_table(signers: Sequence[Mapping[str, Any]], blanks: int) -> str:
    out = ['<table class="signatures">']
    for s in signers:
        who = value_text(f"{s['officer']} {s.get('name') or ''} ({s.get('role') or '?'})")
        out.append(f"<tr><th>{html.escape(who)}</th><td></td>"
                   '<th>日期 <span class="en">Date</span></th><td></td></tr>')
    out += ['<tr><th>签名人 <span class="en">Signer</span></th><td></td>'
            '<th>日期 <span class="en">Date</span></th><td></td></tr>'] * blanks
    out.append("</table>")
    return "".join(out)


def html_document(exp: Mapping[str, Any], statements: Sequence[Mapping[str, Any]],
                  zone: str) -> str:
    """One explanation with its statements; ``exp`` is render.explanation_dict plus the
    officer's number and name, each statement render.statement_dict with its signers'
    names and roles."""
    parts = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(TITLE[0])} #{html.escape(str(exp['id']))}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>{html.escape(TITLE[0])}<span class="en">{html.escape(TITLE[1])}</span></h1>',
        '<h2>记录的事实<span class="en">Facts recorded by evidock</span></h2>',
        f"<table>{rows_html(fact_rows(exp, zone))}</table>",
    ]
    for st in statements:
        parts.append('<div class="recording"><h2>当事人说明<span class="en">Statement by the '
                     "officers</span></h2>"
                     f"<table>{rows_html(statement_rows(st, zone))}</table>"
                     '<h3>签名 <span class="en">Signatures</span></h3>'
                     f"{_signature_table(st['signers'], 0)}</div>")
    if not statements:
        need = signers_for(str(exp["rule"]))
        reasons = "　".join(f"□ {REASON_ZH[r]} {r.value}" for r in Reason)
        parts.append('<div class="recording"><h2>当事人说明<span class="en">Statement (to be '
                     "written by hand, then entered with `evidock explain complete`)</span>"
                     f"</h2><p>原因 Reason: {html.escape(reasons)}</p>"
                     '<table class="blank"><tr><td></td></tr><tr><td></td></tr>'
                     "<tr><td></td></tr></table>"
                     f"<p>{html.escape(need.why)}; signed by {html.escape(need.describe())}."
                     "</p>"
                     f"{_signature_table([], max(need.minimum, 2))}</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
