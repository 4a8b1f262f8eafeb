"""Tables that never drop characters or split words, at any terminal width.

Rich shrinks columns without regard to their longest word, then folds, crops
or ellipsizes it (``positional`` printed as ``positiona``).  :func:`fit` gives
each column at least its longest word and shares what is left by need; when
even that does not fit the terminal, the rows are printed as ``Header: value``
records, which wrap at spaces like any text.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


class Fitted:
    """A renderable wrapping a :class:`~rich.table.Table` (see the module doc)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = column_widths(console, options, self.table)
        if widths is None:
            yield from records(console, options, self.table)
            return
        for column, width in zip(self.table.columns, widths):
            column.width = width
            column.min_width = None
            column.max_width = None
        self.table.expand = False
        yield self.table

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def fit(table: Table) -> Fitted:
    return Fitted(table)


def _bounds(console: Console, options: ConsoleOptions, cells: Iterable[RenderableType]) -> tuple[int, int]:
    wide = options.update(width=10_000)
    low = high = 1
    for cell in cells:
        m = Measurement.get(console, wide, cell)
        low, high = max(low, m.minimum), max(high, m.maximum)
    return low, high


def column_widths(console: Console, options: ConsoleOptions, table: Table) -> list[int] | None:
    """Content widths giving every column its longest word, or None if the
    terminal is too narrow for that."""
    columns = table.columns
    if not columns:
        return []
    top, right, bottom, left = table.padding
    pads = [left + right for _ in columns]
    if not table.pad_edge:
        pads[0] -= left
        pads[-1] -= right
    extra = (2 if table.box and table.show_edge else 0) + (len(columns) - 1 if table.box else 0)
    available = options.max_width - extra - sum(pads)
    bounds = [_bounds(console, options, ([c.header] if table.show_header else []) + list(c.cells)) for c in columns]
    bounds = [(high, high) if c.no_wrap else (low, high) for c, (low, high) in zip(columns, bounds)]
    widths = [low for low, _ in bounds]
    spare = available - sum(widths)
    if spare < 0:
        return None
    wants = [high - low for low, high in bounds]
    total_want = sum(wants)
    if total_want <= spare:
        return [high for _, high in bounds]
    shares = [spare * w // total_want for w in wants]
    leftover = spare - sum(shares)
    for i in sorted(range(len(wants)), key=lambda i: wants[i] - shares[i], reverse=True)[:leftover]:
        shares[i] += 1
    return [w + s for w, s in zip(widths, shares)]


def _text(cell: RenderableType) -> Text | None:
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return Text.from_markup(cell)
    return None


def records(console: Console, options: ConsoleOptions, table: Table) -> RenderResult:
    """Each row as ``Header: value`` lines, a blank line between rows."""
    if table.title:
        title = _text(table.title)
        yield title if title is not None else table.title
    headers = [str(c.header) for c in table.columns]
    rows = list(zip(*[list(c.cells) for c in table.columns]))
    if not rows:
        yield Text("(none)")
        return
    if not table.show_header:  # a key/value table: one "key: value" line per row
        for key, *values in rows:
            parts = [_text(v) or Text(str(v)) for v in values]
            yield Text.assemble(Text(f"{_text(key) or key}: ", style="bold"), *Text(" ").join(parts).split("\n"))
        return
    for index, row in enumerate(rows):
        if index or table.title:
            yield Text("")
        for header, cell in zip(headers, row):
            text = _text(cell)
            label = Text(f"{header}: " if header else "", style="bold")
            if text is None:
                yield label
                yield cell
            else:
                yield Text.assemble(label, text)
