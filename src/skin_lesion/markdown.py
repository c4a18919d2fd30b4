"""The one writer of Markdown tables (the model card, the runs table, the data report).

Cells are padded to their column's width, so the file reads as a table in a terminal too;
pipes inside cells are escaped. ``tabulate``, which pandas' ``to_markdown`` needs, is not a
dependency.
"""
from __future__ import annotations

from typing import Iterable, Sequence


def markdown_table(header: Sequence, rows: Iterable[Sequence], right_aligned: Sequence[bool] = ()) -> str:
    """A padded pipe table; columns flagged in ``right_aligned`` (e.g. numbers) align right."""
    header = [str(name) for name in header]
    cells = [[str(value).replace("|", "\\|") for value in row] for row in rows]
    right = list(right_aligned) + [False] * (len(header) - len(right_aligned))
    widths = [max([len(name), 3, *(len(row[i]) for row in cells)]) for i, name in enumerate(header)]
    rule = [("-" * (width - 1) + ":") if flush else "-" * width for width, flush in zip(widths, right)]

    def line(values: list[str], aligned: bool = True) -> str:
        padded = [value.rjust(width) if flush and aligned else value.ljust(width)
                  for value, width, flush in zip(values, widths, right)]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(header, aligned=False), line(rule, aligned=False), *map(line, cells)])
