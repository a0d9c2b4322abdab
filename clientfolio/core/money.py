"""Money as people read it: every amount carries its currency, or says it is in the file's currency.

One formatter for the report, the terminal summary and the data check-up, so an amount never
appears bare in one place and with its sign in another.
"""

from __future__ import annotations

import math

import numpy as np

# Sums of money are compared with fitted cut points (RFM's revenue quintiles, value tiers, the portfolio
# split) at a millionth of the currency unit: a cut point is often exactly one customer's sum, and the
# same sum added in another order (a live update, PostgreSQL's aggregation order, a sweep's running
# window) can differ in its last bit, which would put that customer on the other side of the cut.
MONEY_DECIMALS = 6


def money_key(values):
    """`values` (a number or an array of sums of money) rounded to MONEY_DECIMALS, for comparing with cuts."""
    return np.asarray(values, dtype=float).round(MONEY_DECIMALS)  # what np.round does, without its wrapper

# Symbols people recognise; any other ISO code is written before the amount ("CHF 12.50").
SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "JPY": "¥", "INR": "₹", "AUD": "A$", "CAD": "C$", "NZD": "NZ$",
           "BRL": "R$", "MXN": "MX$", "HKD": "HK$", "SGD": "S$", "KRW": "₩", "ILS": "₪", "PHP": "₱",
           "NGN": "₦", "VND": "₫", "TRY": "₺", "UAH": "₴", "PLN": "zł ", "CNY": "CN¥"}
UNKNOWN = "the file's currency"  # what the unit is called when the export does not name its currency


def currency_prefix(code: str | None) -> str:
    """The prefix written before amounts in `code` ("GBP" -> "£", "CHF" -> "CHF "); "" when unknown."""
    if code is None or (isinstance(code, float) and math.isnan(code)):
        return ""
    code = str(code).strip()
    if not code:
        return ""
    return SYMBOLS.get(code.upper(), f"{code.upper()} " if code.isalpha() else code)


def currency_unit(prefix: str) -> str:
    """The currency as a unit in a label ("£", "CHF"), or "the file's currency" when unknown."""
    return prefix.strip() or UNKNOWN


def format_money(value: float, prefix: str, decimals: int | None = None) -> str:
    """`value` with its currency: "£1,234", "-£12.50", "CHF 3.20".

    ``decimals``: None rounds amounts of 100 or more to whole units and shows cents below that.
    With an unknown currency (empty prefix) the bare number is returned: say once, near it,
    that amounts are in the file's currency (:data:`UNKNOWN`).
    """
    v = float(value)
    if math.isnan(v):
        return "–"
    d = (0 if abs(v) >= 100 else 2) if decimals is None else decimals
    sign = "-" if v < 0 and round(abs(v), d) > 0 else ""
    return f"{sign}{prefix}{abs(v):,.{d}f}"
