"""The one table renderer of every ``koral-play`` command (``-o table`` and ``-o wide``).

Follows kubectl's printers (kubernetes/kubernetes staging/src/k8s.io/cli-runtime/pkg/printers/
tabwriter.go: Go's tabwriter with minwidth 6, padding 3, space padding): upper-case headers,
each column as wide as its widest cell plus 3 spaces (at least 6), no box drawing, no colour and
no truncation; an empty value prints ``<none>`` so every row has the same number of fields.

Only a free-text column (``Column(text=True)``, e.g. an event message) may be wrapped, it must be
the last one, and it is wrapped only on a terminal, only between words and only when it keeps at
least :data:`MIN_TEXT_WIDTH` cells; otherwise the line is simply longer than the terminal (as
kubectl's are). Identifiers, addresses, versions and times are never cut, in a pipe or on a
terminal of any width.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

PADDING = 3  # kubectl: tabwriterPadding
MIN_CELL = 6  # kubectl: tabwriterMinWidth (includes the padding)
MIN_TEXT_WIDTH = 30  # narrower than this, free text is not wrapped at all
NONE = "<none>"  # kubectl's placeholder for an empty value


@dataclass(frozen=True)
class Column:
    """One column: the row key, its header (default: the key upper-cased, ``_`` -> space)."""

    key: str
    header: str | None = None
    wide: bool = False  # only with ``-o wide``
    text: bool = False  # free text: last column, may wrap on a terminal

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.key.upper().replace("_", " ")


def columns_for(columns: Sequence[Column], wide: bool) -> list[Column]:
    """The columns shown for ``-o table`` (wide=False) or ``-o wide``; free text must come last."""
    shown = [c for c in columns if wide or not c.wide]
    if any(c.text for c in shown[:-1]):
        raise ValueError("only the last column may be free text")
    return shown


def cell(value: Any, text: bool = False) -> str:
    """A value as one table cell: never cut, one line, ``<none>`` when empty (free text: empty)."""
    if isinstance(value, bool):
        out = "true" if value else "false"
    elif isinstance(value, Mapping):
        out = ",".join(f"{k}={v}" for k, v in value.items() if v not in (None, ""))
    elif isinstance(value, list | tuple):
        out = ",".join(str(v) for v in value)
    else:
        out = "" if value is None else str(value)
    out = " ".join(out.split()) if text else out.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return out or ("" if text else NONE)


def layout(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    header: bool = True,
    width: int | None = None,
) -> list[str]:
    """The table's lines. ``width`` is the terminal's width (None in a pipe: never wrap)."""
    grid = [[cell(row.get(c.key), c.text) for c in columns] for row in rows]
    if header:
        grid.insert(0, [c.title for c in columns])
    if not grid:
        return []
    widths = [max(MIN_CELL, max(cell_len(r[i]) for r in grid) + PADDING) for i in range(len(columns) - 1)]
    indent = sum(widths)
    wrap_at: int | None = None
    if width is not None and columns[-1].text and width - indent >= MIN_TEXT_WIDTH:
        wrap_at = width - indent
    lines: list[str] = []
    for r in grid:
        lead = "".join(v + " " * (w - cell_len(v)) for v, w in zip(r, widths, strict=False))
        last = r[-1]
        if wrap_at is None or cell_len(last) <= wrap_at:
            lines.append((lead + last).rstrip())
            continue
        parts = textwrap.wrap(last, wrap_at, break_long_words=False, break_on_hyphens=False) or [""]
        lines.append((lead + parts[0]).rstrip())
        lines.extend(" " * indent + p for p in parts[1:])
    return lines


def render(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    wide: bool = False,
    header: bool = True,
    file: IO[str] | None = None,
) -> None:
    """Print the table to ``file`` (stdout): plain in a pipe, bold headers and wrapped free text
    on a terminal (rich's Console: NO_COLOR and COLUMNS are honoured)."""
    out = file if file is not None else sys.stdout
    shown = columns_for(columns, wide)
    tty = bool(getattr(out, "isatty", lambda: False)())
    console = Console(file=out, force_terminal=tty, highlight=False, markup=False, emoji=False)
    lines = layout(rows, shown, header=header, width=console.width if tty else None)
    for i, line in enumerate(lines):
        style = "bold" if header and i == 0 and tty else ""
        if tty:
            console.print(Text(line, style=style), soft_wrap=True, crop=False)
        else:
            out.write(line + "\n")
