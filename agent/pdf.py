"""HTML to PDF with WeasyPrint: the only module that imports it.

WeasyPrint is an optional dependency (``pip install 'evidock[export]'``) and needs
Pango and a CJK font from Debian (``scripts/system-deps.sh export``): without the
font, Chinese text would print as empty boxes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import Any

from storage.errors import UsageError

log = logging.getLogger(__name__)

_HOW = ("install it with `pip install 'evidock[export]'` and its Debian packages (Pango, "
        "a CJK font) with `scripts/system-deps.sh export`")


def _weasyprint() -> Any:
    try:
        import weasyprint  # optional, and slow to import
    except ImportError as exc:
        raise UsageError(f"the PDF description needs WeasyPrint, which is not installed: "
                         f"{_HOW}; nothing was exported") from exc
    except OSError as exc:  # WeasyPrint is there but Pango is not
        raise UsageError(f"the PDF description needs WeasyPrint's system libraries ({exc}): "
                         f"{_HOW}; nothing was exported") from exc
    return weasyprint


def require() -> None:
    """Raise UsageError now, before anything is written, if PDFs cannot be made here:
    WeasyPrint and Pango missing, or no font that covers Chinese (which would print
    every Chinese character of the description as an empty box)."""
    _weasyprint()
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        raise UsageError("cannot check for a Chinese font: fc-list (Debian package "
                         f"fontconfig) is not installed; {_HOW}; nothing was exported")
    found = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True,
                           timeout=60, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise UsageError("no font that covers Chinese is installed (fontconfig finds none "
                         f"for :lang=zh), so the description would print empty boxes; {_HOW}"
                         "; nothing was exported")


def html_to_pdf(document: str) -> bytes:
    """Print an HTML document (inline CSS, no external resources) to PDF bytes."""
    weasyprint = _weasyprint()
    # No base URL and a fetcher that refuses everything: the page has no links to load,
    # and text from recorders can never make the renderer open a file or a URL.
    html = weasyprint.HTML(string=document, url_fetcher=_refuse)
    pdf: bytes = html.write_pdf()
    return pdf


def _refuse(url: str, *_args: Any, **_kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"the description loads no external resource ({url[:80]})")
