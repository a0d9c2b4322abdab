"""Which currency each amount is in, and never adding up two currencies.

`build_stage` gives every transaction row a `currency`: the file's currency column where the
layout has one, else the marker written on the amount ('€12.50', '12.50 USD').  Shared symbols
('$', '¥', 'kr') stay as the symbol until `settle_currencies` has looked at the whole import:

* a shared symbol is read as the currency that the import (an ISO code in the same files),
  ``--currency`` or the store pins down, and otherwise as a stated default ('$' as USD) or not
  at all (for '¥' and 'kr' the user must say);
* an import with several currencies stops, listing them, unless ``--currency XXX`` (keep one:
  the other rows are excluded into the rejects file) or ``--rates FILE`` (convert into one) says
  what to do;
* a store that already holds another currency refuses the import.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from clientfolio.core.errors import ClientfolioError, IngestError
from clientfolio.ingest.currencies import AMBIGUOUS, ISO_4217, NAMES, SYMBOLS
from clientfolio.ingest.sqlexpr import lit, lit_list_sql, text

if TYPE_CHECKING:
    from clientfolio.ingest.transform import ImportOptions, Stage

# Money columns converted with --rates (amount is always converted).
MONEY = ("amount", "unit_price", "cost", "discount", "cost_to_serve")


def _symbol_map() -> str:
    pairs = {**{c: c for c in ISO_4217}, **SYMBOLS, **{s: s for s in AMBIGUOUS}}
    return "MAP {" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in sorted(pairs.items())) + "}"


def _candidates_map() -> str:
    return "MAP {" + ", ".join(f"{lit(k)}: {lit_list_sql(v[0])}" for k, v in sorted(AMBIGUOUS.items())) + "}"


def code_sql(expr: str) -> str:
    """A marker or currency-column value as an ISO code ('usd' -> 'USD', '€' -> 'EUR'); a shared
    symbol stays itself ('$'); NULL when blank or unknown."""
    t = text(expr)
    return f"{_symbol_map()}[CASE WHEN length({t}) = 3 THEN upper({t}) ELSE {t} END]"


def compatible_sql(a: str, b: str) -> str:
    """SQL: two currency tokens can be the same currency ('$' and 'CAD' can; '€' and 'USD' cannot)."""
    cands = _candidates_map()
    return (f"({a} IS NULL OR {b} IS NULL OR {a} = {b} OR coalesce(list_contains({cands}[{a}], {b}), FALSE) "
            f"OR coalesce(list_contains({cands}[{b}], {a}), FALSE))")


def load_rates(path: str | Path) -> dict[str, float]:
    """Read a rate table: a CSV with columns currency,rate (one unit of `currency` in the store's currency)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise IngestError(p, f"cannot read the rate table ({exc.strerror})",
                          hint="--rates expects a CSV file with columns currency,rate") from None
    rates: dict[str, float] = {}
    for i, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (i == 1 and cells and cells[0].lower() == "currency"):
            continue
        if len(cells) < 2:
            raise IngestError(p, "expected two columns, currency and rate", row=i, value=",".join(row))
        code, rate = cells[0].upper(), cells[1]
        if code not in ISO_4217:
            raise IngestError(p, "not an ISO 4217 currency code", row=i, column="currency", value=cells[0],
                              hint="write codes such as EUR, USD, GBP")
        try:
            value = float(rate)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise IngestError(p, "the rate must be a positive number with a decimal point", row=i, column="rate",
                              value=rate, hint="e.g. EUR,0.85 means one euro is worth 0.85 of the store's currency")
        rates[code] = value
    if not rates:
        raise IngestError(p, "holds no rates", hint="write one line per currency: currency,rate (e.g. EUR,0.85)")
    return rates


def _counts(con: duckdb.DuckDBPyConnection, stages: list[Stage]) -> dict[str | None, Counter]:
    """Ok rows per currency token and file."""
    out: dict[str | None, Counter] = {}
    for s in stages:
        for cur, n in con.execute(f"SELECT currency, count(*) FROM {s.stage} WHERE __kind = 'ok' GROUP BY 1").fetchall():
            out.setdefault(cur, Counter())[s.path] += n
    return out


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _listing(counts: dict[str | None, Counter], read_as: dict[str, str] | None = None) -> str:
    read_as = read_as or {}
    parts = [f"{c} {_rows(sum(n.values()))}" + (f" ('{read_as[c]}' read as {c})" if c in read_as else "")
             for c, n in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())) if c is not None]
    if None in counts:
        parts.append(f"no currency marker {_rows(sum(counts[None].values()))}")
    return ", ".join(parts)


