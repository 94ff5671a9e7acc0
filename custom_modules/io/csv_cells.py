"""CSV cells that a spreadsheet will not run as formulas (the repo's one escaping rule).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by Excel, LibreOffice and Google Sheets (CSV injection). As
OWASP recommends, such text cells get a leading single quote, which the
spreadsheet shows as text; the CSV writer quotes any cell holding a comma,
a quote or a line break. Numbers are written as they are (``-0.5`` stays a
number). Every CSV the tools write passes its text cells through
:func:`safe_cell`.
"""
import csv
import io
from typing import Iterable, Sequence

FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')


def safe_cell(value) -> str:
    """``value`` as CSV cell text; text starting a formula gets a leading ``'``."""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """CSV text (``\\n`` line ends, minimal quoting) with every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow([safe_cell(c) for c in header])
    writer.writerows([safe_cell(c) for c in row] for row in rows)
    return buffer.getvalue()
