"""The page: one self-contained HTML file (inline CSS and JavaScript, pictures as base64 ``data:`` URIs).

Nothing on the page asks for another file or host: no fonts, scripts or pictures from outside, so the
report opens offline and can be mailed as one file. Pages are built from strings in a fixed order, so
the same content gives the same bytes.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# A token of fixed width replaced by the file's own size once the page is complete (same width: the
# size stays exact).
SIZE_TOKEN = "@@REPORT_BYTES@@"

CSS = """
:root { --ink: #1d2733; --muted: #5b6b7c; --line: #d9e0e7; --band: #f4f7fa; --accent: #1f6fb2; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
header { padding: 20px 32px 12px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
      padding: 6px 32px; overflow-x: auto; white-space: nowrap; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; font-size: 13px; }
main { padding: 8px 32px 24px; max-width: 1320px; }
section { margin: 22px 0 30px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.kpis { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px; background: #fff; }
.kpi b { display: block; font-size: 20px; }
.kpi span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th.asc::after { content: " \\25B2"; font-size: 10px; }
table.sortable th.desc::after { content: " \\25BC"; font-size: 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; }
.note { color: var(--muted); font-size: 13px; }
.bad { color: var(--bad); font-weight: 600; }
.ok { color: #1b7f3b; font-weight: 600; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { width: 164px; font-size: 12px; border: 1px solid var(--line); border-radius: 4px; padding: 4px; }
.tile img { width: 154px; height: 154px; object-fit: contain; display: block; background: var(--band); }
.tile .issue { color: var(--bad); }
footer { border-top: 1px solid var(--line); padding: 12px 32px 24px; color: var(--muted); font-size: 12px; }
"""

# Sortable tables: a click on a header sorts by that column (numbers by their data-v value).
JS = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-v');
    return v === null ? cell.textContent.trim().toLowerCase() : parseFloat(v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th) {
      th.addEventListener('click', function () {
        var column = th.cellIndex, body = table.tBodies[0];
        var ascending = !th.classList.contains('asc');
        heads.forEach(function (h) { h.classList.remove('asc', 'desc'); });
        th.classList.add(ascending ? 'asc' : 'desc');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[column]), y = key(b.cells[column]);
          if (x === y) { return 0; }
          return (x < y ? -1 : 1) * (ascending ? 1 : -1);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
"""


def esc(value: Any) -> str:
    """Text made safe for HTML."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number as shown on the page: integers with thousands separators; floats with ``digits`` decimals
    below 100, one decimal below 1,000 and none above (prices and counts need no more)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.{digits}f}"


def pct(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` (one decimal)."""
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def _cell(value: Any) -> str:
    if isinstance(value, Raw):
        return f"<td>{value.html}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        sort_key = "" if isinstance(value, float) and math.isnan(value) else f' data-v="{value!r}"'
        return f'<td class="num"{sort_key}>{esc(fmt(value))}</td>'
    return f"<td>{esc('–' if value is None else value)}</td>"


@dataclass(frozen=True)
class Raw:
    """A table cell holding HTML (already escaped) instead of text."""

    html: str


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, sortable: bool = True) -> str:
    """An HTML table; numeric cells are right-aligned and sort as numbers."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(payload: bytes, mime: str) -> str:
    """``payload`` as a ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image(payload: bytes, alt: str, mime: str = "image/png") -> str:
    """An embedded picture."""
    return f'<img src="{data_uri(payload, mime)}" alt="{esc(alt)}">'


def figure(payload: bytes, alt: str, caption: str = "", mime: str = "image/png") -> str:
    """An embedded picture with a caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{image(payload, alt, mime)}{cap}</figure>"


def tile(payload: bytes, lines: Sequence[str], *, flagged: str = "") -> str:
    """One thumbnail with caption lines (``flagged`` in red, e.g. a label issue)."""
    text = "<br>".join(esc(line) for line in lines)
    mark = f'<br><span class="issue">{esc(flagged)}</span>' if flagged else ""
    return f'<div class="tile">{image(payload, lines[0] if lines else "", "image/jpeg")}{text}{mark}</div>'


def tiles(items: Iterable[str]) -> str:
    """A wrapping row of :func:`tile` blocks."""
    return f'<div class="tiles">{"".join(items)}</div>'


def kpis(items: Iterable[tuple[str, Any]]) -> str:
    """Headline numbers as cards."""
    cards = "".join(f'<div class="kpi"><b>{esc(fmt(v))}</b><span>{esc(k)}</span></div>' for k, v in items)
    return f'<div class="kpis">{cards}</div>'


def note(text: str) -> str:
    """A muted paragraph."""
    return f'<p class="note">{esc(text)}</p>'


def check(ok: bool, text: str) -> str:
    """A pass/fail line (e.g. an accounting check)."""
    return f'<p><span class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"}</span> {esc(text)}</p>'


@dataclass
class Page:
    """A report page: sections in the order added, a navigation bar, a footer."""

    title: str
    subtitle: str
    sections: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, anchor: str, title: str, *parts: str) -> None:
        """Append a section (``parts`` are HTML fragments)."""
        self.sections.append((anchor, title, "".join(parts)))

    def render(self, footer: Sequence[str]) -> bytes:
        """The whole page as UTF-8; ``SIZE_TOKEN`` in the footer becomes the file's size in bytes."""
        nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in self.sections)
        body = "".join(
            f'<section id="{esc(a)}"><h2>{esc(t)}</h2>{content}</section>' for a, t, content in self.sections
        )
        foot = "".join(f"<p>{line}</p>" for line in footer)
        doc = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main><footer>{foot}</footer><script>{JS}</script></body></html>\n"
        )
        payload = doc.encode("utf-8")
        size = f"{len(payload):,}".rjust(len(SIZE_TOKEN))
        return payload.replace(SIZE_TOKEN.encode("ascii"), size.encode("ascii"), 1)