def _mark(con: duckdb.DuckDBPyConnection, s: Stage, where: str, kind: str, reason: str) -> None:
    col = lit(s.currency_column or "currency")
    con.execute(f"""UPDATE {s.stage} SET __kind = {lit(kind)}, __reason = {lit(reason)}, __column = {col},
        __value = coalesce(currency, '') WHERE __kind = 'ok' AND ({where})""")


def _resolve_shared(con, stages, opts, store_codes: set[str], counts) -> dict[str, str]:
    """Read '$', '¥', 'kr' as one currency each, saying what decided it; returns {code: symbol} assumed."""
    assumed: dict[str, str] = {}
    explicit = {c for c in counts if c in ISO_4217}
    for sym in [c for c in counts if c in AMBIGUOUS]:
        cands, default = AMBIGUOUS[sym]
        files = sorted(counts[sym])
        if opts.currency in cands:
            code, why = opts.currency, f"as --currency {opts.currency} says"
        elif len(explicit & set(cands)) == 1:
            code = next(iter(explicit & set(cands)))
            why = f"the same import writes {code} elsewhere"
        elif len(store_codes & set(cands)) == 1:
            code = next(iter(store_codes & set(cands)))
            why = f"the store holds {code}"
        elif default:
            code = default
            others = ", ".join(c for c in cands[2:5])
            why = (f"the file does not say which currency '{sym}' is; if it is not {NAMES.get(code, code)}, "
                   f"re-import with --currency {cands[1]} (or {others}, ...)")
            assumed[code] = sym
        else:
            names = " or ".join(f"{NAMES.get(c, c)} ({c})" for c in cands)
            raise IngestError(files[0], f"amounts are marked '{sym}', which can mean {names}",
                              hint=f"say which with --currency {cands[0]} (or --currency {cands[1]})")
        for s in stages:
            con.execute(f"UPDATE {s.stage} SET currency = {lit(code)} WHERE currency = {lit(sym)}")
            if s.path in counts[sym]:
                s.notes.append(f"amounts marked '{sym}' read as {code}: {why}")
        counts.setdefault(code, Counter()).update(counts.pop(sym))
    return assumed


