"""Numbers written for people, in English or Spanish: one convention for every page and prompt.

English: a decimal point and a comma between thousands (``1,020.5``).
Spanish: a decimal comma, and thousands grouped by a narrow no-break space
(U+202F) only from five digits on, as the RAE's *Ortografía* (2010) and
ISO 80000 write them (``119,237``, ``1020,5``, ``12 345,6``). Never a point
between thousands: a Spanish ``1.020`` reads as 1.02 to anyone used to a
decimal point (and to ``lottrace import``), which is the confusion this
module exists to avoid.

>>> number(119.237, 3, "es"), number(1020.5, 3, "es"), number(12345.6, 1, "es")
('119,237', '1020,5', '12\\u202f345,6')
>>> number(119.237, 3), number(1020.5, 3), number(12345.6, 1)
('119.237', '1,020.5', '12,345.6')
>>> number(100.0, 1, "es", trim=False), number(-0.5, 2, "es"), number(1000, 0, "es")
('100,0', '-0,5', '1000')
"""

from __future__ import annotations

__all__ = ["NNBSP", "number", "parse_number"]

#: The narrow no-break space that groups thousands in Spanish.
NNBSP = "\u202f"


def number(value: float, digits: int = 3, lang: str = "en", *, trim: bool = True) -> str:
    """`value` rounded to `digits` decimals, written for a reader of `lang` ("en" or "es").

    With `trim`, trailing zeros of the decimals are dropped (``12.50`` -> ``12.5``).
    """
    text = f"{value:,.{digits}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    if lang != "es":
        return text
    whole, _, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    bare = whole.lstrip("-").replace(",", "")
    if len(bare) > 4:
        bare = f"{int(bare):,}".replace(",", NNBSP)
    return sign + bare + ("," + frac if frac else "")


def parse_number(text: str) -> float:
    """A number as typed at the field: ``12.5``, ``12,5``, ``1.020,5``, ``1 020,5``, ``1020``.

    A lone comma is a decimal comma; with both a point and a comma, the last
    one is the decimal mark. A lone point stays a decimal point (``1.020`` is
    1.02). Raises ValueError for anything else, including ``nan`` and ``inf``.

    >>> parse_number("12,5"), parse_number("1.020,5"), parse_number("1,020.5")
    (12.5, 1020.5, 1020.5)
    >>> parse_number(" 1 020,5 "), parse_number("-79,0012"), parse_number("1.020")
    (1020.5, -79.0012, 1.02)
    """
    import math
    import re

    s = text.strip().replace(NNBSP, "").replace("\u00a0", "").replace(" ", "")
    if "," in s and "." in s:
        if s.rfind(",") > s.rfind("."):  # 1.020,5
            if not re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+,\d+", s):
                raise ValueError(text)
            s = s.replace(".", "").replace(",", ".")
        else:  # 1,020.5
            if not re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+\.\d+", s):
                raise ValueError(text)
            s = s.replace(",", "")
    elif "," in s:
        if s.count(",") != 1:
            raise ValueError(text)
        s = s.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", s):
        raise ValueError(text)
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(text)
    return value
