"""Plain-text rendering of Arrow results for terminals (no extra dependency)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["format_table"]


def format_table(table: pa.Table, max_rows: int = 20) -> str:
    """Render an Arrow table as an aligned text grid (for terminals)."""
    columns = table.column_names
    rows = table.slice(0, max_rows).to_pylist()
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    numeric = [
        all(isinstance(row[c], int | float) or row[c] is None for row in rows) for c in columns
    ]
    out += [
        " | ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric, strict=True)
        ).rstrip()
        for r in cells
    ]
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows:,} more rows")
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