def settle_currencies(con: duckdb.DuckDBPyConnection, stages: list[Stage], opts: ImportOptions,
                      store_codes: set[str]) -> None:
    """Give every stored transaction row one known currency, or stop with what to do (see module doc)."""
    tx = [s for s in stages if s.table == "transactions"]
    if not tx:
        return
    counts = _counts(con, tx)
    assumed = _resolve_shared(con, tx, opts, store_codes, counts)
    known = sorted(c for c in counts if c is not None)
    n_unknown = sum(counts.get(None, Counter()).values())
    first = tx[0].path
    rates = load_rates(opts.rates) if opts.rates else None

    if len(known) > 1 and rates is None and not opts.currency:
        per_file = ""
        if len(tx) > 1:
            per_file = " (" + "; ".join(f"{Path(s.path).name}: " + ", ".join(
                f"{c} {counts[c][s.path]:,}" for c in known if counts[c][s.path]) for s in tx) + ")"
        raise IngestError(
            first, f"amounts are in {len(known)} currencies: {_listing(counts, assumed)}{per_file}",
            hint=f"amounts in different currencies cannot be added up. Import one currency with --currency "
            f"{max(known, key=lambda c: sum(counts[c].values()))} (the other rows go to the rejects file, marked "
            "excluded), or convert them into one with --rates rates.csv (a CSV with columns currency,rate: what one "
            "unit is worth in the store's currency)")

    target = opts.currency
    if rates is not None:
        target = target or (next(iter(store_codes)) if len(store_codes) == 1 else None)
        if target is None:
            ones = [c for c, r in rates.items() if r == 1]
            if len(ones) != 1:
                raise IngestError(opts.rates, "does not say which currency to convert into",
                                  hint="name it with --currency (e.g. --currency EUR), or give it rate 1 in the table")
            target = ones[0]
        if target in rates and rates[target] != 1:
            raise IngestError(opts.rates, f"gives {target} the rate {rates[target]}, but {target} is the currency "
                              "converted into", hint=f"{target}'s rate must be 1 (or leave it out)")
        missing = [c for c in known if c != target and c not in rates]
        if missing:
            raise IngestError(opts.rates, f"has no rate for {', '.join(missing)} (the import holds {_listing(counts)})",
                              hint="add a line currency,rate for each")

    if len(known) > 1:
        # Several currencies and the user said which to keep or how to convert: rows whose currency
        # cannot be told are not stored.
        for s in tx:
            _mark(con, s, "currency IS NULL", "invalid",
                  f"no currency on this amount, in an import with several currencies ({', '.join(known)}); "
                  "mark the amount (e.g. 12.50 EUR) or add a currency column")
    else:
        fill = known[0] if known else (target if target and not rates else None)
        if fill and n_unknown:
            for s in tx:
                con.execute(f"UPDATE {s.stage} SET currency = {lit(fill)} WHERE __kind = 'ok' AND currency IS NULL")
                if s.path in counts.get(None, {}):
                    s.notes.append(f"{_rows(counts[None][s.path])} without a currency taken as {fill}"
                                   + (", like the rest of the import" if known else ", as --currency says"))
            counts.setdefault(fill, Counter()).update(counts.pop(None))
            known = [fill]

    if rates is not None:
        used = {c: rates[c] for c in known if c != target}
        for s in tx:
            sets = ", ".join(f"{m} = {m} * r.rate" for m in MONEY if _has(con, s.stage, m))
            values = ", ".join(f"({lit(c)}, {r!r})" for c, r in used.items())
            if used:
                con.execute(f"""UPDATE {s.stage} SET {sets}, currency = {lit(target)}
                    FROM (VALUES {values}) AS r(code, rate) WHERE {s.stage}.currency = r.code AND __kind = 'ok'""")
            here = {c: counts[c][s.path] for c in used if counts[c][s.path]}
            if here:
                s.notes.append(f"converted {sum(here.values()):,} rows into {target} with the rates in "
                               f"{Path(opts.rates).name}: " + ", ".join(f"{c} {_rows(n)} at {used[c]:g}"
                                                                         for c, n in here.items()))
        known = [target] if known else []
    elif opts.currency:
        others = [c for c in known if c != opts.currency]
        for s in tx:
            n = sum(counts[c][s.path] for c in others)
            if n:
                _mark(con, s, f"currency IS DISTINCT FROM {lit(opts.currency)} AND currency IS NOT NULL", "excluded",
                      f"in another currency than {opts.currency} (only {opts.currency} is imported: --currency)")
                s.notes.append(f"{n:,} rows in {', '.join(c for c in others if counts[c][s.path])} excluded: "
                               f"only {opts.currency} is imported (--currency)")
        known = [opts.currency] if opts.currency in known or not known else []

    _check_store(tx, known, store_codes, opts)


def _check_store(tx: list[Stage], known: list[str], store_codes: set[str], opts: ImportOptions) -> None:
    if not store_codes:
        return
    held = ", ".join(sorted(store_codes))
    new = [c for c in known if c not in store_codes]
    if new:
        what = "the file is" if len(tx) == 1 else "the files are"
        raise IngestError(
            tx[0].path, f"this store holds {held}; {what} {', '.join(new)}",
            hint=f"use a separate --store for this shop, or convert the amounts into {held} with --rates FILE "
            f"(a CSV currency,rate) - amounts in different currencies cannot be added up")
    if not known:
        for s in tx:
            s.notes.append(f"the amounts carry no currency; this store holds {held}. If this file is in another "
                           "currency, import it into a separate --store")


def _has(con: duckdb.DuckDBPyConnection, table: str, col: str) -> bool:
    return col in {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def store_currencies(store) -> set[str]:  # noqa: ANN001 - a Store
    """Currencies the store's transactions already hold."""
    try:
        df = store.query("SELECT DISTINCT currency FROM transactions WHERE currency IS NOT NULL")
    except ClientfolioError:
        return set()
    return {str(c).upper() for c in df["currency"]}
