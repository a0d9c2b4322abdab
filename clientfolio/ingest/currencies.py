"""Currency markers a shop writes next to an amount, and what each one can mean.

An amount may carry a marker at its start or end: an ISO 4217 code (``12.50 EUR``,
``usd 4.99``) or a symbol (``€12.50``, ``R$ 9,90``).  Codes name one currency.  Some
symbols name one currency (``€`` is EUR, ``₹`` is INR); others are shared by several
(``$``, ``¥``, ``kr``) and are only resolved by other evidence: the file's currency
column, an ISO code elsewhere in the same import, ``--currency`` or the store's currency.
The importer never guesses between them without saying so (see `money.py`).
"""

from __future__ import annotations

# Active ISO 4217 codes (2025), plus HRK (Croatian kuna, replaced by EUR in 2023: older exports
# still carry it).  XXX ("no currency") and XTS (testing) are left out on purpose.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN
MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR
SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU
XUA YER ZAR ZMW ZWG ZWL
""".split())

# Symbols that name exactly one currency.
SYMBOLS: dict[str, str] = {
    "€": "EUR", "£": "GBP", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "₫": "VND",
    "₱": "PHP", "฿": "THB", "₦": "NGN", "₴": "UAH", "₸": "KZT", "₼": "AZN", "₾": "GEL", "zł": "PLN",
    "Kč": "CZK", "Ft": "HUF", "R$": "BRL", "US$": "USD", "U$S": "USD", "A$": "AUD", "AU$": "AUD",
    "C$": "CAD", "CA$": "CAD", "NZ$": "NZD", "HK$": "HKD", "S$": "SGD", "MX$": "MXN", "NT$": "TWD",
}

# Symbols shared by several currencies: the candidates, and the one read when nothing else in the
# import or the store says which (None: never assumed, the user must say).
AMBIGUOUS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "$": (("USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "TWD", "ARS", "CLP", "COP", "BSD", "BBD", "BMD",
           "BZD", "FJD", "GYD", "JMD", "KYD", "LRD", "NAD", "SBD", "SRD", "TTD", "XCD", "BND"), "USD"),
    "¥": (("JPY", "CNY"), None),
    "￥": (("JPY", "CNY"), None),
    "kr": (("SEK", "NOK", "DKK", "ISK"), None),
}

NAMES = {"USD": "US dollars", "CAD": "Canadian dollars", "AUD": "Australian dollars", "JPY": "Japanese yen",
         "CNY": "Chinese yuan", "SEK": "Swedish kronor", "NOK": "Norwegian kroner", "DKK": "Danish kroner"}


def marker_tokens() -> list[str]:
    """Every marker accepted next to an amount (codes are also accepted in lower case)."""
    return sorted(ISO_4217 | SYMBOLS.keys() | AMBIGUOUS.keys())


def candidates(marker: str) -> tuple[str, ...]:
    """The currencies a marker can mean: one for codes and plain symbols, several for '$', '¥', 'kr'."""
    m = marker.strip()
    if m.upper() in ISO_4217 and m.isalpha() and len(m) == 3:
        return (m.upper(),)
    if m in SYMBOLS:
        return (SYMBOLS[m],)
    if m in AMBIGUOUS:
        return AMBIGUOUS[m][0]
    return ()


def normalise_code(value: str | None) -> str | None:
    """An ISO code from a currency column ('usd ' -> 'USD'), a symbol's code, or None when unknown."""
    if value is None:
        return None
    c = candidates(value)
    return c[0] if len(c) == 1 else None
