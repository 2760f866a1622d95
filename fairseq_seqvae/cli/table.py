"""The one table printer of the commands and scripts: plain text for the console, or
a markdown pipe table for the docs."""

from typing import Dict, List, Optional, Sequence, Tuple

# a column of a table of records: (key in the record, title, format of its value)
Column = Tuple[str, str, str]


def cells(record: Dict, columns: Sequence[Column]) -> List[str]:
    """``record``'s values in ``columns``, formatted; '-' where it has none."""
    return ["-" if record.get(key) is None else fmt.format(record[key])
            for key, _, fmt in columns]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 markdown: bool = False, align: Optional[str] = None) -> str:
    """``rows`` (lists of strings) under ``header``, each column padded to its widest
    cell. ``align`` has one letter per column, ``l`` or ``r``; by default the first
    column (names) is flush left and the rest (numbers) flush right. Plain text by
    default; ``markdown`` gives a pipe table whose rule carries the same alignment."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError("format_table: every row and align need one entry per column")
    floor = 3 if markdown else 1  # '--:' is the shortest markdown rule
    widths = [max(floor, *(len(row[i]) for row in [header, *rows])) for i in range(len(header))]

    def pad(row):
        return [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]

    if markdown:
        rule = ["-" * w if a == "l" else "-" * (w - 1) + ":" for w, a in zip(widths, align)]
        return "\n".join("| " + " | ".join(r) + " |"
                         for r in [pad(header), rule, *map(pad, rows)])
    rule = ["-" * w for w in widths]
    return "\n".join("  ".join(r).rstrip() for r in [pad(header), rule, *map(pad, rows)])


def format_records(records: Sequence[Dict], columns: Sequence[Column],
                   markdown: bool = False, align: Optional[str] = None) -> str:
    """A table of ``records`` (dicts), one row each, in ``columns``."""
    return format_table([title for _, title, _ in columns],
                        [cells(r, columns) for r in records], markdown, align)
