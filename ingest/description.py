"""The written description of an evidence export (R10): plain text and HTML, from the manifest.

R10 (001 §28, 002 §43): evidence is exported with a written description naming the
collector, the time and place of collection; the list of recordings gives, for each,
the device, the officer, the times and the digest. Headings are Chinese with English.
Pure functions of the manifest (ingest/package.py); the PDF is the HTML printed by
agent/pdf.py. Every value from a recorder or a user is escaped (storage.text.shown,
then HTML escaping), so no name can act on a terminal or inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.text import shown

TITLE = ("执法音视频证据导出说明", "Evidence export description")

#: The CJK fonts named in the CSS, in order (fonts-noto-cjk, fonts-wqy-zenhei).
CJK_FONTS = ('"Noto Sans CJK SC"', '"Noto Sans SC"', '"WenQuanYi Zen Hei"',
             '"Source Han Sans SC"')

_LIMIT = 4000


def value_text(value: object) -> str:
    if value is None or value == "":
        return "—"
    return shown(str(value), limit=_LIMIT)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(text: object, zone_name: str) -> str:
    """Canonical UTC text shown in the description's zone, with the UTC offset."""
    if not isinstance(text, str):
        return value_text(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return value_text(text)
    zone = _zone(zone_name)
    if zone is not None:
        moment = moment.astimezone(zone)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})"


def _size(value: object) -> str:
    return f"{value:,} bytes" if isinstance(value, int) else value_text(value)


