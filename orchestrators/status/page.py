"""The dashboard: one self-contained page (inline style and script, nothing fetched but our own routes).

The Content-Security-Policy allows exactly this page's script and style by their SHA-256 and connections to its
own origin only; the script builds the page with text nodes (no markup from data), so a hostile incident id or
reason shows as text.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

_HERE = Path(__file__).parent
STYLE = (_HERE / "dashboard.css").read_text(encoding="utf-8")
SCRIPT = (_HERE / "dashboard.js").read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CONTENT_SECURITY_POLICY = (f"default-src 'none'; script-src '{_digest(SCRIPT)}'; style-src '{_digest(STYLE)}'; "
                           "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")

PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Restore orchestrator: incidents</title><style>{STYLE}</style></head>
<body><header><h1>Restore orchestrator</h1><span id="capacity" aria-live="polite"></span>
<span id="status" aria-live="polite">Loading…</span></header>
<main><h2>Incidents (newest first)</h2><div id="incidents"></div><div id="detail"></div></main>
<script>{SCRIPT}</script></body></html>
"""
