"""A plain-language data check-up of a store: the first thing an owner should see.

It says what the data covers, what looks wrong, and which analyses the data
is enough for.  Thresholds are stated in the text so nobody has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clientfolio.core.money import currency_prefix, format_money
from clientfolio.store.base import Store

Level = Literal["info", "good", "warn", "problem"]

# Enough data for the customer-base models, measured by benchmarks/min_data.py: simulated shops
# (CDNOW-like customers) where at least 95% of BG/NBD fits converge and 90% forecast next year's
# purchases within 15% of what the true parameters forecast.  (days of history, customers)
ENOUGH_DATA = ((365, 500), (270, 1000), (180, 2000))
# The models learn the purchase rate and the drop-out from customers who came back.  In the same
# simulations the smallest settings that were enough had a median of 214 repeat buyers (customers
# with purchases on two or more days; 1 year and 500 customers), rounded down here to 200.  A shop
# with many customers but almost no repeat buyers (a marketplace sample) cannot support a forecast.
MIN_REPEAT_BUYERS = 200
# What cannot be estimated below the minimum, in the words the report uses.
FORECASTS = ("future value (CLV)", "the chance each customer is still active (P(alive))",
             "expected purchases", "the next order date")


@dataclass(frozen=True)
class Support:
    """Whether the data supports forecasts, and why: one verdict that every output reads."""

    forecasts: bool
    reason: str

    @property
    def unsupported(self) -> tuple[str, ...]:
        return () if self.forecasts else FORECASTS


def forecast_support(days: int, customers: int, repeat_buyers: int) -> Support:
    """The verdict for a history of `days` with `customers`, `repeat_buyers` of whom bought on 2+ days."""
    met = next(((d, n) for d, n in ENOUGH_DATA if days >= d and customers >= n), None)
    have = (f"you have {days:,} days, {customers:,} customers and {repeat_buyers:,} "
            f"repeat buyer{'s' if repeat_buyers != 1 else ''}")
    need = (f"forecasts need at least 1 year of orders and 500 customers (or 9 months and 1,000, 6 months and "
            f"2,000), of whom at least {MIN_REPEAT_BUYERS:,} bought again")
    if met and repeat_buyers >= MIN_REPEAT_BUYERS:
        return Support(True, f"{days:,} days ≥ {met[0]}, {customers:,} customers ≥ {met[1]:,} and {repeat_buyers:,} "
                             f"repeat buyers ≥ {MIN_REPEAT_BUYERS:,}: in simulations that is where forecasts of next "
                             "year's purchases land within 15%")
    return Support(False, f"{need}; {have}")


@dataclass
class Finding:
    level: Level
    text: str


@dataclass
class Audit:
    """Numbers about the store and findings written for people."""

    metrics: dict[str, float | int | str | None] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    support: Support = field(default_factory=lambda: Support(False, "the store has no orders yet"))

    def add(self, level: Level, text: str) -> None:
        self.findings.append(Finding(level, text))


def _one(store: Store, sql: str) -> dict:
    df = store.query(sql)
    return {} if df.empty else {k: (None if v != v else v) for k, v in df.iloc[0].to_dict().items()}


def audit(store: Store) -> Audit:
    """Compute the check-up for everything in `store`."""
    a = Audit()
    m = _one(store, """
        WITH orders AS (
          SELECT source, order_id, min(customer_id) AS customer_id, min(ts) AS ts, sum(amount) AS amount,
                 bool_or(is_refund) AS refund
          FROM transactions GROUP BY source, order_id)
        SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers,
               min(ts) AS first_ts, max(ts) AS last_ts, sum(amount) AS revenue,
               count(*) FILTER (WHERE customer_id IS NULL) AS guest_orders,
               coalesce(sum(amount) FILTER (WHERE customer_id IS NULL), 0) AS guest_revenue,
               count(*) FILTER (WHERE refund) AS refund_orders,
               coalesce(sum(amount) FILTER (WHERE refund), 0) AS refund_amount,
               count(*) FILTER (WHERE amount = 0) AS zero_orders,
               quantile_cont(amount, 0.5) FILTER (WHERE amount > 0) AS median_order,
               quantile_cont(amount, 0.99) FILTER (WHERE amount > 0) AS p99_order,
               max(amount) AS max_order
        FROM orders""".replace("quantile_cont(amount, 0.5)", _median(store)).replace(
        "quantile_cont(amount, 0.99)", _p99(store)))
    a.metrics.update(m)
    n_orders = int(m.get("orders") or 0)
    if n_orders == 0:
        a.add("problem", "The store has no orders yet. Import an export with `clientfolio import FILE`.")
        return a
    rows = _one(store, "SELECT count(*) AS lines, count(DISTINCT currency) AS currencies, max(currency) AS currency, "
                       "count(cost) AS with_cost, count(category) AS with_category FROM transactions")
    a.metrics.update(rows)
    # Money carries its currency; with several currencies there is no one unit (a finding says so).
    cur = currency_prefix(rows.get("currency")) if int(rows.get("currencies") or 0) == 1 else ""
    money = lambda v: format_money(float(v or 0), cur, 2)  # noqa: E731
    rep = _one(store, """
        SELECT count(*) AS identified, count(*) FILTER (WHERE days >= 2) AS repeat_buyers
        FROM (SELECT customer_id, count(DISTINCT CAST(ts AS DATE)) AS days FROM transactions
              WHERE customer_id IS NOT NULL AND NOT is_refund GROUP BY customer_id) c""")
    a.metrics.update(rep)
    first, last = m["first_ts"], m["last_ts"]
    span = (last - first).days if first is not None else 0
    a.metrics["history_days"] = span
    if first is not None and first.date() == last.date():
        a.add("info", f"Orders from one day only: {first:%d %b %Y}.")
    else:
        a.add("info", f"Orders from {first:%d %b %Y} to {last:%d %b %Y} ({span:,} days, about {span / 30.4:.0f} "
                      "months).")
    ident = int(rep.get("identified") or 0)
    repeat = int(rep.get("repeat_buyers") or 0)
    unit = ("" if cur or int(rows.get("currencies") or 0) > 1
            else " (in the file's own currency: the export does not name it)")
    a.add("info", f"{n_orders:,} orders ({int(rows['lines']):,} line rows) from {ident:,} identified customers; "
                  f"revenue {money(m['revenue'])}{unit}.")
    if ident:
        share = repeat / ident
        a.metrics["repeat_share"] = share
        a.add("info", f"{share:.0%} of customers bought on more than one day ({repeat:,} repeat buyers).")
    guest = int(m.get("guest_orders") or 0)
    if guest:
        a.add("warn", f"{guest:,} order{'s' if guest != 1 else ''} ({guest / n_orders:.0%}) {'have' if guest != 1 else 'has'} no customer id or e-mail; they count in revenue "
                      f"({money(m['guest_revenue'])}) but not in customer models.")
    if m.get("refund_orders"):
        a.add("info", f"{int(m['refund_orders']):,} orders are refunds or cancellations, totalling "
                      f"{money(m['refund_amount'])}.")
    med, p99, mx = m.get("median_order"), m.get("p99_order"), m.get("max_order")
    if med and mx and mx > 20 * max(p99 or 0, med):
        big = _one(store, f"""SELECT count(*) AS n FROM (SELECT sum(amount) AS a FROM transactions
                              GROUP BY source, order_id) o WHERE a > {20 * max(float(p99 or 0), float(med))}""")
        a.add("warn", f"{int(big['n'])} order(s) are more than 20 times the 99th percentile order "
                      f"(largest {money(mx)}, median {money(med)}): check them for typos or wholesale orders.")
    if m.get("zero_orders"):
        a.add("info", f"{int(m['zero_orders']):,} orders have a net amount of zero (free or fully refunded).")
    if int(rows.get("currencies") or 0) > 1:
        a.add("warn", f"Orders are in {int(rows['currencies'])} currencies; amounts are not converted. "
                      "Import one currency per store, or convert before importing.")
    rej = _one(store, "SELECT coalesce(sum(rows_in), 0) AS rows_in, coalesce(sum(rows_rejected), 0) AS rejected, "
                      "coalesce(sum(rows_deduplicated), 0) AS dups FROM imports")
    a.metrics.update({"rows_in": rej.get("rows_in"), "rows_rejected": rej.get("rejected")})
    if rej.get("rejected"):
        a.add("warn", f"{int(rej['rejected']):,} of {int(rej['rows_in']):,} imported rows were rejected or excluded "
                      "(see the rejects files listed by `clientfolio imports`).")
        for level, text in _reject_findings(store):
            a.add(level, text)
    from clientfolio.store.pseudonym import erasure_check

    back = erasure_check(store)
    if len(back):
        a.add("problem", "Customers erased on request are back in the store (" + ", ".join(
            f"{r.table}: {r.customers:,}" for r in back.itertuples()) + "), written other than by an import; run "
            "`clientfolio erase` for them again and stop the tool that wrote them.")
    # What the data is enough for (thresholds measured in simulations, see ENOUGH_DATA).
    a.support = forecast_support(span, ident, repeat)
    if a.support.forecasts:
        a.add("good", f"Enough history for forecasts ({a.support.reason}).")
    else:
        a.add("warn", f"Not enough history to forecast: {a.support.reason}. So the analysis cannot estimate "
                      f"{', '.join(FORECASTS[:-1])} or {FORECASTS[-1]}; it shows what the history itself says "
                      "(revenue, orders, order value, repeat rate, recency, RFM and concentration).")
    if not rows.get("with_cost"):
        a.add("info", "No cost data: profitability will use revenue (set a gross margin, or import cost of goods).")
    counts = _one(store, "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM marketing_spend) AS spend, "
                         "(SELECT count(*) FROM customers WHERE consent_marketing) AS consent, "
                         "(SELECT count(consent_marketing) FROM customers) AS consent_known, "
                         "(SELECT count(*) FROM customers) AS customer_rows")
    a.metrics.update(counts)
    if not counts.get("events"):
        a.add("info", "No events (e-mail opens, reviews, support tickets): engagement and advocacy scores are skipped.")
    if not counts.get("spend"):
        a.add("info", "No marketing spend: CLV:CAC by channel is not available.")
    if counts.get("customer_rows") and not counts.get("consent_known"):
        a.add("warn", "No marketing-consent information: nobody will be exported for marketing until consent is "
                      "imported (e.g. Shopify's 'Accepts Marketing', or a customers file with consent_marketing).")
    elif counts.get("customer_rows"):
        a.add("info", f"{int(counts['consent'] or 0):,} of {int(counts['customer_rows']):,} customers consented to "
                      "marketing; only they are ever exported for marketing.")
    return a


# Reasons in the import log that point at suspicious data, and how to say so.
_SUSPICIOUS = (
    ("in the future", "problem", "{n:,} rows had dates in the future and were rejected: check the export's date "
                                 "column or time zone."),
    ("appears again with different values", "problem", "{n:,} order ids appeared twice with different amounts or "
                                                       "dates in one file; the first was kept, the others rejected."),
    ("cannot read as a date", "warn", "{n:,} rows had dates that could not be read."),
    ("cannot read as an amount", "warn", "{n:,} rows had amounts that could not be read."),
    ("implausibly large", "warn", "{n:,} rows had implausibly large amounts and were rejected."),
    ("not revenue", "info", "{n:,} rows were not revenue (failed, cancelled or unpaid) and were left out."),
)


def _reject_findings(store: Store) -> list[tuple[Level, str]]:
    import json

    totals: dict[str, int] = {}
    for notes in store.query("SELECT notes FROM imports")["notes"]:
        try:
            rejected = json.loads(notes or "{}").get("rejected", {})
        except (ValueError, AttributeError):
            continue
        for reason, n in rejected.items():
            for needle, _level, _text in _SUSPICIOUS:
                if needle in reason:
                    totals[needle] = totals.get(needle, 0) + int(n)
                    break
    return [(level, text.format(n=totals[needle])) for needle, level, text in _SUSPICIOUS if totals.get(needle)]


def _median(store: Store) -> str:
    return "percentile_cont(0.5) WITHIN GROUP (ORDER BY amount)" if store.kind == "postgresql" else "quantile_cont(amount, 0.5)"


def _p99(store: Store) -> str:
    return "percentile_cont(0.99) WITHIN GROUP (ORDER BY amount)" if store.kind == "postgresql" else "quantile_cont(amount, 0.99)"