def general_rows(manifest: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(中文, English, value) rows of the description's head."""
    coll = manifest["collection"]
    zone = str(coll.get("timezone") or "UTC")
    recordings = manifest["recordings"]
    total = sum(r["size"] for r in recordings if isinstance(r.get("size"), int))
    selection = (f"案件编号 case {value_text(coll['case'])}" if coll.get("case")
                 else "记录编号 recording IDs " + ", ".join(str(i) for i in coll["recording_ids"]))
    return [
        ("导出编号", "Package ID", value_text(manifest["package_id"])),
        ("执法机构", "Agency", value_text(manifest["agency"])),
        ("采集站", "Docking station", value_text(manifest["station"])),
        ("提取人", "Collector", value_text(coll["collector"])),
        ("提取时间", "Time of collection", local_time(manifest["created_at"], zone)),
        ("提取地点", "Place of collection", value_text(coll["place"])),
        ("提取事由", "Reason", value_text(coll["reason"])),
        ("批准人", "Approved by", value_text(coll["approved_by"])),
        ("选取方式", "Selected by", selection),
        ("证据数量", "Recordings", f"{len(recordings)} ({_size(total)})"),
        ("签名密钥", "Station signing key", value_text(manifest["key_id"])),
    ]


def recording_rows(entry: Mapping[str, Any], zone: str) -> list[tuple[str, str, str]]:
    rec, cat = entry["record"], entry["catalog"]
    name = cat.get("officer_name")
    officer = value_text(rec["officer"]) + (f" {value_text(name)}" if name else "")
    late = "是 yes" if cat.get("late") else "否 no"
    return [
        ("设备编号", "Device", value_text(rec["device"])),
        ("执法人员", "Officer", officer),
        ("开始时间", "Start", local_time(rec["recording_start"], zone)),
        ("结束时间", "End", local_time(rec["recording_end"], zone)),
        ("入库时间", "Stored", local_time(rec["ingested_at"], zone)),
        ("逾期入库", "Stored late", late),
        ("案件编号", "Case", value_text(cat.get("case"))),
        ("当事人", "Party", value_text(cat.get("party"))),
        ("执法类别", "Category", value_text(cat.get("category"))),
        ("原始文件", "Original file", value_text(rec["source_path"])),
        ("包内文件", "File in package", value_text(entry["file"])),
        ("大小", "Size", _size(entry["size"])),
        ("SHA-256", "digest", value_text(entry["sha256"])),
        ("状态", "State", value_text(cat.get("state"))),
        ("日志条目", "Ledger leaves", ", ".join(f"{leaf['seq']} ({value_text(leaf['kind'])})"
                                               for leaf in entry["leaves"])),
    ]


VERIFY_NOTE = (
    ("校验方法", "How to check this package"),
    "本导出包可在不连接采集站的情况下独立校验：每个文件的 SHA-256 摘要、采集站对每条入库记录的"
    "数字签名、以及签名检查点对日志条目的包含证明。请使用另行取得的采集站公钥：",
    "The package can be checked without the station: every file's SHA-256 digest, the "
    "station's signature on each ingest record, and the inclusion proofs of the ledger "
    "leaves in the signed checkpoint. Use the station's public key obtained separately:",
    "evidock verify-export <package folder> --key station.pub",
    "格式说明见 docs/export-format.md。 The format is described in docs/export-format.md.",
)

SIGNATURES = (("提取人签名", "Collector"), ("批准人签名", "Approver"), ("见证人签名", "Witness"))


def text(manifest: Mapping[str, Any]) -> str:
    """description.txt: UTF-8 plain text."""
    zone = str(manifest["collection"].get("timezone") or "UTC")
    title = f"{TITLE[0]}  {TITLE[1]}"
    lines = [title, "=" * 60, ""]
    lines += [f"{zh} {en}: {value}" for zh, en, value in general_rows(manifest)]
    lines += ["", "证据清单  List of recordings", "-" * 60]
    for number, entry in enumerate(manifest["recordings"], 1):
        lines += ["", f"{number}. 记录编号 Recording {value_text(entry['id'])}"]
        lines += [f"   {zh} {en}: {value}" for zh, en, value in recording_rows(entry, zone)]
    (zh, en), *paragraphs = VERIFY_NOTE
    lines += ["", f"{zh}  {en}", "-" * 60, *(str(p) for p in paragraphs), ""]
    for zh, en in SIGNATURES:
        lines += [f"{zh} {en}: ____________________   日期 Date: ____________", ""]
    return "\n".join(lines)


def rows_html(rows: list[tuple[str, str, str]]) -> str:
    out = []
    for zh, en, value in rows:
        cell = '<td class="digest">' if zh == "SHA-256" else "<td>"
        out.append(f'<tr><th><span class="zh">{html.escape(zh)}</span> '
                   f'<span class="en">{html.escape(en)}</span></th>'
                   f"{cell}{html.escape(value)}</td></tr>")
    return "".join(out)


CSS = f"""
@page {{ size: A4; margin: 18mm 16mm 20mm 16mm;
        @bottom-center {{ content: "第 " counter(page) " 页 / 共 " counter(pages) " 页  "
                          "page " counter(page) " of " counter(pages);
                          font-family: {", ".join(CJK_FONTS)}, sans-serif; font-size: 8pt; }} }}
body {{ font-family: {", ".join(CJK_FONTS)}, "DejaVu Sans", sans-serif; font-size: 10pt;
       line-height: 1.45; color: #111; }}
h1 {{ font-size: 16pt; margin: 0 0 2mm 0; }}
h1 .en, h2 .en {{ font-weight: normal; color: #444; font-size: 0.8em; margin-left: 0.6em; }}
h2 {{ font-size: 12pt; border-bottom: 1px solid #888; margin: 6mm 0 2mm 0; }}
h3 {{ font-size: 10.5pt; margin: 4mm 0 1mm 0; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #bbb; padding: 1.2mm 2mm; vertical-align: top; text-align: left; }}
th {{ width: 34%; background: #f2f2f2; font-weight: normal; }}
th .en {{ color: #555; font-size: 0.85em; }}
td {{ overflow-wrap: anywhere; word-break: break-all; }}
td.digest, code {{ font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; }}
.recording {{ break-inside: avoid; }}
.signatures th {{ width: 22%; }}
.signatures td {{ height: 12mm; width: 28%; }}
table.blank td {{ height: 9mm; }}
p {{ margin: 1mm 0; }}
"""


def html_document(manifest: Mapping[str, Any]) -> str:
    """description.html: one self-contained HTML page (inline CSS), also printed to PDF."""
    zone = str(manifest["collection"].get("timezone") or "UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(TITLE[0])} {html.escape(TITLE[1])}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>{html.escape(TITLE[0])}<span class="en">{html.escape(TITLE[1])}</span></h1>',
        f"<table>{rows_html(general_rows(manifest))}</table>",
        '<h2>证据清单<span class="en">List of recordings</span></h2>',
    ]
    for number, entry in enumerate(manifest["recordings"], 1):
        parts.append(f'<div class="recording"><h3>{number}. 记录编号 Recording '
                     f"{html.escape(value_text(entry['id']))}</h3>"
                     f"<table>{rows_html(recording_rows(entry, zone))}</table></div>")
    (zh, en), *paragraphs = VERIFY_NOTE
    parts.append(f'<h2>{html.escape(zh)}<span class="en">{html.escape(en)}</span></h2>')
    for p in paragraphs:
        tag = "code" if str(p).startswith("evidock ") else "span"
        parts.append(f"<p><{tag}>{html.escape(str(p))}</{tag}></p>")
    parts.append('<h2>签名<span class="en">Signatures</span></h2><table class="signatures">')
    parts += [f'<tr><th><span class="zh">{html.escape(zh)}</span> <span class="en">'
              f"{html.escape(en)}</span></th><td></td><th>日期 <span class=\"en\">Date</span>"
              "</th><td></td></tr>" for zh, en in SIGNATURES]
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
