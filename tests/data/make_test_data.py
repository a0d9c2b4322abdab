#!/usr/bin/env python3
"""Generate the small, real-shaped test inputs under ``tests/data/``.

Run from anywhere::

    python tests/data/make_test_data.py      # needs openpyxl and pyarrow

Everything is deterministic (fixed seed, fixed timestamps inside .xlsx/.gz
containers), so running it twice gives byte-identical files.  The generated
files are committed; re-run this script only when you change it.

What it writes
--------------
* ``layouts/``  one file per export layout the importer must recognise
  (Shopify, WooCommerce x3, Square x2, Stripe, UCI Online Retail I/II,
  CDNOW, a split shop dump, a generic export + YAML mapping).
* ``dialects/`` the same 30 logical orders in many encodings / delimiters /
  number and date conventions / containers.
* ``broken/``   malformed inputs, one problem per file.
* ``facts.json`` machine-readable facts about every file (row counts,
  distinct orders and customers, special rows with spreadsheet row numbers,
  intended net revenue ...), computed here from the very data that is
  written, and re-checked against the written files at the end.
* ``README.md`` the same facts as a table, plus the conventions.

All people, e-mails, addresses, phone numbers and ids are invented:
e-mails are at example.com / example.org, IPs are from the documentation
ranges (RFC 5737), phone numbers use the fictional 555-01xx block.

Header layouts were taken from the sources listed in ``README.md``
(section "Where the headers come from"); no real export is copied here.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gzip
import io
import json
import random
import re
import struct
import unicodedata
import zipfile
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

SEED = 20240305
ROOT = Path(__file__).resolve().parent
UTC = dt.timezone.utc

FACTS: "OrderedDict[str, dict]" = OrderedDict()
WRITTEN: list[str] = []


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


class _QuotedEmpty:
    """Marker for an empty field that the exporter writes as ``""``."""

    def __str__(self) -> str:  # pragma: no cover - only used for output
        return ""


QE = _QuotedEmpty()


def cents(x: float | int | str) -> int:
    return int(round(float(x) * 100))


def m2(c: int) -> str:
    """Cents -> '12.50' / '-3.00' (plain decimal, dot)."""
    sign = "-" if c < 0 else ""
    c = abs(c)
    return f"{sign}{c // 100}.{c % 100:02d}"


def m2_comma(c: int, thousands: bool = False) -> str:
    """Cents -> '12,50' / '1.234,50' (decimal comma)."""
    sign = "-" if c < 0 else ""
    c = abs(c)
    whole = f"{c // 100:,}".replace(",", ".") if thousands else str(c // 100)
    return f"{sign}{whole},{c % 100:02d}"


def m_dollar(c: int) -> str:
    """Cents -> '$8.00', '-$0.95', '$1,234.50' (Square style)."""
    sign = "-" if c < 0 else ""
    c = abs(c)
    return f"{sign}${c // 100:,}.{c % 100:02d}"


def js_number(c: int) -> str:
    """Cents -> JavaScript Number.toString() of the value (45.5, 12, -3.25)."""
    v = c / 100
    if v == int(v):
        return str(int(v))
    s = repr(round(v, 2))
    return s


def ascii_fold(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")


def utc_iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_field(v, delim: str) -> str:
    if v is QE:
        return '""'
    if v is None:
        return ""
    s = str(v)
    if any(ch in s for ch in (delim, '"', "\n", "\r")):
        return '"' + s.replace('"', '""') + '"'
    return s


def csv_text(rows, delim: str = ",", eol: str = "\n", final_eol: bool = True) -> str:
    lines = [delim.join(fmt_field(v, delim) for v in r) for r in rows]
    return eol.join(lines) + (eol if final_eol else "")


def write_bytes(rel: str, data: bytes) -> Path:
    p = ROOT / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    WRITTEN.append(rel)
    return p


def write_text(rel: str, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(rel, text.encode(encoding))


def register(rel: str, facts: dict) -> None:
    assert rel not in FACTS, rel
    FACTS[rel] = facts


def normalize_xlsx(raw: bytes) -> bytes:
    """Make an openpyxl-written workbook byte-stable (fixed zip and core timestamps)."""
    zin = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>2024-01-01T00:00:00Z\g<3>",
                    data,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, data)
    return out.getvalue()


def save_workbook(rel: str, wb) -> None:
    buf = io.BytesIO()
    wb.save(buf)
    write_bytes(rel, normalize_xlsx(buf.getvalue()))


def new_workbook():
    import openpyxl

    wb = openpyxl.Workbook()
    wb.properties.creator = "clientfolio test data"
    fixed = dt.datetime(2024, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    return wb


# --------------------------------------------------------------------------
# invented people and products
# --------------------------------------------------------------------------

NAMES = [
    ("Ada", "Lindqvist"), ("Ben", "Okafor"), ("Chloé", "Martin"), ("Dev", "Raman"),
    ("Elif", "Yilmaz"), ("Farid", "Haddad"), ("Greta", "Novak"), ("Hugo", "Moreau"),
    ("Ines", "Ferreira"), ("Jonas", "Becker"), ("Kai", "Tanaka"), ("Lena", "Schulz"),
    ("Malik", "Osei"), ("Nora", "Berg"), ("Omar", "Aziz"), ("Priya", "Nair"),
    ("Quinn", "Walsh"), ("Rosa", "Delgado"), ("Sven", "Larsen"), ("Tara", "Kelly"),
    ("Uma", "Sato"), ("Victor", "Dubois"), ("Wen", "Li"), ("Yusuf", "Demir"),
    ("Zoë", "Brandt"), ("Søren", "Holm"), ("Núria", "Vidal"), ("Jürgen", "Weiß"),
]
CITIES = ["Sampleton", "Testville", "Exampleburg", "Mockford", "Placeholder City", "Fictionfurt"]
STREETS = ["Example Street", "Sample Road", "Test Lane", "Placeholder Avenue", "Mock Way"]


@dataclass
class Person:
    idx: int
    first: str
    last: str
    email: str
    city: str
    street: str
    zip: str
    phone: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def make_people(rng: random.Random, domain_cycle=("example.com", "example.org")) -> list[Person]:
    people = []
    for i, (f, l) in enumerate(NAMES):
        email = f"{ascii_fold(f).lower()}.{ascii_fold(l).lower().replace('ß', 'ss')}@{domain_cycle[i % len(domain_cycle)]}"
        people.append(
            Person(
                idx=i,
                first=f,
                last=l,
                email=email,
                city=CITIES[i % len(CITIES)],
                street=f"{rng.randint(1, 199)} {STREETS[i % len(STREETS)]}",
                zip=f"{rng.randint(10000, 99999)}",
                phone=f"+1 555 01{i:02d}",
            )
        )
    return people


COFFEE = [
    # name, sku, price cents, vendor
    ("Ethiopia Yirgacheffe 250g", "CB-ETH-250", 1290, "Example Roasters"),
    ("Colombia Huila 250g", "CB-COL-250", 1150, "Example Roasters"),
    ("House Espresso 1kg", "CB-ESP-1000", 3490, "Example Roasters"),
    ("Decaf Swiss Water 250g", "CB-DEC-250", 1250, "Example Roasters"),
    ("Ceramic Pour-Over Dripper", "EQ-DRIP-01", 2400, "Sample Ceramics"),
    ("Paper Filters (100)", "EQ-FILT-100", 590, "Sample Ceramics"),
    ("Hand Grinder", "EQ-GRIND-02", 6900, "Mock Tools"),
    ("Gift Card", "GIFT-25", 2500, "Example Roasters"),
]


# --------------------------------------------------------------------------
# Shopify orders + customers
# --------------------------------------------------------------------------

SHOPIFY_HEADER = (
    "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,Currency,"
    "Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,Created at,"
    "Lineitem quantity,Lineitem name,Lineitem price,Lineitem compare at price,Lineitem sku,"
    "Lineitem requires shipping,Lineitem taxable,Lineitem fulfillment status,Billing Name,"
    "Billing Street,Billing Address1,Billing Address2,Billing Company,Billing City,Billing Zip,"
    "Billing Province,Billing Country,Billing Phone,Shipping Name,Shipping Street,Shipping Address1,"
    "Shipping Address2,Shipping Company,Shipping City,Shipping Zip,Shipping Province,Shipping Country,"
    "Shipping Phone,Notes,Note Attributes,Cancelled at,Payment Method,Payment Reference,"
    "Refunded Amount,Vendor,Outstanding Balance,Employee,Location,Device ID,Id,Tags,Risk Level,"
    "Source,Lineitem discount,Tax 1 Name,Tax 1 Value,Tax 2 Name,Tax 2 Value,Tax 3 Name,Tax 3 Value,"
    "Tax 4 Name,Tax 4 Value,Tax 5 Name,Tax 5 Value,Phone,Receipt Number,Duties,Billing Province Name,"
    "Shipping Province Name,Payment ID,Payment Terms Name,Next Payment Due At,Payment References"
).split(",")
assert len(SHOPIFY_HEADER) == 79

# Columns Shopify repeats on every line-item row of an order (all others are
# filled on the first row of the order only), as in the real export.
SHOPIFY_LINE_COLS = {
    "Name", "Email", "Created at", "Lineitem quantity", "Lineitem name", "Lineitem price",
    "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping", "Lineitem taxable",
    "Lineitem fulfillment status", "Vendor", "Lineitem discount",
}

SHOPIFY_CUSTOMER_HEADER = (
    "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
    "Default Address Address1,Default Address Address2,Default Address City,"
    "Default Address Province Code,Default Address Country Code,Default Address Zip,"
    "Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags"
).split(",")
assert len(SHOPIFY_CUSTOMER_HEADER) == 20


def email_variant(email: str, k: int) -> str:
    """The same mailbox written differently (case, surrounding spaces)."""
    local, dom = email.split("@")
    variants = [
        email,
        f"{local.title()}@{dom}",
        f" {email} ",
        f"{local}@{dom.upper()}",
        email.upper(),
    ]
    return variants[k % len(variants)]


def gen_shopify(rng: random.Random, people: list[Person]) -> None:
    tz = ZoneInfo("Europe/Berlin")
    buyers = people[:12]
    consent = {p.idx: ("yes" if p.idx % 3 != 1 else "no") for p in buyers}
    n_orders = 32
    # deterministic buyer sequence with repeat customers
    seq = []
    for i in range(n_orders):
        seq.append(buyers[(i * 5 + i // 4) % len(buyers)])
    start = dt.datetime(2024, 1, 9, 9, 0, tzinfo=tz)
    created = []
    t = start
    for i in range(n_orders):
        t = t + dt.timedelta(days=rng.randint(2, 8), hours=rng.randint(0, 9), minutes=rng.randint(0, 59),
                             seconds=rng.randint(0, 59))
        created.append(t.astimezone(tz))

    special = {
        5: "partially_refunded",
        11: "refunded",
        17: "cancelled_voided",
        20: "pending",
        23: "cancelled_refunded",
        26: "pos_no_email",
    }
    discounts = {2: ("WELCOME10", 10), 14: ("SPRING15", 15)}
    orders = []
    email_use = Counter()
    for i in range(n_orders):
        num = 1001 + i
        kind = special.get(num - 1000, "paid")
        p = seq[i]
        if kind == "pos_no_email":
            raw_email = ""
        else:
            raw_email = email_variant(p.email, email_use[p.idx])
            email_use[p.idx] += 1
        n_lines = 1 if (num - 1000) in discounts else rng.choice([1, 1, 2, 2, 3, 4])
        prods = rng.sample(COFFEE[:7], n_lines)
        lines = [(pr, rng.choice([1, 1, 1, 2, 3])) for pr in prods]
        sub = sum(pr[2] * q for pr, q in lines)
        disc_code, disc = "", 0
        if (num - 1000) in discounts:
            disc_code, pct = discounts[num - 1000]
            disc = round(sub * pct / 100)
        subtotal = sub - disc
        shipping = 0 if subtotal >= 5000 or kind == "pos_no_email" else 490
        total = subtotal + shipping
        taxes = round(total * 7 / 107)  # prices include 7 % VAT
        refunded = 0
        cancelled_at = ""
        fin = "paid"
        if kind == "partially_refunded":
            fin = "partially_refunded"
            refunded = lines[0][0][2]  # one unit of the first line returned
        elif kind == "refunded":
            fin = "refunded"
            refunded = total
        elif kind == "cancelled_voided":
            fin = "voided"
            cancelled_at = created[i] + dt.timedelta(hours=3, minutes=12)
        elif kind == "cancelled_refunded":
            fin = "refunded"
            refunded = total
            cancelled_at = created[i] + dt.timedelta(days=1, minutes=7)
        elif kind == "pending":
            fin = "pending"
        orders.append(dict(
            num=num, name=f"#{num}", person=None if kind == "pos_no_email" else p, raw_email=raw_email,
            kind=kind, fin=fin, lines=lines, subtotal=subtotal, shipping=shipping, total=total,
            taxes=taxes, disc_code=disc_code, disc=disc, refunded=refunded, created=created[i],
            cancelled_at=cancelled_at, id=5600000000000 + num * 7919,
        ))

    def ts(t):
        return t.strftime("%Y-%m-%d %H:%M:%S %z") if t else ""

    rows = [SHOPIFY_HEADER]
    row_of_order = {}
    for o in sorted(orders, key=lambda o: -o["num"]):  # newest first, like the admin export
        paid_at = "" if o["fin"] in ("pending", "voided") else o["created"] + dt.timedelta(seconds=rng.randint(3, 40))
        fulfilled = o["kind"] in ("paid", "partially_refunded", "refunded", "pos_no_email") and o["num"] % 4 != 0
        p = o["person"]
        pay_method = {"pending": "Bank Deposit"}.get(o["kind"], "Shopify Payments")
        if o["kind"] != "pending" and o["num"] % 5 == 0:
            pay_method = "PayPal Express Checkout"
        if o["kind"] == "pos_no_email":
            pay_method = "Cash"
        for li, (pr, q) in enumerate(o["lines"]):
            rec = {c: "" for c in SHOPIFY_HEADER}
            rec.update({
                "Name": o["name"], "Email": o["raw_email"], "Created at": ts(o["created"]),
                "Lineitem quantity": str(q), "Lineitem name": pr[0], "Lineitem price": m2(pr[2]),
                "Lineitem compare at price": QE if li else "", "Lineitem sku": pr[1],
                "Lineitem requires shipping": "true", "Lineitem taxable": "true",
                "Lineitem fulfillment status": "fulfilled" if fulfilled else "pending",
                "Vendor": pr[3], "Lineitem discount": m2(o["disc"] if li == 0 else 0),
            })
            if li == 0:
                bill_name = p.name if p else ""
                zip_ = f"'0{p.zip[1:]}" if (p and p.idx == 3) else (p.zip if p else "")
                rec.update({
                    "Financial Status": o["fin"],
                    "Paid at": ts(paid_at) if paid_at else "",
                    "Fulfillment Status": "fulfilled" if fulfilled else "unfulfilled",
                    "Fulfilled at": ts(o["created"] + dt.timedelta(days=1, hours=2)) if fulfilled and o["kind"] != "pos_no_email" else (ts(o["created"]) if fulfilled else ""),
                    "Accepts Marketing": consent[p.idx] if p else "no",
                    "Currency": "EUR", "Subtotal": m2(o["subtotal"]), "Shipping": m2(o["shipping"]),
                    "Taxes": m2(o["taxes"]), "Total": m2(o["total"]),
                    "Discount Code": o["disc_code"] or QE, "Discount Amount": m2(o["disc"]),
                    "Shipping Method": ("Standard" if o["shipping"] else "Free shipping") if p else QE,
                    "Billing Name": bill_name,
                    "Billing Street": f"{p.street}" if p else "", "Billing Address1": p.street if p else "",
                    "Billing City": p.city if p else "", "Billing Zip": zip_,
                    "Billing Province": "", "Billing Country": "DE" if p else "",
                    "Billing Phone": p.phone if p and p.idx % 2 == 0 else "",
                    "Shipping Name": bill_name if p else "", "Shipping Street": p.street if p else "",
                    "Shipping Address1": p.street if p else "", "Shipping City": p.city if p else "",
                    "Shipping Zip": zip_, "Shipping Country": "DE" if p else "",
                    "Notes": "Bitte klingeln, danke!" if o["num"] == 1009 else QE,
                    "Cancelled at": ts(o["cancelled_at"]) if o["cancelled_at"] else "",
                    "Payment Method": pay_method,
                    "Payment Reference": f"c{24000000 + o['num'] * 13}.1" if o["kind"] != "pending" else QE,
                    "Refunded Amount": m2(o["refunded"]),
                    "Outstanding Balance": m2(o["total"] if o["fin"] == "pending" else 0),
                    "Employee": "Sam Example" if o["kind"] == "pos_no_email" else "",
                    "Location": "Röstrei Laden" if o["kind"] == "pos_no_email" else "",
                    "Id": str(o["id"]),
                    "Tags": ("wholesale" if p and p.idx == 7 else QE),
                    "Risk Level": "Low", "Source": "pos" if o["kind"] == "pos_no_email" else "web",
                    "Tax 1 Name": "MwSt 7%", "Tax 1 Value": m2(o["taxes"]),
                    "Payment ID": f"r{o['num']}{'x' * 3}A{o['num'] % 97:02d}" if o["kind"] != "pending" else "",
                    "Payment References": f"r{o['num']}{'x' * 3}A{o['num'] % 97:02d}" if o["kind"] != "pending" else "",
                })
            rows.append([rec[c] for c in SHOPIFY_HEADER])
            row_of_order.setdefault(o["name"], len(rows))  # spreadsheet row of first line
    text = csv_text(rows)
    write_text("layouts/shopify_orders_export.csv", text)

    def norm(e):
        return e.strip().lower()

    non_cancelled = [o for o in orders if not o["cancelled_at"]]
    revenue_orders = [o for o in non_cancelled if o["fin"] in ("paid", "partially_refunded", "refunded")]
    variants = {}
    for o in orders:
        if o["raw_email"]:
            variants.setdefault(norm(o["raw_email"]), set()).add(o["raw_email"])
    multi_variant = {k: sorted(v) for k, v in variants.items() if len(v) > 1}
    per_cust_orders = Counter(norm(o["raw_email"]) for o in non_cancelled if o["raw_email"])
    fin_counts = Counter(o["fin"] for o in orders)
    dates = [o["created"] for o in orders]
    register("layouts/shopify_orders_export.csv", {
        "layout": "shopify_orders",
        "exercises": "79-column admin Orders export; one row per line item, order fields on first row only; "
                     "refunds via Refunded Amount, cancellations via Cancelled at; e-mail case/space variants; "
                     "+0100/+0200 offsets; quoted empty fields; apostrophe-prefixed zip; POS order without e-mail",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(rows) - 1,
        "distinct_orders": len(orders),
        "multi_line_orders": sum(1 for o in orders if len(o["lines"]) > 1),
        "distinct_customers": len(variants),
        "customer_key": "Email, trimmed and lower-cased",
        "email_variants": multi_variant,
        "orders_without_email": [o["name"] for o in orders if not o["raw_email"]],
        "rows_without_email": sum(len(o["lines"]) for o in orders if not o["raw_email"]),
        "repeat_customers": sum(1 for v in per_cust_orders.values() if v >= 2),
        "financial_status_counts": dict(sorted(fin_counts.items())),
        "cancelled_orders": sorted(o["name"] for o in orders if o["cancelled_at"]),
        "fully_refunded_orders": sorted(o["name"] for o in orders if o["fin"] == "refunded"),
        "partially_refunded_orders": sorted(o["name"] for o in orders if o["fin"] == "partially_refunded"),
        "pending_orders": sorted(o["name"] for o in orders if o["fin"] == "pending"),
        "first_row_of_order": {k: row_of_order[k] for k in sorted(row_of_order)},
        "accepts_marketing_yes_customers": sorted(p.email for p in buyers if consent[p.idx] == "yes" and p.email in variants),
        "currency": "EUR",
        "gross_total_all_orders": m2(sum(o["total"] for o in orders)),
        "refunded_total_all_orders": m2(sum(o["refunded"] for o in orders)),
        "net_revenue": m2(sum(o["total"] - o["refunded"] for o in revenue_orders)),
        "net_revenue_rule": "sum of Total - Refunded Amount over orders with empty Cancelled at and Financial Status "
                            "in {paid, partially_refunded, refunded} (pending excluded)",
        "net_revenue_non_cancelled_incl_pending": m2(sum(o["total"] - o["refunded"] for o in non_cancelled)),
        "first_order_utc": utc_iso(min(dates)), "last_order_utc": utc_iso(max(dates)),
        "timezone_offsets_seen": sorted({o["created"].strftime("%z") for o in orders}),
    })

    # ---- customers export (same people) ----
    cust_rows = [SHOPIFY_CUSTOMER_HEADER]
    all_cust = buyers + people[12:24]  # plus 12 sign-ups (newsletter, accounts) without orders
    spent, n_ord = Counter(), Counter()
    for o in orders:
        if not o["raw_email"]:
            continue
        k = norm(o["raw_email"])
        n_ord[k] += 1
        if o in revenue_orders:
            spent[k] += o["total"] - o["refunded"]
    facts_customers = []
    for j, p in enumerate(all_cust):
        k = p.email
        shown_email = p.email if p.idx != 0 else "Ada.Lindqvist@Example.com"
        has_orders = n_ord[k] > 0
        accepts = consent.get(p.idx, "yes" if p.idx % 4 else "no")
        tags = {0: "VIP, newsletter", 7: "wholesale"}.get(p.idx, "newsletter" if not has_orders and accepts == "yes" else "")
        company = "Mock Café GmbH" if p.idx == 7 else ""
        zip_ = f"'0{p.zip[1:]}" if p.idx == 3 else p.zip
        rec = [
            f"'{7100000000000 + p.idx * 104729}", p.first, p.last, shown_email, accepts, company,
            p.street if has_orders else "", "", p.city if has_orders else "", "BE" if has_orders else "",
            "DE" if has_orders else "", zip_ if has_orders else "", f"'{p.phone}" if has_orders and p.idx % 2 == 0 else "",
            f"'{p.phone}" if p.idx % 2 == 0 else "", "no", m2(spent[k]), str(n_ord[k]),
            "Prefers whole beans, no decaf" if p.idx == 4 else "", "yes" if p.idx == 7 else "no", tags,
        ]
        cust_rows.append(rec)
        facts_customers.append((p, has_orders, accepts))
    write_text("layouts/shopify_customers_export.csv", csv_text(cust_rows))
    register("layouts/shopify_customers_export.csv", {
        "layout": "shopify_customers",
        "exercises": "20-column customers export; Customer ID and phones prefixed with an apostrophe; "
                     "consent as yes/no; Tags as a quoted comma list; customers with 0 orders; "
                     "e-mail case differs from the orders file",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(cust_rows) - 1,
        "distinct_customers": len(cust_rows) - 1,
        "customers_with_orders": sum(1 for _, h, _ in facts_customers if h),
        "customers_without_orders": sum(1 for _, h, _ in facts_customers if not h),
        "accepts_email_marketing_yes": sum(1 for _, _, a in facts_customers if a == "yes"),
        "accepts_email_marketing_no": sum(1 for _, _, a in facts_customers if a == "no"),
        "tax_exempt_yes": sum(1 for r in cust_rows[1:] if r[18] == "yes"),
        "links_to": "layouts/shopify_orders_export.csv by lower-cased Email; every order e-mail matches one customer",
        "total_spent_sum": m2(sum(spent.values())),
        "total_orders_sum": sum(n_ord.values()),
        "total_spent_rule": "per customer: the orders file's net revenue rule; Total Orders counts all the "
                            "customer's orders incl. cancelled/pending",
        "customer_id_format": "'<13 digits> (leading apostrophe as Shopify writes it)",
    })


# --------------------------------------------------------------------------
# WooCommerce: Analytics > Orders download, WebToffee, SkyVerge
# --------------------------------------------------------------------------

WOO_REVENUE_STATUSES = ("completed", "processing", "refunded")


@dataclass
class WooOrder:
    oid: int
    person: Person | None  # None = guest without name/e-mail
    registered: bool
    status: str
    created: dt.datetime
    lines: list
    shipping: int
    disc: int = 0
    coupon: str = ""
    refunds: list = field(default_factory=list)  # (amount_cents, reason, when, [(line_idx, qty)])
    tax_rate: float = 0.2

    @property
    def items_total(self) -> int:
        return sum(pr[2] * q for pr, q in self.lines) - self.disc

    @property
    def tax(self) -> int:
        return round((self.items_total + self.shipping) * self.tax_rate)

    @property
    def total(self) -> int:
        return self.items_total + self.shipping + self.tax

    @property
    def refunded(self) -> int:
        return sum(r[0] for r in self.refunds)


def woo_orders(rng: random.Random, people: list[Person], tzname: str, first_id: int, tax_rate: float,
               statuses: list[str]) -> list[WooOrder]:
    tz = ZoneInfo(tzname)
    t = dt.datetime(2024, 2, 1, 9, 0, tzinfo=tz)
    orders = []
    pool = people[4:16]
    for i, st in enumerate(statuses):
        t = t + dt.timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 8), minutes=rng.randint(0, 59),
                             seconds=rng.randint(0, 59))
        p = pool[(i * 7) % len(pool)]
        registered = (i % 4) != 3
        n = rng.choice([1, 1, 2, 3])
        lines = [(pr, rng.choice([1, 1, 2])) for pr in rng.sample(COFFEE[:7], n)]
        o = WooOrder(oid=first_id + i * 3, person=p, registered=registered, status=st,
                     created=t.astimezone(tz), lines=lines, shipping=0, tax_rate=tax_rate)
        o.shipping = 0 if o.items_total >= 5000 else 395
        if i % 6 == 2:
            o.coupon = "SPRING10"
            o.disc = round(sum(pr[2] * q for pr, q in lines) * 0.10)
        if st == "refunded":
            o.refunds.append((o.total, "Customer changed mind", o.created + dt.timedelta(days=3, hours=2),
                              [(k, q) for k, (_, q) in enumerate(lines)]))
        orders.append(o)
    return orders


def gen_woo_analytics(rng: random.Random, people: list[Person]) -> None:
    statuses = (["completed"] * 13 + ["processing"] * 3 + ["on-hold", "refunded", "cancelled", "failed",
                                                          "pending", "completed"])
    rng.shuffle(statuses)
    orders = woo_orders(rng, people, "Europe/London", 2101, 0.0, statuses)
    # one completed order gets a partial refund, one guest has no name at all
    partial = next(o for o in orders if o.status == "completed" and len(o.lines) >= 2)
    pr0, q0 = partial.lines[0]
    partial.refunds.append((pr0[2], "Damaged in transit", partial.created + dt.timedelta(days=4), [(0, 1)]))
    nameless = next(o for o in orders if not o.registered and o.status == "completed")
    nameless.person = None

    header = ["Date", "Order #", "Status", "Customer", "Customer type", "Product(s)", "Items sold",
              "Coupon(s)", "Net sales", "Attribution"]
    seen = set()
    events = []  # (when, kind, order, refund)
    for o in sorted(orders, key=lambda o: o.created):
        events.append((o.created, "order", o, None))
        for r in o.refunds:
            events.append((r[2], "refund", o, r))
    attributions = ["Direct", "Organic: Google", "Referral: Instagram", "Unknown", "Source: Newsletter"]
    recs = []
    ctype_of = {}
    for when, kind, o, r in sorted(events, key=lambda e: e[0]):
        cust = o.person.name if o.person else ""
        key = o.person.email if o.person else f"guest-{o.oid}"
        if kind == "order":
            ctype = "returning" if key in seen else "new"
            seen.add(key)
            ctype_of[o.oid] = ctype
            products = ", ".join(f"{q}× {pr[0]}" for pr, q in sorted(o.lines, key=lambda x: -x[1]))
            recs.append(dict(when=when, num=o.oid, status=o.status, cust=cust, ctype=ctype, products=products,
                             items=sum(q for _, q in o.lines), coupons=o.coupon, net=o.items_total,
                             attr=attributions[o.oid % len(attributions)], refund=False, order=o))
        else:
            amt, reason, _, items = r
            lines = [(o.lines[k][0], q) for k, q in items]
            products = ", ".join(f"-{q}× {pr[0]}" for pr, q in lines)
            net = -sum(pr[2] * q for pr, q in lines) if o.status != "refunded" else -o.items_total
            recs.append(dict(when=when, num=o.oid, status=o.status, cust=cust, ctype=ctype_of[o.oid],
                             products=products, items=-sum(q for _, q in lines), coupons="", net=net,
                             attr="Unknown", refund=True, order=o))
    recs.sort(key=lambda d: d["when"], reverse=True)  # default sort: date, newest first

    def esc(v) -> str:
        # WooCommerce's client-side CSV export (packages/js/csv-export escapeCSVValue)
        if isinstance(v, (int, float)):
            return str(v)
        s = str(v)
        if s[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "\"'" + s + '"'
        if re.search(r'[,"\s]', s):
            return '"' + s.replace('"', '""') + '"'
        return s

    lines_out = [",".join(esc(h) for h in header)]
    for d in recs:
        lines_out.append(",".join([
            esc(d["when"].strftime("%Y-%m-%d %H:%M:%S")), esc(str(d["num"])), esc(d["status"]), esc(d["cust"]),
            esc(d["ctype"]), esc(d["products"]), str(d["items"]), esc(d["coupons"]),
            js_number(d["net"]), esc(d["attr"]),
        ]))
    text = "\n".join(lines_out)  # no final newline, like the browser export
    write_text("layouts/woocommerce_analytics_orders.csv", text)

    st_counts = Counter(d["status"] for d in recs if not d["refund"])
    revenue = sum(d["net"] for d in recs if d["status"] in WOO_REVENUE_STATUSES)
    names = {d["cust"] for d in recs if d["cust"]}
    register("layouts/woocommerce_analytics_orders.csv", {
        "layout": "woocommerce_analytics_orders",
        "exercises": "Analytics > Orders 'Download' (browser CSV): header labels quoted when they contain spaces, "
                     "refunds as extra rows with the parent's Order # and negative Net sales, customer by name only "
                     "(no e-mail/id), '1× Product' lists (refund rows start with \"'-\" - WooCommerce's CSV-injection guard), "
                     "numbers unquoted JS numbers (12.9, 69), no final newline; "
                     "export made with Date type = date created and no excluded statuses",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF, no final newline",
        "data_rows": len(recs),
        "distinct_orders": len({d["num"] for d in recs}),
        "refund_rows": [i + 2 for i, d in enumerate(recs) if d["refund"]],
        "status_counts_orders": dict(sorted(st_counts.items())),
        "distinct_customers": len(names),
        "customer_key": "Customer (full name) - the export has no e-mail or customer id",
        "rows_without_customer": [i + 2 for i, d in enumerate(recs) if not d["cust"]],
        "timestamps": "site-local Europe/London, no offset ('YYYY-MM-DD HH:MM:SS')",
        "currency": "GBP",
        "net_revenue": m2(revenue),
        "net_revenue_rule": "sum of Net sales over rows (orders and refund rows) whose Status is completed, "
                            "processing or refunded",
        "net_sales_all_rows": m2(sum(d["net"] for d in recs)),
    })


WEBTOFFEE_BASE = [
    "order_id", "order_number", "order_date", "paid_date", "status", "shipping_total", "shipping_tax_total",
    "fee_total", "fee_tax_total", "tax_total", "cart_discount", "order_discount", "discount_total",
    "order_total", "order_subtotal", "order_key", "order_currency", "payment_method", "payment_method_title",
    "transaction_id", "customer_ip_address", "customer_user_agent", "shipping_method", "customer_id",
    "customer_user", "customer_email", "billing_first_name", "billing_last_name", "billing_company",
    "billing_email", "billing_phone", "billing_address_1", "billing_address_2", "billing_postcode",
    "billing_city", "billing_state", "billing_country", "shipping_first_name", "shipping_last_name",
    "shipping_company", "shipping_phone", "shipping_address_1", "shipping_address_2", "shipping_postcode",
    "shipping_city", "shipping_state", "shipping_country", "customer_note", "wt_import_key", "tax_items",
    "shipping_items", "fee_items", "coupon_items", "refund_items", "order_notes", "download_permissions",
    "meta:_wc_order_attribution_device_type", "meta:_wc_order_attribution_referrer",
    "meta:_wc_order_attribution_session_count", "meta:_wc_order_attribution_session_entry",
    "meta:_wc_order_attribution_session_pages", "meta:_wc_order_attribution_session_start_time",
    "meta:_wc_order_attribution_source_type", "meta:_wc_order_attribution_user_agent",
    "meta:_wc_order_attribution_utm_source",
]
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36"


def gen_webtoffee(rng: random.Random, people: list[Person]) -> None:
    statuses = (["completed"] * 12 + ["processing"] * 3 + ["on-hold", "refunded", "refunded", "cancelled",
                                                          "failed", "pending", "completed"])
    rng.shuffle(statuses)
    orders = woo_orders(rng, people, "Europe/London", 4101, 0.2, statuses)
    partial = next(o for o in orders if o.status == "completed" and len(o.lines) >= 2)
    partial.refunds.append((round(partial.lines[0][0][2] * 1.2), "Damaged in transit",
                            partial.created + dt.timedelta(days=4, hours=1), [(0, 1)]))
    # one registered customer whose account e-mail differs from the billing e-mail
    odd = next(o for o in orders if o.registered)
    account_email = {o.oid: o.person.email for o in orders if o.registered}
    account_email[odd.oid] = odd.person.email.replace("@", ".account@")
    user_id = {p.email: 10 + p.idx for p in people}
    max_items = max(len(o.lines) for o in orders)
    line_cols = [f"line_item_{i}" for i in range(1, max_items + 1)]
    front = ["order_number", "customer_email", "billing_email", "order_total", "status", "order_date"]
    header = front + [c for c in WEBTOFFEE_BASE if c not in front] + line_cols
    paid_statuses = {"completed", "processing", "refunded"}
    rows = [header]
    for o in sorted(orders, key=lambda o: -o.oid):  # WC_Order_Query orderby ID DESC
        p = o.person
        pm = ["stripe", "paypal", "bacs", "stripe"][o.oid % 4]
        pm_title = {"stripe": "Credit Card (Stripe)", "paypal": "PayPal", "bacs": "Direct bank transfer"}[pm]
        paid = o.created + dt.timedelta(seconds=rng.randint(5, 90)) if o.status in paid_statuses else None
        rec = {c: "" for c in header}
        refund_items = ";".join(
            f"amount:{m2(a)}|reason:{why}|date:{when.strftime('%Y-%m-%d %H:%M:%S')}" for a, why, when, _ in o.refunds)
        items_sub = sum(pr[2] * q for pr, q in o.lines)
        notes = [f"content:Order status changed from Pending payment to {o.status.title()}.|"
                 f"date:{(o.created + dt.timedelta(minutes=1)).strftime('%Y-%m-%d %H:%M:%S')}|customer:0|added_by:system"]
        rec.update({
            "order_id": o.oid, "order_number": o.oid, "order_date": o.created.strftime("%Y-%m-%d %H:%M:%S"),
            "paid_date": paid.isoformat() if paid else "", "status": o.status,
            "shipping_total": m2(o.shipping), "shipping_tax_total": m2(round(o.shipping * o.tax_rate)),
            "fee_total": "0.00", "fee_tax_total": "0.00", "tax_total": m2(o.tax),
            "cart_discount": m2(o.disc), "order_discount": m2(o.disc), "discount_total": m2(o.disc),
            "order_total": m2(o.total), "order_subtotal": m2(items_sub),
            "order_key": "wc_order_" + "".join(rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(13)),
            "order_currency": "GBP", "payment_method": pm, "payment_method_title": pm_title,
            "transaction_id": f"pi_3Ex{o.oid}{'A' * 8}" if pm == "stripe" and paid else "",
            "customer_ip_address": f"192.0.2.{o.oid % 250 + 1}", "customer_user_agent": UA,
            "shipping_method": "Flat rate" if o.shipping else "Free shipping",
            "customer_id": user_id[p.email] if o.registered else 0,
            "customer_user": user_id[p.email] if o.registered else 0,
            "customer_email": account_email[o.oid] if o.registered else "",
            "billing_first_name": p.first, "billing_last_name": p.last, "billing_email": p.email,
            "billing_phone": p.phone, "billing_address_1": p.street, "billing_postcode": p.zip,
            "billing_city": p.city, "billing_country": "GB",
            "shipping_first_name": p.first, "shipping_last_name": p.last, "shipping_address_1": p.street,
            "shipping_postcode": p.zip, "shipping_city": p.city, "shipping_country": "GB",
            "customer_note": "Leave with neighbour, please" if o.oid % 9 == 0 else "",
            "wt_import_key": o.oid,
            "tax_items": f"rate_id:1|code:GB-VAT-1|total:{m2(o.tax)}|label:VAT|tax_rate_compound:|rate_percent:20",
            "shipping_items": (f"items:{', '.join(f'{pr[0]} &times; {q}' for pr, q in o.lines)}|method_id:flat_rate|taxes:"
                               if o.shipping else ""),
            "coupon_items": f"code:{o.coupon.lower()}|amount:{m2(o.disc)}" if o.coupon else "",
            "refund_items": refund_items, "order_notes": "||".join(notes), "download_permissions": 0,
            "meta:_wc_order_attribution_device_type": ["Desktop", "Mobile"][o.oid % 2],
            "meta:_wc_order_attribution_source_type": ["typein", "organic", "referral"][o.oid % 3],
            "meta:_wc_order_attribution_utm_source": ["(direct)", "google", "instagram.com"][o.oid % 3],
            "meta:_wc_order_attribution_session_pages": str(1 + o.oid % 7),
            "meta:_wc_order_attribution_session_count": str(1 + o.oid % 3),
            "meta:_wc_order_attribution_user_agent": UA,
        })
        for k, (pr, q) in enumerate(o.lines):
            parts = [f"name:{pr[0]}", f"product_id:{100 + COFFEE.index(pr)}", f"sku:{pr[1]}", f"quantity:{q}",
                     f"total:{m2(pr[2] * q - (o.disc if k == 0 else 0))}", f"sub_total:{m2(pr[2] * q)}",
                     f"tax:{m2(round((pr[2] * q - (o.disc if k == 0 else 0)) * o.tax_rate))}",
                     f"meta:_reduced_stock:{q}" if o.status in paid_statuses else None]
            ref = sum(qq * pr[2] for a, _, _, its in o.refunds for kk, qq in its if kk == k)
            if ref:
                parts.append(f"refunded:{m2(round(ref * (1 + o.tax_rate)))}")
            rec[f"line_item_{k + 1}"] = "|".join(x for x in parts if x)
        rows.append([rec[c] for c in header])
    write_text("layouts/woocommerce_webtoffee_orders.csv", csv_text(rows))
    revenue = sum(o.total - o.refunded for o in orders if o.status in WOO_REVENUE_STATUSES)
    register("layouts/woocommerce_webtoffee_orders.csv", {
        "layout": "woocommerce_webtoffee",
        "exercises": "WebToffee 'Order Export & Import for WooCommerce' CSV, one row per order, line items in "
                     "line_item_1..N as 'name:..|product_id:..|sku:..|quantity:..|total:..' strings; "
                     "COLUMNS REORDERED (order_number, customer_email, billing_email, order_total, status, "
                     "order_date moved to the front, order_id later); guests have customer_id 0 and empty "
                     "customer_email; paid_date ISO with offset, order_date naive local; refunds only in "
                     "refund_items",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "columns_reordered": True,
        "data_rows": len(rows) - 1,
        "distinct_orders": len(orders),
        "line_item_columns": line_cols,
        "status_counts": dict(sorted(Counter(o.status for o in orders).items())),
        "guest_orders": sorted(o.oid for o in orders if not o.registered),
        "account_email_differs_from_billing_email": [odd.oid],
        "distinct_customers": len({o.person.email for o in orders}),
        "customer_key": "billing_email (lower-cased); customer_email is empty for guests",
        "orders_with_refund_items": sorted(o.oid for o in orders if o.refunds),
        "partially_refunded_orders": [partial.oid],
        "currency": "GBP", "timezone": "Europe/London (order_date has no offset)",
        "net_revenue": m2(revenue),
        "net_revenue_rule": "sum of order_total - sum(refund_items amounts) over status in "
                            "{completed, processing, refunded}",
    })


SKYVERGE_HEADER = [
    "order_id", "order_number", "order_number_formatted", "date", "status", "shipping_total",
    "shipping_tax_total", "fee_total", "fee_tax_total", "tax_total", "discount_total", "order_total",
    "refunded_total", "order_currency", "payment_method", "shipping_method", "customer_id",
    "billing_first_name", "billing_last_name", "billing_company", "billing_email", "billing_phone",
    "billing_address_1", "billing_address_2", "billing_postcode", "billing_city", "billing_state",
    "billing_country", "shipping_first_name", "shipping_last_name", "shipping_address_1",
    "shipping_address_2", "shipping_postcode", "shipping_city", "shipping_state", "shipping_country",
    "shipping_company", "customer_note", "line_items", "shipping_items", "fee_items", "tax_items",
    "coupon_items", "refunds", "order_notes", "download_permissions_granted",
]


def gen_skyverge(rng: random.Random, people: list[Person]) -> None:
    statuses = (["completed"] * 12 + ["processing"] * 2 + ["on-hold", "refunded", "cancelled", "failed",
                                                          "failed", "pending", "completed", "completed"])
    rng.shuffle(statuses)
    orders = woo_orders(rng, people, "America/Chicago", 7301, 0.0625, statuses)
    partial = next(o for o in orders if o.status == "completed" and len(o.lines) >= 2)
    partial.refunds.append((partial.lines[0][0][2], "Wrong grind size", partial.created + dt.timedelta(days=2),
                            [(0, 1)]))
    states = ["Illinois", "Wisconsin", "Texas", "Oregon", "New York"]
    rows = [SKYVERGE_HEADER]
    item_id = 900
    for o in sorted(orders, key=lambda o: o.oid):
        p = o.person
        li = []
        for k, (pr, q) in enumerate(o.lines):
            item_id += 1
            ref_q = sum(qq for _, _, _, its in o.refunds for kk, qq in its if kk == k)
            line_total = pr[2] * q - (o.disc if k == 0 else 0)
            li.append("|".join([
                f"id:{item_id}", f"name:{pr[0]}", f"product_id:{200 + COFFEE.index(pr)}", f"sku:{pr[1]}",
                f"quantity:{q}", f"subtotal:{m2(pr[2] * q)}",
                f"subtotal_tax:{m2(round(pr[2] * q * o.tax_rate))}", f"total:{m2(line_total)}",
                f"total_tax:{m2(round(line_total * o.tax_rate))}",
                f"refunded:{m2(ref_q * pr[2])}", f"refunded_qty:{-ref_q if ref_q else 0}", "meta:",
            ]))
        refunds = ";".join(f"id:{o.oid + 50 + n}|date:{when.strftime('%Y-%m-%d %H:%M:%S')}|amount:{m2(a)}|reason:{why}"
                           for n, (a, why, when, _) in enumerate(o.refunds))
        st = states[p.idx % len(states)]
        rec = [
            o.oid, "", o.oid, o.created.strftime("%Y-%m-%d %H:%M:%S"), o.status, m2(o.shipping),
            "0.00", "0.00", "0.00", m2(o.tax), m2(o.disc), m2(o.total), m2(o.refunded), "USD",
            ["stripe", "ppcp-gateway", "cod"][o.oid % 3], "Flat rate" if o.shipping else "Free shipping",
            (10 + p.idx) if o.registered else 0,
            p.first, p.last, "", p.email, p.phone, p.street, "", p.zip, p.city, st, "US",
            p.first, p.last, p.street, "", p.zip, p.city, st, "US", "",
            "Please grind for French press" if o.oid % 8 == 0 else "",
            ";".join(li),
            f"id:{item_id + 500}|method_id:flat_rate|method_title:Flat rate|total:{m2(o.shipping)}" if o.shipping else "",
            "",
            f"id:{item_id + 700}|rate_id:3|code:US-IL-TAX-1|title:Tax|total:{m2(o.tax)}|compound:" if o.tax else "",
            f"id:{item_id + 800}|code:{o.coupon.lower()}|amount:{m2(o.disc)}" if o.coupon else "",
            refunds,
            f"Order status changed from Pending payment to {o.status.title()}.",
            0,
        ]
        rows.append(rec)
    write_text("layouts/woocommerce_skyverge_orders.csv", csv_text(rows))
    revenue = sum(o.total - o.refunded for o in orders if o.status in WOO_REVENUE_STATUSES)
    register("layouts/woocommerce_skyverge_orders.csv", {
        "layout": "woocommerce_skyverge",
        "exercises": "SkyVerge 'Customer/Order/Coupon Export' Default format (one row per ORDER, not per item): "
                     "line_items as ';'-joined 'id:..|name:..|quantity:..|total:..' entries, refunded_total, "
                     "empty order_number (no Sequential Order Numbers plugin), customer_id 0 for guests",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(rows) - 1,
        "distinct_orders": len(orders),
        "status_counts": dict(sorted(Counter(o.status for o in orders).items())),
        "guest_orders": sorted(o.oid for o in orders if not o.registered),
        "distinct_customers": len({o.person.email for o in orders}),
        "customer_key": "billing_email (lower-cased); customer_id 0 means guest",
        "refunded_orders": sorted(o.oid for o in orders if o.refunds),
        "partially_refunded_orders": [partial.oid],
        "currency": "USD", "timezone": "America/Chicago (date has no offset)",
        "net_revenue": m2(revenue),
        "net_revenue_rule": "sum of order_total - refunded_total over status in {completed, processing, refunded}",
    })


# --------------------------------------------------------------------------
# Square: transactions + item details
# --------------------------------------------------------------------------

SQUARE_TX_HEADER = (
    "Date,Time,Time Zone,Gross Sales,Discounts,Service Charges,Net Sales,Gift Card Sales,Tax,Tip,"
    "Partial Refunds,Total Collected,Source,Card,Card Entry Methods,Cash,Square Gift Card,Other Tender,"
    "Other Tender Type,Tender Note,Fees,Net Total,Transaction ID,Payment ID,Card Brand,PAN Suffix,"
    "Device Name,Staff Name,Staff ID,Details,Description,Event Type,Location,Dining Option,Customer ID,"
    "Customer Name,Customer Reference ID,Device Nickname,Third Party Fees,Deposit ID,Deposit Date,"
    "Deposit Details,Fee Percentage Rate,Fee Fixed Rate,Refund Reason,Discount Name,Transaction Status,"
    "Cash App,Order Reference ID,Fulfillment Note,Free Processing Applied,Channel,Unattributed Tips,"
    "Table Info,International Fee"
).split(",")
assert len(SQUARE_TX_HEADER) == 55

SQUARE_ITEM_HEADER = (
    "Date,Time,Time Zone,Category,Item,Qty,Price Point Name,SKU,Modifiers Applied,Gross Sales,Discounts,"
    "Net Sales,Tax,Transaction ID,Payment ID,Device Name,Notes,Details,Event Type,Location,Dining Option,"
    "Customer ID,Customer Name,Customer Reference ID,Unit,Count,GTIN,Itemization Type,Commission,Employee,"
    "Fulfillment Note,Channel,Token,Card Brand,PAN Suffix"
).split(",")
assert len(SQUARE_ITEM_HEADER) == 35

BAKERY = [
    # category, item, price point, price cents, modifiers
    ("Bread", "Sourdough Loaf", "Regular", 800, ""),
    ("Bread", "Seeded Rye", "Regular", 750, ""),
    ("Pastry", "Croissant", "Regular", 425, ""),
    ("Pastry", "Cardamom Bun", "Regular", 475, ""),
    ("Coffee", "Latte", "12oz", 550, "Oat Milk"),
    ("Coffee", "Drip Coffee", "16oz", 350, ""),
    ("Cake", "Carrot Cake Slice", "Regular", 650, ""),
]
CATERING = ("Catering", "Office Breakfast Box (20 ppl)", "Regular", 123450, "")


def sq_id(rng: random.Random, n: int = 27) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n)) + rng.choice(["ZY", "YY", "ZZ"])


def gen_square(rng: random.Random, people: list[Person]) -> None:
    tz = ZoneInfo("America/Los_Angeles")
    tzlabel = "Pacific Time (US & Canada)"
    location = "Example Bakery - Mission"
    tax_rate = 0.08625
    custs = []
    for p in people[8:16]:
        cid = "".join(rng.choice("ABCDEFGHJKMNPQRSTVWXYZ0123456789") for _ in range(26))
        custs.append((cid, p))
    t = dt.datetime(2024, 2, 26, 7, 5, tzinfo=tz)
    payments = []
    for i in range(32):
        t = t + dt.timedelta(hours=rng.randint(3, 40), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        if t.hour < 7 or t.hour > 18:
            t = t.replace(hour=7 + (t.hour % 11))
        items = []
        if i == 17:
            items.append((CATERING, 1))
        else:
            for it in rng.sample(BAKERY, rng.choice([1, 1, 2, 3])):
                items.append((it, rng.choice([1, 1, 2])))
        has_customer = i % 5 in (0, 2) or i == 17
        cust = custs[(i * 3) % len(custs)] if has_customer else None
        disc_item = 0 if i % 7 == 3 else None
        cash = i % 6 == 4
        tip = 0 if cash or i == 17 else rng.choice([0, 0, 100, 150, 200])
        lines = []
        for k, (it, q) in enumerate(items):
            gross = it[3] * q
            disc = -100 if disc_item == k else 0
            net = gross + disc
            tax = round(net * tax_rate)
            lines.append(dict(item=it, qty=q, gross=gross, disc=disc, net=net, tax=tax))
        payments.append(dict(i=i, when=t, lines=lines, cust=cust, cash=cash, tip=tip,
                             txid=sq_id(rng), payid=sq_id(rng), brand=["Visa", "MasterCard", "American Express"][i % 3],
                             pan=f"{rng.randint(0, 9999):04d}", dining=["For Here", "To Go", ""][i % 3]))
    # refunds: 2 full, 2 partial (one item)
    refunds = []
    for idx, full in ((5, True), (12, False), (21, True), (26, False)):
        p = payments[idx]
        if p["cash"]:
            p["cash"] = False
        lines = p["lines"] if full else [p["lines"][0]]
        if not full and len(lines[0:1]) and lines[0]["qty"] > 1:
            one = dict(lines[0])
            q = one["qty"]
            one.update(qty=1, gross=one["gross"] // q, disc=0, net=one["gross"] // q,
                       tax=round((one["gross"] // q) * tax_rate))
            lines = [one]
        refunds.append(dict(of=p, when=p["when"] + dt.timedelta(days=1, hours=2, minutes=13), lines=lines,
                            full=full, payid=sq_id(rng),
                            reason="Returned goods" if full else "Item unavailable"))

    def tx_row(ev, is_refund: bool):
        p = ev["of"] if is_refund else ev
        sgn = -1 if is_refund else 1
        lines = ev["lines"]
        gross = sgn * sum(l["gross"] for l in lines)
        disc = sgn * sum(l["disc"] for l in lines)
        net = sgn * sum(l["net"] for l in lines)
        tax = sgn * sum(l["tax"] for l in lines)
        tip = 0 if is_refund else p["tip"]
        total = net + tax + tip
        cash = p["cash"] and not is_refund
        fee = 0 if (cash or is_refund) else -(round(total * 0.026) + 10)
        cust = p["cust"]
        w = ev["when"].astimezone(tz)
        desc = ", ".join(f"{l['item'][1]} x {l['qty']}" for l in lines)
        rec = {c: "" for c in SQUARE_TX_HEADER}
        rec.update({
            "Date": w.strftime("%Y-%m-%d"), "Time": w.strftime("%H:%M:%S"), "Time Zone": tzlabel,
            "Gross Sales": m_dollar(gross), "Discounts": m_dollar(disc), "Service Charges": m_dollar(0),
            "Net Sales": m_dollar(net), "Gift Card Sales": m_dollar(0), "Tax": m_dollar(tax), "Tip": m_dollar(tip),
            "Partial Refunds": m_dollar(0), "Total Collected": m_dollar(total), "Source": "Point of Sale",
            "Card": m_dollar(0 if cash else total), "Card Entry Methods": "N/A" if cash else ["Contactless", "EMV Chip", "Keyed"][p["i"] % 3],
            "Cash": m_dollar(total if cash else 0), "Square Gift Card": m_dollar(0), "Other Tender": m_dollar(0),
            "Other Tender Type": QE, "Tender Note": QE, "Fees": m_dollar(fee), "Net Total": m_dollar(total + fee),
            "Transaction ID": p["txid"], "Payment ID": ev["payid"], "Card Brand": "" if cash else p["brand"],
            "PAN Suffix": "" if cash else p["pan"], "Device Name": "Square Terminal 0042",
            "Details": f"https://app.squareup.com/dashboard/sales/transactions/{p['txid']}/by-unit/LEXAMPLE0001",
            "Description": desc, "Event Type": "Refund" if is_refund else "Payment", "Location": location,
            "Dining Option": p["dining"], "Customer ID": cust[0] if cust else "",
            "Customer Name": cust[1].name if cust else "", "Fee Percentage Rate": "" if cash or is_refund else "2.6",
            "Fee Fixed Rate": "" if cash or is_refund else "$0.10", "Refund Reason": ev.get("reason", "") if is_refund else "",
            "Discount Name": "Staff discount" if disc else "", "Transaction Status": "Complete", "Channel": location,
        })
        return w, [rec[c] for c in SQUARE_TX_HEADER], net, cust

    evs = [tx_row(p, False) for p in payments] + [tx_row(r, True) for r in refunds]
    evs.sort(key=lambda e: e[0], reverse=True)  # newest first
    rows = [SQUARE_TX_HEADER] + [e[1] for e in evs]
    write_text("layouts/square_transactions.csv", csv_text(rows))
    missing_rows = [k + 2 for k, e in enumerate(evs) if not e[3]]
    refund_rows = [k + 2 for k, e in enumerate(evs) if e[1][SQUARE_TX_HEADER.index("Event Type")] == "Refund"]
    ids = {c[0] for e in evs for c in [e[3]] if c}
    register("layouts/square_transactions.csv", {
        "layout": "square_transactions",
        "exercises": "Square Dashboard Transactions export (55 columns): money as $8.00 / -$0.95 / \"$1,234.50\", "
                     "separate Date, Time and Time Zone ('Pacific Time (US & Canada)'), often-empty Customer ID, "
                     "refunds as Event Type = Refund rows with negative amounts and the original Transaction ID",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(rows) - 1,
        "payment_rows": len(payments), "refund_rows": refund_rows,
        "full_refunds": 2, "partial_refunds": 2,
        "distinct_transactions": len({p["txid"] for p in payments}),
        "rows_without_customer_id": missing_rows,
        "distinct_customers": len(ids),
        "customer_key": "Customer ID (26 characters); empty on walk-in sales",
        "thousands_separator_rows": [k + 2 for k, e in enumerate(evs) if "," in e[1][3]],
        "date_format": "YYYY-MM-DD (ISO), Time HH:MM:SS, local to Time Zone",
        "timezone": "America/Los_Angeles",
        "currency": "USD",
        "net_revenue": m2(sum(e[2] for e in evs)),
        "net_revenue_rule": "sum of Net Sales over all rows (Payment rows positive, Refund rows negative); "
                            "tax and tips excluded",
        "total_collected_sum": m2(sum(cents(e[1][11].replace('$', '').replace(',', '')) for e in evs)),
        "first_payment_utc": utc_iso(min(p["when"] for p in payments)),
        "last_payment_utc": utc_iso(max(p["when"] for p in payments)),
    })

    # ---- item details ----
    irows = []
    for ev, is_refund in [(p, False) for p in payments] + [(r, True) for r in refunds]:
        p = ev["of"] if is_refund else ev
        sgn = -1 if is_refund else 1
        w = ev["when"].astimezone(tz)
        cust = p["cust"]
        for l in ev["lines"]:
            it = l["item"]
            rec = {c: "" for c in SQUARE_ITEM_HEADER}
            rec.update({
                "Date": w.strftime("%Y-%m-%d"), "Time": w.strftime("%H:%M:%S"), "Time Zone": tzlabel,
                "Category": it[0], "Item": it[1], "Qty": f"{l['qty']:.1f}", "Price Point Name": it[2],
                "SKU": QE, "Modifiers Applied": it[4] or QE, "Gross Sales": m_dollar(sgn * l["gross"]),
                "Discounts": m_dollar(sgn * l["disc"]), "Net Sales": m_dollar(sgn * l["net"]),
                "Tax": m_dollar(sgn * l["tax"]), "Transaction ID": p["txid"], "Payment ID": ev["payid"],
                "Device Name": "Square Terminal 0042", "Notes": QE,
                "Details": f"https://app.squareup.com/dashboard/sales/transactions/{p['txid']}/by-unit/LEXAMPLE0001",
                "Event Type": "Refund" if is_refund else "Payment", "Location": location,
                "Dining Option": p["dining"] or QE, "Customer ID": cust[0] if cust else QE,
                "Customer Name": cust[1].name if cust else QE, "Customer Reference ID": QE,
                "Unit": "ea", "Count": str(l["qty"]), "GTIN": QE, "Itemization Type": "Physical Good",
                "Commission": "$0.00", "Employee": QE, "Fulfillment Note": QE, "Channel": location,
                "Token": "TOK" + it[1].upper().replace(" ", "")[:10].ljust(10, "X") + "EXAMPLE12",
                "Card Brand": "" if p["cash"] else p["brand"], "PAN Suffix": "" if p["cash"] else p["pan"],
            })
            irows.append((w, [rec[c] for c in SQUARE_ITEM_HEADER], sgn * l["net"], cust, is_refund))
    irows.sort(key=lambda e: e[0], reverse=True)
    rows = [SQUARE_ITEM_HEADER] + [e[1] for e in irows]
    write_text("layouts/square_item_details.csv", csv_text(rows))
    register("layouts/square_item_details.csv", {
        "layout": "square_item_details",
        "exercises": "Square Item Sales Detail export (35 columns, 2026 header incl. GTIN/Commission/Token/"
                     "Card Brand): one row per item line, Qty as '1.0', money as $ strings, empty text fields "
                     "written as \"\", refund item rows with negative money; Transaction IDs match "
                     "square_transactions.csv",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(rows) - 1,
        "distinct_transactions": len({e[1][13] for e in irows}),
        "refund_item_rows": [k + 2 for k, e in enumerate(irows) if e[4]],
        "rows_without_customer_id": [k + 2 for k, e in enumerate(irows) if not e[3]],
        "distinct_customers": len({e[3][0] for e in irows if e[3]}),
        "links_to": "layouts/square_transactions.csv by Transaction ID (and Payment ID)",
        "net_revenue": m2(sum(e[2] for e in irows)),
        "net_revenue_rule": "sum of Net Sales over all rows; equals the transactions file's net revenue",
        "currency": "USD", "timezone": "America/Los_Angeles",
    })


# --------------------------------------------------------------------------
# Stripe unified payments
# --------------------------------------------------------------------------

STRIPE_HEADER = (
    "id,Created date (UTC),Amount,Amount Refunded,Currency,Captured,Converted Amount,"
    "Converted Amount Refunded,Converted Currency,Decline Reason,Description,Fee,Refunded date (UTC),"
    "Statement Descriptor,Status,Seller Message,Taxes On Fee,Card ID,Customer ID,Customer Description,"
    "Customer Email,Invoice ID,Transfer"
).split(",")


def stripe_id(rng: random.Random, prefix: str, n: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def gen_stripe(rng: random.Random, people: list[Person]) -> None:
    custs = [(stripe_id(rng, "cus_", 14), p) for p in people[14:24]]
    plans = [("Coffee subscription - monthly", 2900), ("Coffee subscription - fortnightly", 4900),
             ("Tasting flight", 3500), ("Brewing workshop", 6500)]
    kinds = (["paid"] * 20 + ["failed"] * 3 + ["refunded"] * 2 + ["partial"] * 2 + ["rpm"] + ["paid_guest"] * 2)
    rng.shuffle(kinds)
    t = dt.datetime(2024, 1, 3, 8, 0, tzinfo=UTC)
    recs = []
    for i, kind in enumerate(kinds):
        t = t + dt.timedelta(hours=rng.randint(20, 70), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        desc, amt = plans[i % len(plans)]
        cust = None if kind == "paid_guest" else custs[(i * 7) % len(custs)]
        show_email = cust is not None and (i % 4 != 1)
        rec = {c: "" for c in STRIPE_HEADER}
        fee = round(amt * 0.029) + 30
        refunded = {"refunded": amt, "partial": amt // 2}.get(kind, 0)
        status = {"paid": "Paid", "paid_guest": "Paid", "partial": "Paid", "refunded": "Refunded",
                  "failed": "Failed", "rpm": "requires_payment_method"}[kind]
        rec.update({
            "id": "" if kind == "rpm" else stripe_id(rng, "ch_3"),
            "Created date (UTC)": t.strftime("%Y-%m-%d %H:%M:%S"), "Amount": m2(amt), "Currency": "usd",
            "Description": (f"Charge for {people[24].email}" if kind == "paid_guest" and i % 2 else desc),
            "Status": status, "Customer ID": cust[0] if cust else "",
            "Customer Email": cust[1].email if show_email else "",
        })
        if kind in ("paid", "paid_guest", "partial", "refunded"):
            rec.update({
                "Amount Refunded": m2(refunded), "Captured": "true", "Converted Amount": m2(amt),
                "Converted Amount Refunded": m2(refunded), "Converted Currency": "usd", "Fee": m2(fee),
                "Seller Message": "Payment complete.", "Taxes On Fee": "0.00",
                "Card ID": stripe_id(rng, "pm_1"), "Statement Descriptor": "EXAMPLE ROASTERS",
                "Invoice ID": stripe_id(rng, "in_1") if "subscription" in desc and cust else "",
                "Refunded date (UTC)": (t + dt.timedelta(days=2, hours=3)).strftime("%Y-%m-%d %H:%M:%S") if refunded else "",
            })
        elif kind == "failed":
            rec.update({
                "Amount Refunded": "0.00", "Captured": "false", "Converted Amount": m2(amt),
                "Converted Amount Refunded": "0.00", "Converted Currency": "usd",
                "Decline Reason": ["insufficient_funds", "card_declined", "expired_card"][i % 3],
                "Seller Message": "The bank did not return any further details with this decline.",
                "Card ID": stripe_id(rng, "pm_1"),
            })
        recs.append((t, rec, kind, cust, amt, refunded))
    recs.sort(key=lambda r: r[0], reverse=True)
    rows = [STRIPE_HEADER] + [[r[1][c] for c in STRIPE_HEADER] for r in recs]
    write_text("layouts/stripe_payments.csv", csv_text(rows))

    def rownums(pred):
        return [k + 2 for k, r in enumerate(recs) if pred(r)]

    keyset = set()
    for r in recs:
        if r[3]:
            keyset.add(r[3][0])
    register("layouts/stripe_payments.csv", {
        "layout": "stripe_payments",
        "exercises": "Stripe Dashboard Payments export, unified_payments.csv layout (23 default columns): "
                     "Created date (UTC), Amount / Amount Refunded in currency units, Status Paid / Failed / "
                     "Refunded / requires_payment_method (row with empty id), partial refunds as Paid with "
                     "Amount Refunded > 0, rows with Customer ID but no e-mail, guest rows with neither "
                     "(one names the buyer only in Description: 'Charge for ...@example...')",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "data_rows": len(rows) - 1,
        "status_counts": dict(sorted(Counter(r[1]["Status"] for r in recs).items())),
        "failed_rows": rownums(lambda r: r[2] == "failed"),
        "refunded_rows": rownums(lambda r: r[2] == "refunded"),
        "partially_refunded_rows": rownums(lambda r: r[2] == "partial"),
        "requires_payment_method_rows": rownums(lambda r: r[2] == "rpm"),
        "rows_without_customer": rownums(lambda r: r[3] is None),
        "rows_with_customer_id_but_no_email": rownums(lambda r: r[3] is not None and not r[1]["Customer Email"]),
        "distinct_customers": len(keyset),
        "customer_key": "Customer ID (cus_...), else Customer Email",
        "currency": "usd",
        "net_revenue": m2(sum(a - rf for _, rec, k, _, a, rf in recs if k in ("paid", "paid_guest", "partial", "refunded"))),
        "net_revenue_rule": "sum of Amount - Amount Refunded over Status in {Paid, Refunded}; Failed and "
                            "requires_payment_method are not revenue",
        "first_payment_utc": utc_iso(min(r[0] for r in recs)), "last_payment_utc": utc_iso(max(r[0] for r in recs)),
    })


# --------------------------------------------------------------------------
# UCI Online Retail I and II
# --------------------------------------------------------------------------

RETAIL_PRODUCTS = [
    ("84001", "CERAMIC TEA LIGHT HOLDER BLUE", 255), ("84002B", "ENAMEL MUG SKY STRIPE", 165),
    ("71210", "RECYCLED GIFT BAG KRAFT", 85), ("22050", "PAPER BUNTING VINTAGE", 295),
    ("23107C", "FELT EGG COSY CHICKEN", 125), ("47501", "PICNIC BASKET WICKER SMALL", 495),
    ("21900", "TIN SIGN HOME SWEET HOME", 210), ("85231D", "SCENTED CANDLE FIG AND CEDAR", 345),
]
NON_PRODUCT = {
    "POST": "POSTAGE", "D": "Discount", "M": "Manual", "BANK CHARGES": "Bank Charges",
    "AMAZONFEE": "AMAZON FEE", "DOT": "DOTCOM POSTAGE", "B": "Adjust bad debt",
}


@dataclass
class RetailRow:
    invoice: str
    code: str
    desc: str | None
    qty: int
    when: dt.datetime
    price_c: int
    customer: int | None
    country: str
    kind: str  # product | cancel | nonproduct | stock_adjustment | bad_debt

    def excel_invoice(self):
        return int(self.invoice) if self.invoice.isdigit() else self.invoice

    def excel_code(self):
        return int(self.code) if self.code.isdigit() else self.code


def retail_rows(rng: random.Random, first_invoice: int, start: dt.datetime, end: dt.datetime,
                n_invoices: int, customers: list[tuple[int, str]], year_tag: str) -> list[RetailRow]:
    rows: list[RetailRow] = []
    span = (end - start).total_seconds()
    inv = first_invoice
    times = sorted(start + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(n_invoices))
    for k, when in enumerate(times):
        when = when.replace(second=0, microsecond=0)
        if when.hour < 7 or when.hour > 19:
            when = when.replace(hour=8 + when.hour % 10)
        cust, country = customers[k % len(customers)]
        no_cust = k % 7 == 5
        n = rng.randint(2, 5)
        for code, desc, price in rng.sample(RETAIL_PRODUCTS, n):
            rows.append(RetailRow(str(inv), code, desc, rng.choice([1, 2, 4, 6, 12, 24]), when, price,
                                  None if no_cust else cust, country, "product"))
        if country != "United Kingdom" and not no_cust:
            rows.append(RetailRow(str(inv), "POST", "POSTAGE", 1, when, 1800, cust, country, "nonproduct"))
        if no_cust and k % 2 == 1:
            rows.append(RetailRow(str(inv), "DOT", "DOTCOM POSTAGE", 1, when, 56977 // 10, None, country, "nonproduct"))
        inv += rng.randint(3, 40)
    return rows


def add_retail_specials(rng: random.Random, rows: list[RetailRow], customers, base_inv: int) -> None:
    """Cancellations, fees, manual lines, stock adjustments (with and without 'A' bad-debt invoices)."""
    whens = [r.when for r in rows]
    pick = lambda k: whens[(k * 11) % len(whens)] + dt.timedelta(hours=2)  # noqa: E731
    c1, c2 = customers[0][0], customers[1][0]
    # a cancelled invoice with two lines and a 'D' discount line
    rows += [
        RetailRow(f"C{base_inv + 1}", "84001", "CERAMIC TEA LIGHT HOLDER BLUE", -6, pick(1), 255, c1, customers[0][1], "cancel"),
        RetailRow(f"C{base_inv + 1}", "22050", "PAPER BUNTING VINTAGE", -2, pick(1), 295, c1, customers[0][1], "cancel"),
        RetailRow(f"C{base_inv + 2}", "D", "Discount", -1, pick(2), 2725, c2, customers[1][1], "cancel_nonproduct"),
        RetailRow(f"C{base_inv + 3}", "AMAZONFEE", "AMAZON FEE", -1, pick(3), 123456, None, "United Kingdom", "cancel_nonproduct"),
        RetailRow(f"C{base_inv + 4}", "M", "Manual", -1, pick(4), 1495, c2, customers[1][1], "cancel_nonproduct"),
        RetailRow(str(base_inv + 5), "M", "Manual", 1, pick(5), 250, c1, customers[0][1], "nonproduct"),
        RetailRow(str(base_inv + 6), "BANK CHARGES", "Bank Charges", 1, pick(6), 1500, c2, customers[1][1], "nonproduct"),
        # stock adjustments: not cancellations, negative quantity, price 0, no customer
        RetailRow(str(base_inv + 7), "47501", None, -12, pick(7), 0, None, "United Kingdom", "stock_adjustment"),
        RetailRow(str(base_inv + 8), "21900", "damaged", -3, pick(8), 0, None, "United Kingdom", "stock_adjustment"),
        RetailRow(str(base_inv + 9), "85231D", "?", -24, pick(9), 0, None, "United Kingdom", "stock_adjustment"),
    ]
    rows.sort(key=lambda r: (r.when, r.invoice))


def renumber_invoices(rng: random.Random, rows: list[RetailRow], start: int) -> int:
    """Give invoices increasing numbers in time order (as in the real data), keeping C/A prefixes.

    Returns the next free number."""
    rows.sort(key=lambda r: (r.when, r.invoice))
    mapping: dict[str, str] = {}
    nxt = start
    for r in rows:
        if r.invoice.startswith("A"):
            continue
        bare = r.invoice.lstrip("C")
        if bare not in mapping:
            mapping[bare] = str(nxt)
            nxt += rng.randint(1, 25)
        r.invoice = ("C" if r.invoice.startswith("C") else "") + mapping[bare]
    return nxt


def retail_facts(rows: list[RetailRow], first_data_row: int = 2) -> dict:
    def where(pred):
        return [i + first_data_row for i, r in enumerate(rows) if pred(r)]

    product = [r for r in rows if r.code not in NON_PRODUCT]
    return {
        "data_rows": len(rows),
        "distinct_invoices": len({r.invoice for r in rows}),
        "distinct_customers": len({r.customer for r in rows if r.customer is not None}),
        "cancellation_rows": where(lambda r: r.invoice.startswith("C")),
        "cancelled_invoices": sorted({r.invoice for r in rows if r.invoice.startswith("C")}),
        "adjustment_invoices": sorted({r.invoice for r in rows if r.invoice.startswith("A")}),
        "missing_customer_rows": where(lambda r: r.customer is None),
        "non_product_rows": {code: where(lambda r, c=code: r.code == c) for code in NON_PRODUCT
                             if any(r.code == code for r in rows)},
        "stock_adjustment_rows": where(lambda r: r.kind == "stock_adjustment"),
        "negative_quantity_rows": where(lambda r: r.qty < 0),
        "zero_price_rows": where(lambda r: r.price_c == 0),
        "net_revenue": m2(sum(r.qty * r.price_c for r in product)),
        "net_revenue_rule": "sum of Quantity * unit price over rows whose StockCode is a product (not POST, D, M, "
                            "BANK CHARGES, AMAZONFEE, DOT, B); cancellations (C...) included with their negative "
                            "quantities; stock adjustments contribute 0",
        "gross_product_sales": m2(sum(r.qty * r.price_c for r in product if not r.invoice.startswith("C"))),
        "sum_quantity_times_price_all_rows": m2(sum(r.qty * r.price_c for r in rows)),
        "first_invoice_date": min(r.when for r in rows).strftime("%Y-%m-%d %H:%M"),
        "last_invoice_date": max(r.when for r in rows).strftime("%Y-%m-%d %H:%M"),
    }


def write_retail_sheet(ws, header, rows: list[RetailRow]) -> None:
    ws.append(header)
    for r in rows:
        ws.append([r.excel_invoice(), r.excel_code(), r.desc, r.qty, r.when, r.price_c / 100,
                   float(r.customer) if r.customer is not None else None, r.country])
    for cell in ws["E"][1:]:
        cell.number_format = "m/d/yyyy h:mm"


def gen_online_retail(rng: random.Random) -> None:
    customers = [(12431, "Australia"), (13047, "United Kingdom"), (14688, "United Kingdom"),
                 (12583, "France"), (15311, "United Kingdom"), (12662, "Germany"), (17511, "United Kingdom"),
                 (16029, "United Kingdom"), (12947, "EIRE"), (13767, "Netherlands")]
    rows = retail_rows(rng, 536365, dt.datetime(2010, 12, 1, 8, 26), dt.datetime(2011, 12, 9, 12, 50),
                       16, customers, "I")
    add_retail_specials(rng, rows, customers, 900000)
    renumber_invoices(rng, rows, 536365)
    # bad-debt adjustment invoices ('A' prefix, code B, no customer)
    when = dt.datetime(2011, 8, 12, 14, 50)
    rows += [RetailRow("A563185", "B", "Adjust bad debt", 1, when, 1106206, None, "United Kingdom", "bad_debt"),
             RetailRow("A563186", "B", "Adjust bad debt", 1, when + dt.timedelta(minutes=1), -1106206, None, "United Kingdom", "bad_debt")]
    rows.sort(key=lambda r: (r.when, r.invoice))
    wb = new_workbook()
    ws = wb.active
    ws.title = "Online Retail"
    header = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    write_retail_sheet(ws, header, rows)
    save_workbook("layouts/online_retail.xlsx", wb)
    f = retail_facts(rows)
    f.update({
        "layout": "uci_online_retail",
        "exercises": "UCI 'Online Retail' workbook (sheet 'Online Retail'): InvoiceNo numbers and 'C'/'A' strings, "
                     "numeric and alphanumeric StockCodes, real Excel datetimes, CustomerID a numeric cell (pandas: float 13047.0 because of the empty cells) or "
                     "empty, cancellations, non-product codes POST/D/M/BANK CHARGES/AMAZONFEE/DOT/B, stock "
                     "adjustments (negative quantity, price 0, no customer)",
        "sheets": {"Online Retail": len(rows)},
        "customer_key": "CustomerID (float in the file; 12583.0 means customer '12583')",
        "currency": "GBP", "timezone": "naive (UK local time)",
    })
    register("layouts/online_retail.xlsx", f)

    # ---- Online Retail II: two sheets overlapping on 2010-12-01..09 ----
    customers2 = customers[::-1]
    s1 = retail_rows(rng, 489434, dt.datetime(2009, 12, 1, 7, 45), dt.datetime(2010, 11, 30, 17, 0),
                     12, customers2, "II-1")
    add_retail_specials(rng, s1, customers2, 900000)
    renumber_invoices(rng, s1, 489434)
    overlap = [RetailRow("536365", code, desc, q, dt.datetime(2010, 12, 1, 8, 26), price, 13047, "United Kingdom", "product")
               for code, desc, price, q in [("84001", "CERAMIC TEA LIGHT HOLDER BLUE", 255, 6),
                                            ("22050", "PAPER BUNTING VINTAGE", 295, 6),
                                            ("71210", "RECYCLED GIFT BAG KRAFT", 85, 12)]]
    overlap.append(RetailRow("536366", "POST", "POSTAGE", 1, dt.datetime(2010, 12, 1, 8, 28), 1800, 12583, "France", "nonproduct"))
    s1 += [RetailRow(r.invoice, r.code, r.desc, r.qty, r.when, r.price_c, r.customer, r.country, r.kind) for r in overlap]
    s2 = retail_rows(rng, 536400, dt.datetime(2010, 12, 2, 9, 0), dt.datetime(2011, 12, 9, 12, 50),
                     10, customers2, "II-2")
    add_retail_specials(rng, s2, customers2, 900000)
    renumber_invoices(rng, s2, 536370)
    s2 += [RetailRow(r.invoice, r.code, r.desc, r.qty, r.when, r.price_c, r.customer, r.country, r.kind) for r in overlap]
    s1.sort(key=lambda r: (r.when, r.invoice))
    s2.sort(key=lambda r: (r.when, r.invoice))
    wb = new_workbook()
    ws1 = wb.active
    ws1.title = "Year 2009-2010"
    ws2 = wb.create_sheet("Year 2010-2011")
    header2 = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
    write_retail_sheet(ws1, header2, s1)
    write_retail_sheet(ws2, header2, s2)
    save_workbook("layouts/online_retail_II.xlsx", wb)
    allrows = s1 + s2
    key = lambda r: (r.invoice, r.code, r.desc, r.qty, r.when, r.price_c, r.customer, r.country)  # noqa: E731
    dup = sum(c - 1 for c in Counter(key(r) for r in allrows).values() if c > 1)
    f1, f2 = retail_facts(s1), retail_facts(s2)
    uniq = {}
    for r in allrows:
        uniq.setdefault(key(r), r)
    fu = retail_facts(list(uniq.values()))
    register("layouts/online_retail_II.xlsx", {
        "layout": "uci_online_retail_ii",
        "exercises": "UCI 'Online Retail II' workbook with its two sheets 'Year 2009-2010' and 'Year 2010-2011' "
                     "(Invoice, Price, 'Customer ID' with a space); the sheets overlap on 2010-12-01..09 like the "
                     "real file, so the overlapping rows are exact duplicates across sheets",
        "sheets": {"Year 2009-2010": len(s1), "Year 2010-2011": len(s2)},
        "data_rows": len(allrows),
        "rows_duplicated_across_sheets": dup,
        "distinct_rows": len(uniq),
        "per_sheet": {"Year 2009-2010": f1, "Year 2010-2011": f2},
        "distinct_invoices": fu["distinct_invoices"],
        "distinct_customers": fu["distinct_customers"],
        "net_revenue": fu["net_revenue"],
        "net_revenue_rule": "as online_retail.xlsx, over the distinct rows (cross-sheet duplicates counted once)",
        "net_revenue_counting_duplicates": m2(sum(r.qty * r.price_c for r in allrows if r.code not in NON_PRODUCT)),
        "row_numbers": "per_sheet row numbers are spreadsheet rows within that sheet (header = row 1)",
        "customer_key": "Customer ID (float)", "currency": "GBP",
    })

    # ---- Online Retail II as the Kaggle-style combined CSV ----
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header2)
    for r in allrows:
        price = r.price_c / 100
        w.writerow([r.invoice, r.code, r.desc if r.desc is not None else "", r.qty,
                    r.when.strftime("%Y-%m-%d %H:%M:%S"), repr(price),
                    f"{float(r.customer)!r}" if r.customer is not None else "", r.country])
    write_text("layouts/online_retail_II.csv", out.getvalue())
    fc = retail_facts(allrows)
    fc.update({
        "layout": "uci_online_retail_ii",
        "exercises": "Online Retail II as the widely shared combined CSV: both sheets concatenated (so the "
                     "2010-12-01..09 overlap is duplicated), InvoiceDate 'YYYY-MM-DD HH:MM:SS', Customer ID "
                     "'13085.0' or empty, Price like '2.1'",
        "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
        "same_rows_as": "layouts/online_retail_II.xlsx (sheet 1 then sheet 2)",
        "exact_duplicate_rows": dup,
        "distinct_rows": len(uniq),
        "net_revenue_distinct_rows": fu["net_revenue"],
        "customer_key": "Customer ID (float text)", "currency": "GBP",
    })
    register("layouts/online_retail_II.csv", fc)


# --------------------------------------------------------------------------
# CDNOW with lifetimes-style header
# --------------------------------------------------------------------------


def gen_cdnow(rng: random.Random) -> None:
    lines = [" customer_id  date number_of_cds  dollar_value"]
    recs = []
    for cid in range(1, 23):
        first = dt.date(1997, 1, 1) + dt.timedelta(days=rng.randint(0, 80))
        n = rng.choice([1, 1, 1, 2, 3, 4, 6])
        d = first
        for k in range(n):
            cds = rng.choice([1, 1, 2, 2, 3, 5])
            value = round(sum(rng.uniform(9.5, 16.9) for _ in range(cds)), 2)
            recs.append((cid, d, cds, value))
            d = d + dt.timedelta(days=rng.randint(5, 160))
            if d > dt.date(1998, 6, 30):
                break
    for cid, d, cds, value in recs:
        lines.append(f" {cid:05d} {d.strftime('%Y%m%d')} {cds:2d} {value:7.2f}")
    write_text("layouts/cdnow_master_with_header.txt", "\r\n".join(lines) + "\r\n")
    per = Counter(r[0] for r in recs)
    register("layouts/cdnow_master_with_header.txt", {
        "layout": "cdnow_master",
        "exercises": "CDNOW master format (Fader & Hardie) with the header line lifetimes adds "
                     "(' customer_id  date number_of_cds  dollar_value'), whitespace separated, zero-padded "
                     "customer ids, YYYYMMDD dates, CRLF; invented values",
        "encoding": "ascii", "delimiter": "whitespace", "line_ending": "CRLF",
        "data_rows": len(recs),
        "distinct_customers": len(per),
        "repeat_customers": sum(1 for v in per.values() if v > 1),
        "customer_id_format": "5-digit zero-padded string, e.g. '00001' (keep as given)",
        "total_cds": sum(r[2] for r in recs),
        "net_revenue": m2(sum(cents(r[3]) for r in recs)),
        "net_revenue_rule": "sum of dollar_value",
        "first_date": min(r[1] for r in recs).isoformat(), "last_date": max(r[1] for r in recs).isoformat(),
    })


# --------------------------------------------------------------------------
# split export (orders / items / customers)
# --------------------------------------------------------------------------


def gen_split(rng: random.Random, people: list[Person]) -> None:
    custs = people[:22]  # CUST-101..122; orders only use CUST-101..115
    cust_rows = [["customer_id", "email", "first_name", "last_name", "city", "country_code", "signup_date",
                  "marketing_opt_in"]]
    for k, p in enumerate(custs):
        cust_rows.append([f"CUST-{101 + k}", p.email, p.first, p.last, p.city, "US",
                          (dt.date(2023, 6, 1) + dt.timedelta(days=11 * k)).isoformat(),
                          "true" if k % 3 else "false"])
    orders = []
    t = dt.datetime(2024, 1, 4, 15, 0, tzinfo=UTC)
    for i in range(30):
        t = t + dt.timedelta(days=rng.randint(1, 5), hours=rng.randint(0, 10), minutes=rng.randint(0, 59))
        cid = f"CUST-{101 + (i * 4) % 15}" if i != 13 else "CUST-999"
        status = "canceled" if i in (7, 19) else ("refunded" if i == 24 else "completed")
        orders.append(dict(oid=f"ORD-{5001 + i}", cid=cid, when=t, status=status, items=[]))
    item_rows = [["order_item_id", "order_id", "sku", "product_name", "quantity", "unit_price", "discount"]]
    iid = 90001
    no_items = {"ORD-5011", "ORD-5027"}
    for o in orders:
        if o["oid"] in no_items:
            continue
        for pr in rng.sample(COFFEE[:7], rng.choice([1, 2, 2, 3])):
            q = rng.choice([1, 1, 2])
            disc = 100 if (iid % 9 == 0) else 0
            o["items"].append((iid, pr, q, disc))
            item_rows.append([iid, o["oid"], pr[1], pr[0], q, m2(pr[2]), m2(disc)])
            iid += 1
    # orphan items: their order_id is not in orders.csv; placed among the normal rows
    orphan_recs = []
    for oid in ("ORD-4999", "ORD-6001", "ORD-6001"):
        pr = COFFEE[iid % 7]
        orphan_recs.append([iid, oid, pr[1], pr[0], 1, m2(pr[2]), "0.00"])
        iid += 1
    normal = item_rows[1:]
    normal.insert(5, orphan_recs[0])
    normal.insert(20, orphan_recs[1])
    normal.append(orphan_recs[2])
    item_rows = [item_rows[0]] + normal
    orphan_rows = [k + 2 for k, r in enumerate(normal) if r[1] in ("ORD-4999", "ORD-6001")]
    order_rows = [["order_id", "customer_id", "order_status", "created_at", "currency", "order_total"]]
    for o in orders:
        total = sum(pr[2] * q - d for _, pr, q, d in o["items"]) if o["items"] else 2500
        o["total"] = total
        order_rows.append([o["oid"], o["cid"], o["status"], o["when"].strftime("%Y-%m-%dT%H:%M:%SZ"), "USD", m2(total)])
    write_text("split/customers.csv", csv_text(cust_rows))
    write_text("split/orders.csv", csv_text(order_rows))
    write_text("split/order_items.csv", csv_text(item_rows))
    known = {r[0] for r in cust_rows[1:]}
    matched_items = [it for o in orders for it in o["items"]]
    revenue = sum(pr[2] * q - d for o in orders if o["status"] == "completed" for _, pr, q, d in o["items"])
    common = {"layout": "split_export", "encoding": "utf-8", "delimiter": ",", "line_ending": "LF",
              "join": "order_items.order_id -> orders.order_id; orders.customer_id -> customers.customer_id"}
    register("split/orders.csv", {**common,
        "exercises": "orders part of a split shop dump; one order references an unknown customer; two orders "
                     "have no items; ISO UTC timestamps with Z",
        "data_rows": len(orders), "distinct_orders": len(orders),
        "status_counts": dict(sorted(Counter(o["status"] for o in orders).items())),
        "orders_without_items": sorted(no_items),
        "orders_with_unknown_customer": [o["oid"] for o in orders if o["cid"] not in known],
        "orders_with_unknown_customer_rows": [k + 2 for k, o in enumerate(orders) if o["cid"] not in known],
        "distinct_customers": len({o["cid"] for o in orders}),
        "net_revenue": m2(revenue),
        "net_revenue_rule": "sum over order_items joined to orders with order_status = completed of "
                            "quantity * unit_price - discount (orders without items contribute nothing even "
                            "though their order_total is 25.00)",
        "order_total_sum_completed": m2(sum(o["total"] for o in orders if o["status"] == "completed")),
    })
    register("split/order_items.csv", {**common,
        "exercises": "line items of the split dump; orphan items whose order_id is not in orders.csv",
        "data_rows": len(item_rows) - 1,
        "matched_item_rows": len(matched_items),
        "orphan_item_rows": orphan_rows,
        "orphan_order_ids": sorted({"ORD-4999", "ORD-6001"}),
    })
    register("split/customers.csv", {**common,
        "exercises": "customers of the split dump; marketing_opt_in true/false; some customers without orders",
        "data_rows": len(cust_rows) - 1, "distinct_customers": len(cust_rows) - 1,
        "customers_without_orders": sorted(known - {o["cid"] for o in orders}),
        "marketing_opt_in_true": sum(1 for r in cust_rows[1:] if r[-1] == "true"),
    })


# --------------------------------------------------------------------------
# generic export + mapping
# --------------------------------------------------------------------------


def gen_generic(rng: random.Random) -> None:
    header = ["Kunde", "Beleg", "Belegdatum", "Betrag", "Artikel", "Filiale"]
    rows = [header]
    recs = []
    d = dt.date(2024, 1, 3)
    for i in range(26):
        d = d + dt.timedelta(days=rng.randint(3, 21))
        if i == 25:
            d = dt.date(2024, 12, 31)
        kunde = f"K-{10020 + (i * 7) % 11:05d}"
        amount = rng.choice([1290, 2450, 899, 4590, 12990, 123450, 3600])
        if i == 9:
            amount = -500  # Gutschrift (credit note)
        recs.append((kunde, f"RE-2024-{i + 1:04d}", d, amount))
        rows.append([kunde, f"RE-2024-{i + 1:04d}", d.strftime("%d.%m.%Y"), m2_comma(amount, thousands=True) + " €",
                     ["Kaffee 1kg", "Filterpapier", "Mühle", "Tasse", "Gutschein"][i % 5],
                     ["Hauptgeschäft", "Markthalle"][i % 2]])
    write_text("layouts/generic_with_mapping.csv", csv_text(rows, delim=";"))
    yaml_text = '''# Mapping for layouts/generic_with_mapping.csv (a German till export).
# "columns" maps each canonical column of the transactions table (left) to the
# header of the source file (right).  Only these four are required.
layout:
  name: generic_de_kasse
  columns:
    customer_id: Kunde
    order_id: Beleg
    ts: Belegdatum
    amount: Betrag
  # strptime format of the date column (31.12.2024 = day.month.year)
  date_format: "%d.%m.%Y"
  # decimal separator of the amount column; "1.234,50 €" -> 1234.50
  # (the other of "." / "," is then the thousands separator; currency
  # symbols and spaces around the number are ignored)
  decimal: ","
  # the ";" delimiter is left to detection; state it if you prefer:
  # delimiter: ";"
'''
    write_text("layouts/generic_mapping.yaml", yaml_text)
    register("layouts/generic_with_mapping.csv", {
        "layout": "generic (needs layouts/generic_mapping.yaml)",
        "exercises": "unknown layout with German headers: ';' delimiter, day-first dates '31.12.2024', "
                     "amounts '1.234,50 €' with decimal comma, thousands dot and euro sign, a negative credit note",
        "encoding": "utf-8", "delimiter": ";", "line_ending": "LF",
        "mapping_file": "layouts/generic_mapping.yaml",
        "data_rows": len(recs), "distinct_orders": len({r[1] for r in recs}),
        "distinct_customers": len({r[0] for r in recs}),
        "negative_amount_rows": [k + 2 for k, r in enumerate(recs) if r[3] < 0],
        "thousands_separator_rows": [k + 2 for k, r in enumerate(recs) if abs(r[3]) >= 100000],
        "net_revenue": m2(sum(r[3] for r in recs)),
        "net_revenue_rule": "sum of Betrag",
        "first_date": min(r[2] for r in recs).isoformat(), "last_date": max(r[2] for r in recs).isoformat(),
        "currency": "EUR",
    })
    register("layouts/generic_mapping.yaml", {
        "layout": "mapping file",
        "exercises": "explicit mapping: layout.name, layout.columns {customer_id, order_id, ts, amount}, "
                     "layout.date_format, layout.decimal",
        "maps": {"customer_id": "Kunde", "order_id": "Beleg", "ts": "Belegdatum", "amount": "Betrag"},
        "date_format": "%d.%m.%Y", "decimal": ",",
    })


# --------------------------------------------------------------------------
# dialects: the same 30 orders, many ways
# --------------------------------------------------------------------------


def gen_dialects(rng: random.Random, people: list[Person]) -> None:
    # customers with accented names (all representable in CP1252), ids kept as text
    names = ["Chloé Martin", "Jürgen Weiß", "Søren Holm", "Núria Vidal", "Zoë Brandt", "François Lévêque",
             "Åsa Nyström", "Ben Okafor"]
    ids = ["C001", "00417", "C003", "1002", "C005", "C006", "C007", "C008"]
    # timestamps: day-of-month chosen so some are > 12 and some <= 12
    days = [3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 28, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 1, 29, 30]
    months = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 1, 2, 3, 5, 6, 9]
    amounts = [1250, 2990, 499, 123450, 1800, 7525, 305, 4100, 999, 15000, 2200, 650, 3399, 12500, 880,
               -1500, 2750, 1999, 450, 60000, 3125, 1010, 5699, 240, 1875, 9900, 100, 4444, 2599, 7000]
    descs = ["Beans, 1kg", 'Mug "Classic"', "Gift set\nwith card", "Office order\n2nd floor, room 4", "Filters",
             "Grinder", "Sample", "Beans", "Decaf", "Catering \"XL\"", "Beans", "Cups", "Espresso",
             "Wholesale, 5 bags", "Filters", "Refund: broken mug", "Beans", "Gift card", "Sample", "Machine",
             "Beans", "Filters", "Beans\r\nsecond line", "Sticker", "Beans", "Kettle", "Sample", "Beans, ground",
             "Cups", "Beans"]
    orders = []
    for k in range(30):
        ts = dt.datetime(2024, months[k], days[k], 8 + (k * 5) % 11, (k * 13) % 60, tzinfo=UTC)
        ci = (k * 3) % len(ids)
        orders.append(dict(customer_id=ids[ci], customer_name=names[ci], order_id=str(1001 + k), ts=ts,
                           amount=amounts[k], description=descs[k]))
    offsets = ["+01:00", "Z", "-05:00", "+05:30", "+02:00", "-08:00", "+00:00", "+09:00"]

    def iso_tz(t: dt.datetime, k: int) -> str:
        off = offsets[k % len(offsets)]
        if off == "Z":
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        sign = 1 if off[0] == "+" else -1
        hh, mm = int(off[1:3]), int(off[4:6])
        local = t.astimezone(dt.timezone(sign * dt.timedelta(hours=hh, minutes=mm)))
        return local.strftime("%Y-%m-%dT%H:%M:%S") + off

    base_header = ["customer_id", "customer_name", "order_id", "date", "amount"]

    def table(datefmt, amountfmt, with_desc=False):
        h = base_header + (["description"] if with_desc else [])
        rows = [h]
        for k, o in enumerate(orders):
            r = [o["customer_id"], o["customer_name"], o["order_id"], datefmt(o["ts"], k), amountfmt(o["amount"])]
            if with_desc:
                r.append(o["description"])
            rows.append(r)
        return rows

    iso = lambda t, k: t.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    plain = m2
    variants = []  # (rel, bytes, facts)

    def add(rel, data: bytes, **f):
        variants.append((rel, data, f))

    base = csv_text(table(iso, plain))
    add("dialects/orders_utf8.csv", base.encode("utf-8"), encoding="utf-8", bom=False, delimiter=",",
        decimal=".", date_format="%Y-%m-%d %H:%M:%S (UTC)", exercises="baseline: UTF-8, comma, ISO dates")
    add("dialects/orders_utf8_bom.csv", b"\xef\xbb\xbf" + base.encode("utf-8"), encoding="utf-8-sig", bom=True,
        delimiter=",", decimal=".", date_format="%Y-%m-%d %H:%M:%S", exercises="UTF-8 with BOM")
    add("dialects/orders_utf16le_bom.csv", b"\xff\xfe" + csv_text(table(iso, plain), eol="\r\n").encode("utf-16-le"),
        encoding="utf-16-le", bom=True, delimiter=",", decimal=".", line_ending="CRLF",
        date_format="%Y-%m-%d %H:%M:%S", exercises="UTF-16 LE with BOM, CRLF")
    add("dialects/orders_cp1252_semicolon.csv",
        csv_text(table(iso, lambda c: m2_comma(c) + " €"), delim=";", eol="\r\n").encode("cp1252"),
        encoding="cp1252", bom=False, delimiter=";", decimal=",", currency_symbol="€ (byte 0x80)", line_ending="CRLF",
        date_format="%Y-%m-%d %H:%M:%S", exercises="Windows-1252 (Excel 'CSV' on a European PC): accented names, "
                                                   "'12,50 €', ';' delimiter")
    add("dialects/orders_semicolon_decimal_comma.csv",
        csv_text(table(iso, lambda c: m2_comma(c, thousands=True)), delim=";").encode("utf-8"),
        encoding="utf-8", delimiter=";", decimal=",", thousands=".", date_format="%Y-%m-%d %H:%M:%S",
        exercises="';' delimiter, decimal comma and '.' thousands ('1.234,50')")
    add("dialects/orders_tab.tsv", csv_text(table(iso, plain), delim="\t").encode("utf-8"), encoding="utf-8",
        delimiter="\t", decimal=".", date_format="%Y-%m-%d %H:%M:%S", exercises="tab-separated")
    add("dialects/orders_pipe.csv", csv_text(table(iso, plain), delim="|").encode("utf-8"), encoding="utf-8",
        delimiter="|", decimal=".", date_format="%Y-%m-%d %H:%M:%S", exercises="'|'-separated")
    add("dialects/orders_thousands.csv", csv_text(table(iso, lambda c: f"{c / 100:,.2f}")).encode("utf-8"),
        encoding="utf-8", delimiter=",", decimal=".", thousands=",", date_format="%Y-%m-%d %H:%M:%S",
        exercises="thousands separators '1,234.50' (quoted because of the comma)")
    add("dialects/orders_currency_symbols.csv",
        csv_text(table(iso, lambda c: ["$", "USD ", "$ "][abs(c) % 3] + f"{c / 100:,.2f}" if c >= 0 else f"-${-c / 100:,.2f}")).encode("utf-8"),
        encoding="utf-8", delimiter=",", decimal=".", thousands=",", currency_symbol="'$', 'USD ', '$ ', '-$'",
        date_format="%Y-%m-%d %H:%M:%S", exercises="currency symbols and codes in the amount ('$12.50', "
                                                   "'USD 1,234.50', '-$15.00')")
    add("dialects/orders_quoted_newlines.csv", csv_text(table(iso, plain, with_desc=True), eol="\r\n").encode("utf-8"),
        encoding="utf-8", delimiter=",", decimal=".", line_ending="CRLF", date_format="%Y-%m-%d %H:%M:%S",
        extra_columns=["description"],
        exercises="extra 'description' column with quoted embedded newlines (LF and CRLF), commas and doubled quotes",
        records_with_embedded_newlines=[k + 2 for k, o in enumerate(orders) if "\n" in o["description"]])
    add("dialects/orders_dayfirst.csv", csv_text(table(lambda t, k: t.strftime("%d/%m/%Y %H:%M"), plain)).encode("utf-8"),
        encoding="utf-8", delimiter=",", decimal=".", date_format="%d/%m/%Y %H:%M",
        exercises="day-first dates; some rows have day > 12 so the order is decidable, others alone are ambiguous",
        rows_with_day_gt_12=[k + 2 for k, o in enumerate(orders) if o["ts"].day > 12])
    add("dialects/orders_monthfirst.csv", csv_text(table(lambda t, k: t.strftime("%m/%d/%Y %H:%M"), plain)).encode("utf-8"),
        encoding="utf-8", delimiter=",", decimal=".", date_format="%m/%d/%Y %H:%M",
        exercises="month-first (US) dates; some rows have day > 12",
        rows_with_day_gt_12=[k + 2 for k, o in enumerate(orders) if o["ts"].day > 12])
    add("dialects/orders_iso_tz.csv", csv_text(table(iso_tz, plain)).encode("utf-8"), encoding="utf-8",
        delimiter=",", decimal=".", date_format="ISO 8601 with offsets (Z, +01:00, -05:00, +05:30, ...)",
        exercises="ISO timestamps with time-zone offsets; converted to UTC they equal the baseline")
    add("dialects/orders.csv.gz", gzip.compress(base.encode("utf-8"), mtime=0), encoding="utf-8 (gzip)",
        delimiter=",", decimal=".", date_format="%Y-%m-%d %H:%M:%S", exercises="gzip-compressed baseline CSV")

    for rel, data, f in variants:
        write_bytes(rel, data)

    # xlsx: real datetimes and numbers, ids as text
    wb = new_workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(base_header)
    for o in orders:
        ws.append([o["customer_id"], o["customer_name"], o["order_id"], o["ts"].replace(tzinfo=None), o["amount"] / 100])
    for cell in ws["A"][1:] + ws["C"][1:]:
        cell.number_format = "@"
    for cell in ws["D"][1:]:
        cell.number_format = "yyyy-mm-dd hh:mm:ss"
    for cell in ws["E"][1:]:
        cell.number_format = "#,##0.00"
    save_workbook("dialects/orders.xlsx", wb)

    import pyarrow as pa
    import pyarrow.parquet as pq

    tbl = pa.table({
        "customer_id": pa.array([o["customer_id"] for o in orders], pa.string()),
        "customer_name": pa.array([o["customer_name"] for o in orders], pa.string()),
        "order_id": pa.array([o["order_id"] for o in orders], pa.string()),
        "date": pa.array([o["ts"] for o in orders], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([decimal.Decimal(m2(o["amount"])) for o in orders], pa.decimal128(12, 2)),
    })
    buf = io.BytesIO()
    pq.write_table(tbl, buf, compression="snappy")
    write_bytes("dialects/orders.parquet", buf.getvalue())

    expected = [{"customer_id": o["customer_id"], "customer_name": o["customer_name"], "order_id": o["order_id"],
                 "ts_utc": utc_iso(o["ts"]), "amount": m2(o["amount"])} for o in orders]
    common = {
        "layout": "generic orders table (customer_id, customer_name, order_id, date, amount)",
        "data_rows": 30, "distinct_orders": 30, "distinct_customers": len({o["customer_id"] for o in orders}),
        "same_logical_rows_as": "_dialects_expected_orders",
        "net_revenue": m2(sum(o["amount"] for o in orders)),
        "net_revenue_rule": "sum of amount (one order, 1016, is a negative refund of -15.00)",
        "negative_amount_rows": [k + 2 for k, o in enumerate(orders) if o["amount"] < 0],
        "customer_ids_that_look_numeric": ["00417", "1002"],
    }
    for rel, data, f in variants:
        register(rel, {**common, **{"layout": common["layout"]}, **f})
    register("dialects/orders.xlsx", {**common, "exercises": "Excel workbook (sheet 'Orders'): real datetimes, "
                                      "numeric amounts, ids stored as text cells", "sheets": {"Orders": 30}})
    register("dialects/orders.parquet", {**common, "exercises": "Parquet: date as timestamp[us, UTC], amount "
                                         "decimal(12,2), ids as strings"})
    FACTS["_dialects_expected_orders"] = {
        "note": "the 30 logical orders every dialects/ file holds (ts_utc = the instant in UTC; "
                "naive timestamps in the files are UTC)",
        "rows": expected,
    }


# --------------------------------------------------------------------------
# broken inputs
# --------------------------------------------------------------------------


def tiny_png() -> bytes:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    # a 1 x 4 pixel RGB image: each scanline is a filter byte + one pixel
    raw = b"".join(b"\x00" + bytes([y * 60, 120, 200 - y * 40]) for y in range(4))
    ihdr = struct.pack(">IIBBBBB", 1, 4, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def gen_broken(rng: random.Random) -> None:
    H = "customer_id,order_id,date,amount"

    def good(k, cust=None, day=None):
        return f"{cust or f'C{k:03d}'},{5000 + k},{day or f'2024-03-{(k % 27) + 1:02d}'},{10 + k}.50"

    def body(n, start=1):
        return [good(k) for k in range(start, start + n)]

    def reg(rel, data: bytes, expect: str, problem: str, **f):
        write_bytes(rel, data)
        register(rel, {"layout": "broken", "expect": expect, "exercises": problem, **f})

    reg("broken/empty.csv", b"", "file_error", "empty file (0 bytes)", data_rows=0, bytes=0)
    reg("broken/header_only.csv", (H + "\n").encode(), "file_error_or_empty_import",
        "header line only, no data rows", data_rows=0)
    reg("broken/whitespace_only.csv", b"   \n\t\n  \r\n\n", "file_error", "only spaces, tabs and newlines",
        data_rows=0)
    png = tiny_png()
    reg("broken/png_bytes.csv", png, "file_error", "a PNG image saved with a .csv name", data_rows=0,
        bytes=len(png), magic="89 50 4E 47")
    rb = bytes(rng.randrange(256) for _ in range(700))
    reg("broken/random_bytes.csv", rb, "file_error", "700 random bytes named .csv", data_rows=0, bytes=len(rb))
    html = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Log in - Example Shop Admin"
            "</title></head>\n<body>\n<form action=\"/admin/login\" method=\"post\">\n<label>Email <input name=\"email\">"
            "</label>\n<label>Password <input type=\"password\" name=\"password\"></label>\n<button>Log in</button>\n"
            "</form>\n<p>Your session expired, please log in again to download orders_export.csv</p>\n</body>\n</html>\n")
    reg("broken/html_page.csv", html.encode(), "file_error", "an HTML login page saved as .csv (session expired)",
        data_rows=0)
    reg("broken/no_customer_column.csv", ("order_id,date,amount,product\n" + "\n".join(
        f"{5000 + k},2024-03-{k:02d},{10 + k}.50,Beans" for k in range(1, 9)) + "\n").encode(), "file_error",
        "no customer column (only order_id, date, amount, product)", data_rows=8, missing_column="customer_id")
    reg("broken/no_date_column.csv", ("customer_id,order_id,amount\n" + "\n".join(
        f"C{k:03d},{5000 + k},{10 + k}.50" for k in range(1, 9)) + "\n").encode(), "file_error",
        "no date column", data_rows=8, missing_column="date")
    reg("broken/no_amount_column.csv", ("customer_id,order_id,date,product\n" + "\n".join(
        f"C{k:03d},{5000 + k},2024-03-{k:02d},Beans" for k in range(1, 9)) + "\n").encode(), "file_error",
        "no amount column", data_rows=8, missing_column="amount")

    lines = body(10)
    lines[2] = lines[2] + ",EXTRA,MORE"      # row 4: too many fields
    lines[5] = "C006,5006,2024-03-07"         # row 7: too few fields
    lines[7] = "C008,5008"                    # row 9: too few fields
    reg("broken/ragged_rows.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected",
        "rows with too many / too few fields", data_rows=10, valid_rows=7,
        rejects=[{"row": 4, "column": None, "value": lines[2], "reason": "6 fields, header has 4"},
                 {"row": 7, "column": "amount", "value": None, "reason": "3 fields, header has 4"},
                 {"row": 9, "column": "date", "value": None, "reason": "2 fields, header has 4"}])

    lines = body(8)
    lines[3] = 'C004,5004,2024-03-05,"14.50'
    reg("broken/unterminated_quote.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected_or_file_error",
        "a quote opened on row 5 is never closed, so it swallows rows 5-9", physical_lines=9, data_lines=8,
        valid_rows_before_problem=3, unterminated_quote_starts_row=5, column="amount",
        csv_records_if_read_strictly=4,
        note="read by strict CSV rules the file has 4 records: 3 good ones and one whose last field runs to "
             "end of file")

    lines = body(12)
    bad = {3: "abc", 6: "12..5", 9: "1e999", 11: ""}
    for r, v in bad.items():
        c = lines[r - 2].split(",")
        c[3] = v
        lines[r - 2] = ",".join(c)
    reg("broken/bad_amounts.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected",
        "unparseable amounts: 'abc', '12..5', '1e999' (overflows to infinity), empty",
        data_rows=12, valid_rows=12 - len(bad),
        rejects=[{"row": r, "column": "amount", "value": v, "reason": "not a number" if v else "empty amount"}
                 for r, v in sorted(bad.items())])

    lines = body(10)
    huge = {4: "99999999999", 8: "123456789012.34"}
    for r, v in huge.items():
        c = lines[r - 2].split(",")
        c[3] = v
        lines[r - 2] = ",".join(c)
    reg("broken/huge_amounts.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "stored_with_warning_or_rejected",
        "absurdly large amounts (outliers); parseable but suspicious", data_rows=10,
        suspicious=[{"row": r, "column": "amount", "value": v} for r, v in sorted(huge.items())],
        net_revenue_without_outliers=m2(sum(cents(l.split(",")[3]) for i, l in enumerate(lines) if i + 2 not in huge)))

    lines = body(12)
    bd = {3: "31/02/2024", 5: "yesterday", 7: "2024-13-01", 9: "2024-02-30", 11: "0000-00-00", 12: ""}
    for r, v in bd.items():
        c = lines[r - 2].split(",")
        c[2] = v
        lines[r - 2] = ",".join(c)
    reg("broken/bad_dates.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected",
        "unparseable dates: 31/02/2024, 'yesterday', 2024-13-01, 2024-02-30, 0000-00-00, empty",
        data_rows=12, valid_rows=12 - len(bd),
        rejects=[{"row": r, "column": "date", "value": v, "reason": "not a valid date" if v else "empty date"}
                 for r, v in sorted(bd.items())])

    lines = body(10)
    fut = {5: "2099-01-15", 10: "2099-12-31"}
    for r, v in fut.items():
        c = lines[r - 2].split(",")
        c[2] = v
        lines[r - 2] = ",".join(c)
    reg("broken/future_dates.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "stored_with_warning_or_rejected",
        "dates in the year 2099", data_rows=10,
        suspicious=[{"row": r, "column": "date", "value": v} for r, v in sorted(fut.items())])

    amb = [(3, 4), (1, 2), (12, 11), (5, 6), (7, 8), (10, 9), (2, 2), (11, 12), (6, 1), (9, 3), (4, 10), (8, 7)]
    lines = [f"C{k:03d},{5000 + k},{a:02d}/{b:02d}/2024,{10 + k}.50" for k, (a, b) in enumerate(amb, 1)]
    reg("broken/ambiguous_dates.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "needs_date_order",
        "every date has both parts <= 12 (03/04/2024): day-first and month-first are both valid - must be "
        "reported, not guessed", data_rows=12,
        rows_read_differently=[k + 2 for k, (a, b) in enumerate(amb) if a != b],
        range_if_dayfirst=[min(dt.date(2024, b, a) for a, b in amb).isoformat(), max(dt.date(2024, b, a) for a, b in amb).isoformat()],
        range_if_monthfirst=[min(dt.date(2024, a, b) for a, b in amb).isoformat(), max(dt.date(2024, a, b) for a, b in amb).isoformat()])

    mixed = ["13/03/2024", "03/14/2024", "25/04/2024", "04/26/2024", "02/03/2024", "30/05/2024", "06/28/2024",
             "15/07/2024", "07/16/2024", "01/02/2024"]
    lines = [f"C{k:03d},{5000 + k},{d},{10 + k}.50" for k, d in enumerate(mixed, 1)]
    reg("broken/mixed_date_order.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "needs_date_order_or_rows_rejected",
        "day-first and month-first dates mixed in one column", data_rows=10,
        dayfirst_only_rows=[k + 2 for k, d in enumerate(mixed) if int(d[:2]) > 12],
        monthfirst_only_rows=[k + 2 for k, d in enumerate(mixed) if int(d[3:5]) > 12],
        ambiguous_rows=[k + 2 for k, d in enumerate(mixed) if int(d[:2]) <= 12 and int(d[3:5]) <= 12])

    lines = body(10)
    lines[6] = "C002,5002,2024-03-03,29.90"  # row 8 reuses order 5002 (row 3) with another amount
    reg("broken/duplicate_order_ids_conflicting.csv", (H + "\n" + "\n".join(lines) + "\n").encode(),
        "conflict_reported", "the same order_id twice with different amounts", data_rows=10, distinct_orders=9,
        conflicts=[{"order_id": "5002", "rows": [3, 8], "amounts": [lines[1].split(",")[3], "29.90"]}])

    lines = body(10)
    lines.insert(4, lines[1])   # exact copy of row 3 at row 6
    lines.insert(9, lines[6])   # exact copy
    lines.append(lines[1])      # third copy of row 3
    reg("broken/exact_duplicate_rows.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "deduplicated",
        "exact duplicate rows", data_rows=len(lines), distinct_rows=len(set(lines)),
        duplicate_rows=[k + 2 for k, l in enumerate(lines) if l in lines[:k]],
        rows_deduplicated=len(lines) - len(set(lines)))

    lines = body(10)
    for r in (4, 9):
        c = lines[r - 2].split(",")
        c[3] = "-" + c[3]
        lines[r - 2] = ",".join(c)
    reg("broken/negative_amounts_no_refund_marker.csv", (H + "\n" + "\n".join(lines) + "\n").encode(),
        "stored_as_refund_or_flagged", "negative amounts with no refund/status column to explain them",
        data_rows=10, negative_rows=[4, 9], net_revenue=m2(sum(cents(l.split(",")[3]) for l in lines)))

    hdr = "customer_id,customer_name,order_id,date,amount\n"
    rows_b = [f"C{k:03d},Customer {k},{5000 + k},2024-03-{k:02d},{10 + k}.50".encode() for k in range(1, 11)]
    rows_b[4] = b"C005,Ren\xe9e Dupr\xe9,5005,2024-03-05,15.50"
    data = hdr.encode() + b"\n".join(rows_b) + b"\n"
    reg("broken/latin1_byte_in_utf8.csv", data, "rows_rejected_or_decoded_as_cp1252",
        "UTF-8 file with raw Latin-1 bytes (0xE9 'é') on one row - invalid UTF-8 in the middle", data_rows=10,
        bad_bytes=[{"row": 6, "column": "customer_name", "byte": "0xE9", "byte_offset": data.index(b"\xe9")}])

    csv_as_xlsx = (H + "\n" + "\n".join(body(6)) + "\n").encode()
    reg("broken/csv_text_named.xlsx", csv_as_xlsx, "file_error_or_read_as_csv",
        "plain CSV text with an .xlsx name (not a zip)", data_rows=6)
    reg("broken/csv_text_named.parquet", csv_as_xlsx, "file_error_or_read_as_csv",
        "plain CSV text with a .parquet name (no PAR1 magic)", data_rows=6)

    gz = gzip.compress((H + "\n" + "\n".join(body(200)) + "\n").encode(), mtime=0)
    reg("broken/truncated.csv.gz", gz[: len(gz) * 3 // 5], "file_error",
        "gzip stream cut off at 60 % (no end-of-stream marker, no CRC)", complete_rows_in_full_file=200)

    lines = body(10)
    lines[3] = "C0\x0004,5004,2024-03-05,14.50"
    lines[7] = "C008,5008,2024-03-09,18.50\x00"
    reg("broken/null_bytes.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected",
        "NUL bytes inside fields", data_rows=10,
        valid_rows=8,
        rejects=[{"row": 5, "column": "customer_id", "value": "C0\\x0004", "reason": "NUL byte"},
                 {"row": 9, "column": "amount", "value": "18.50\\x00", "reason": "NUL byte"}])

    lines = body(12)
    for r, v in ((3, ""), (7, "   "), (11, '""')):
        c = lines[r - 2].split(",")
        c[0] = v
        lines[r - 2] = ",".join(c)
    reg("broken/empty_customer_ids.csv", (H + "\n" + "\n".join(lines) + "\n").encode(), "rows_rejected",
        "empty customer id on some rows (empty, spaces only, quoted empty)", data_rows=12, valid_rows=9,
        rejects=[{"row": r, "column": "customer_id", "value": v, "reason": "missing customer id"}
                 for r, v in ((3, ""), (7, "   "), (11, ""))])

    reg("broken/duplicate_header_columns.csv",
        ("customer_id,order_id,date,amount,amount\n" + "\n".join(f"{good(k)},{k}.00" for k in range(1, 7)) + "\n").encode(),
        "file_error", "two columns named 'amount' - which one is revenue?", data_rows=6, duplicated_column="amount")

    pre = "Sales report\nPeriod: 01.03.2024 - 31.03.2024\n\n" + H + "\n" + "\n".join(body(8)) + "\n"
    reg("broken/preamble_lines.csv", pre.encode(), "header_found_or_file_error",
        "three report-title lines before the real header (header on line 4)", header_line=4, data_rows=8,
        first_data_row=5)

    wb = new_workbook()
    wb.active.title = "Sheet1"
    save_workbook("broken/empty_workbook.xlsx", wb)
    register("broken/empty_workbook.xlsx", {"layout": "broken", "expect": "file_error",
                                            "exercises": "a valid .xlsx whose only sheet is empty", "data_rows": 0})


# --------------------------------------------------------------------------
# self-check: re-read the written files and compare with the facts
# --------------------------------------------------------------------------


def read_csv(rel: str, encoding="utf-8", delimiter=","):
    with open(ROOT / rel, newline="", encoding=encoding) as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def selfcheck() -> None:
    d = lambda s: cents(s)  # noqa: E731
    # Shopify
    rows = read_csv("layouts/shopify_orders_export.csv")
    h = rows[0]
    assert len(h) == 79 and len(rows) - 1 == FACTS["layouts/shopify_orders_export.csv"]["data_rows"]
    ix = {c: i for i, c in enumerate(h)}
    rev = 0
    for r in rows[1:]:
        if r[ix["Financial Status"]] in ("paid", "partially_refunded", "refunded") and not r[ix["Cancelled at"]]:
            rev += d(r[ix["Total"]]) - d(r[ix["Refunded Amount"]])
    assert m2(rev) == FACTS["layouts/shopify_orders_export.csv"]["net_revenue"], m2(rev)
    # Woo analytics
    text = (ROOT / "layouts/woocommerce_analytics_orders.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    f = FACTS["layouts/woocommerce_analytics_orders.csv"]
    assert len(rows) - 1 == f["data_rows"]
    assert m2(sum(d(r[8]) for r in rows[1:] if r[2] in WOO_REVENUE_STATUSES)) == f["net_revenue"]
    # WebToffee (columns reordered: look up by name)
    rows = read_csv("layouts/woocommerce_webtoffee_orders.csv")
    ix = {c: i for i, c in enumerate(rows[0])}
    rev = 0
    for r in rows[1:]:
        if r[ix["status"]] in WOO_REVENUE_STATUSES:
            refunds = sum(d(p.split("|")[0].split(":")[1]) for p in r[ix["refund_items"]].split(";") if p)
            rev += d(r[ix["order_total"]]) - refunds
    assert m2(rev) == FACTS["layouts/woocommerce_webtoffee_orders.csv"]["net_revenue"]
    assert rows[0][0] != "order_id"
    # SkyVerge
    rows = read_csv("layouts/woocommerce_skyverge_orders.csv")
    ix = {c: i for i, c in enumerate(rows[0])}
    rev = sum(d(r[ix["order_total"]]) - d(r[ix["refunded_total"]]) for r in rows[1:] if r[ix["status"]] in WOO_REVENUE_STATUSES)
    assert m2(rev) == FACTS["layouts/woocommerce_skyverge_orders.csv"]["net_revenue"]
    # Square
    money = lambda s: d(s.replace("$", "").replace(",", ""))  # noqa: E731
    for rel in ("layouts/square_transactions.csv", "layouts/square_item_details.csv"):
        rows = read_csv(rel)
        ix = {c: i for i, c in enumerate(rows[0])}
        assert len(rows) - 1 == FACTS[rel]["data_rows"]
        assert m2(sum(money(r[ix["Net Sales"]]) for r in rows[1:])) == FACTS[rel]["net_revenue"]
    assert FACTS["layouts/square_transactions.csv"]["net_revenue"] == FACTS["layouts/square_item_details.csv"]["net_revenue"]
    # Stripe
    rows = read_csv("layouts/stripe_payments.csv")
    ix = {c: i for i, c in enumerate(rows[0])}
    rev = sum(d(r[ix["Amount"]]) - d(r[ix["Amount Refunded"]] or "0") for r in rows[1:] if r[ix["Status"]] in ("Paid", "Refunded"))
    assert m2(rev) == FACTS["layouts/stripe_payments.csv"]["net_revenue"]
    # Online Retail (xlsx + csv)
    import openpyxl

    wb = openpyxl.load_workbook(ROOT / "layouts/online_retail.xlsx")
    ws = wb["Online Retail"]
    vals = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(vals) == FACTS["layouts/online_retail.xlsx"]["data_rows"]
    assert isinstance(vals[0][4], dt.datetime)
    rev = sum(round(q * p * 100) for _, code, _, q, _, p, _, _ in vals if str(code) not in NON_PRODUCT)
    assert m2(rev) == FACTS["layouts/online_retail.xlsx"]["net_revenue"]
    wb2 = openpyxl.load_workbook(ROOT / "layouts/online_retail_II.xlsx")
    assert wb2.sheetnames == ["Year 2009-2010", "Year 2010-2011"]
    n2 = sum(ws.max_row - 1 for ws in wb2.worksheets)
    assert n2 == FACTS["layouts/online_retail_II.xlsx"]["data_rows"]
    rows = read_csv("layouts/online_retail_II.csv")
    assert len(rows) - 1 == n2 == FACTS["layouts/online_retail_II.csv"]["data_rows"]
    # CDNOW
    lines = (ROOT / "layouts/cdnow_master_with_header.txt").read_bytes().split(b"\r\n")
    assert lines[-1] == b"" and len(lines) - 2 == FACTS["layouts/cdnow_master_with_header.txt"]["data_rows"]
    # generic
    rows = read_csv("layouts/generic_with_mapping.csv", delimiter=";")
    tot = sum(d(r[3].replace(" €", "").replace(".", "").replace(",", ".")) for r in rows[1:])
    assert m2(tot) == FACTS["layouts/generic_with_mapping.csv"]["net_revenue"]
    # dialects: all text variants decode to the same 30 rows
    exp = FACTS["_dialects_expected_orders"]["rows"]
    for rel, f in FACTS.items():
        if not rel.startswith("dialects/") or rel.endswith((".xlsx", ".parquet")):
            continue
        raw = (ROOT / rel).read_bytes()
        if rel.endswith(".gz"):
            raw = gzip.decompress(raw)
        enc = {"utf-16-le": "utf-16", "cp1252": "cp1252", "utf-8-sig": "utf-8-sig"}.get(f["encoding"], "utf-8")
        delim = f["delimiter"]
        rows = list(csv.reader(io.StringIO(raw.decode(enc), newline=""), delimiter=delim))
        assert len(rows) == 31, (rel, len(rows))
        assert [r[0] for r in rows[1:]] == [e["customer_id"] for e in exp], rel
        assert [r[1] for r in rows[1:]] == [e["customer_name"] for e in exp], rel
    import pyarrow.parquet as pq

    t = pq.read_table(ROOT / "dialects/orders.parquet")
    assert t.num_rows == 30
    # every written file has facts
    for rel in WRITTEN:
        assert rel in FACTS, rel


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------

README_HEAD = """# Test input files (`tests/data/`)

Small, real-shaped inputs for the importer (issue 3): one file per export
layout, the same orders in many file dialects, and broken files.  **All of it
is generated** by [`make_test_data.py`](make_test_data.py) with a fixed seed
(`python tests/data/make_test_data.py` with the project installed - it needs
openpyxl and pyarrow; byte-identical on every run).  The
people, e-mails (example.com / example.org), addresses, phone numbers
(555-01xx), IPs (192.0.2.x) and ids are invented.  Real exports published by
others are *not* here: tests use them from `../shared/corpus/`.

## Conventions used in the facts

* **Row numbers are spreadsheet rows**: the header is row 1, the first data
  row is row 2.  For the `.xlsx` files with several sheets, row numbers are
  per sheet.  A record with an embedded newline still counts as one row.
* **`data_rows`** = records after the header (CSV records, not physical lines).
* **Money** is given as a decimal string in the file's currency (`"1234.50"`).
* **`net_revenue`** is the revenue the importer should end up with under the
  rule stated next to it (`net_revenue_rule`); in short: only paid / completed
  orders count, refunds are subtracted, cancelled / failed / pending / voided
  are not revenue, non-product lines (postage, fees, bank charges) are not
  product revenue.
* **Timestamps**: naive timestamps are in the shop's local time where the
  export says so (`timezone`), otherwise UTC.  In `dialects/` every naive
  timestamp is UTC and the tz-aware variant converts to the same instants.
* `customer_key` says which column identifies a customer in that layout.
* In `broken/`, `expect` names the outcome we intend: `file_error` (a clear
  whole-file error naming the file), `rows_rejected` (the listed rows go to the
  rejects file with row, column, value and reason; the rest is stored),
  `deduplicated`, `needs_date_order` (ambiguity reported, never guessed) and so
  on.  Either way `rows_in == rows_stored + rows_rejected + rows_deduplicated`.

`facts.json` holds the same facts, keyed by the path relative to this
directory (plus `_dialects_expected_orders`: the 30 logical orders every
`dialects/` file contains).

## The mapping file (`layouts/generic_mapping.yaml`)

```yaml
layout:
  name: generic_de_kasse        # a label, shown in messages and the import log
  columns:                      # canonical column -> header in the source file
    customer_id: Kunde
    order_id: Beleg
    ts: Belegdatum
    amount: Betrag
  date_format: "%d.%m.%Y"       # strptime format of the ts column (31.12.2024)
  decimal: ","                  # decimal separator; "1.234,50 €" -> 1234.50
```

It says: the customer is in column `Kunde`, the order (receipt) number in
`Beleg`, the date in `Belegdatum` written day.month.year, and the amount in
`Betrag` with a decimal comma (so `.` is the thousands separator; the `€`
sign and spaces are ignored).  Other columns (`Artikel`, `Filiale`) are kept
as attributes.  The `;` delimiter is detected, not configured.

## Files
"""

README_SOURCES = """
## Where the headers come from

Headers and value formats were taken from these public sources (looked up with
the project's search tool); nothing was copied from them except header names:

* **Shopify orders** - the 79-column header of
  `../shared/corpus/shopify_orders_export__devstore_ramkumar03ace.csv` (a real
  development-store export, see `../shared/corpus/SOURCES.md`), including which
  columns repeat on every line-item row.  Financial statuses: Shopify Admin API
  enum (paid, pending, partially_refunded, refunded, voided, authorized,
  partially_paid).  Leading-apostrophe zip: `shopify_orders_export__column_subset_panalysis.csv`.
* **Shopify customers** - the 20-column header as quoted in
  github.com/buttondown/roadmap issue #2700 ("Autodetect subscriber imports from
  Shopify") and a real customers_export.csv in
  github.com/thecyclingcompany/tourdelcafe-web (apostrophe-prefixed Customer ID
  and phones, `yes`/`no`, quoted tag lists; newer exports append
  `Accepts WhatsApp Marketing` and metafield columns).
* **WooCommerce Analytics > Orders** - woocommerce/woocommerce
  `plugins/woocommerce/client/admin/client/analytics/report/orders/table.js`
  (column labels and the row values that the browser download writes),
  `packages/js/csv-export/src/index.ts` (quoting rules, no final newline), and
  `src/Admin/API/Reports/Orders/DataStore.php` / `Controller.php` (status
  without `wc-`, `new`/`returning`, `1× Product` lists, refunds as rows with the
  parent's order number; the emailed server-side export adds `N. Revenue
  (formatted)` and says `Net Sales`).
* **WebToffee Order Export & Import for WooCommerce** - the plugin source
  (`admin/modules/order/data/data-order-post-columns.php` and
  `admin/modules/order/export/export.php`, as vendored in github.com/wruw/telethon):
  column keys, `line_item_N` = `name:..|product_id:..|sku:..|quantity:..|total:..|sub_total:..`,
  `refund_items` = `amount:..|reason:..|date:..`, `paid_date` as WC_DateTime string.
* **SkyVerge WooCommerce Customer/Order/Coupon Export** - the plugin's
  predefined format definitions (v5): the "Default" orders format is one row
  per order with a `line_items` column (the "Default - One Row per Item"
  format is a separate choice); generator code for `order_number` (empty
  without a sequential-numbers plugin) and the pipe-delimited items.
* **Square** - Item Sales Detail header and value formats from a real 2026
  export (github.com/zoetankersley/sunrise_social_club `data/raw/items-*.csv`:
  ISO `Date`, `HH:MM:SS`, `Eastern Time (US & Canada)`, `Qty` `1.0`, `$8.00`,
  `""` empties); 55-column Transactions header as written in
  github.com/aditya2kx/jarvis `skills/square_api/export.py` ("verbatim dashboard
  export order", `$X.YZ` / `-$X.YZ`) and in a PHP reconciliation script, with a
  2018 export (github.com/rwslippey/square_transaction_parser) showing the older
  `MM/DD/YYYY` dates.
* **Stripe** - the 23-column `unified_payments.csv` layout of
  `../shared/corpus/stripe_unified_payments__meedi8.csv` (real export; also the
  empty-`id` `requires_payment_method` rows).
* **UCI Online Retail / Online Retail II** - column names as in the corpus files
  and the UCI data set description; sheet names `Year 2009-2010` and
  `Year 2010-2011`; the overlapping first days of December 2010; non-product
  stock codes (POST, D, M, BANK CHARGES, AMAZONFEE, DOT, B with `A` invoices).
* **CDNOW** - header line of `lifetimes/datasets/CDNOW_master.txt`
  (github.com/CamDavidsonPilon/lifetimes) and the fixed-width row format of
  `../shared/corpus/cdnow_master__headerless_head__zhuc5.txt`.

## What is uncertain about the real layouts

* Square Transactions: one column is `Tender Note` in the 55-column header
  (jarvis, PHP script) but `Other Tender Note` in older/other copies; the date
  format has changed over time (`2024-03-05` now, `03/05/2024` in 2017-2018
  files).  How refunds appear (separate `Refund` rows with negative amounts and
  the original Transaction ID vs. the `Partial Refunds` column), the sign of
  `Qty` on refund item rows (here positive, money negative), and the `Card
  Entry Methods` wording are from third-party code, not a verified export.
* Stripe: whether a partially refunded charge is exported as `Paid` (used here)
  or with a separate status; whether amounts >= 1000 carry thousands
  separators (none here).
* WooCommerce Analytics: the `Date` cell is the raw database value; rows of
  unpaid orders only appear when the analytics "Date type" is *date created*
  and the default excluded statuses (pending, failed, cancelled) are cleared -
  this file assumes both.  `Attribution` wording varies by version.
* WebToffee: the header row uses the column keys unless the user renames them
  in the mapping step; more `meta:` columns appear with other plugins.
* SkyVerge: the exact key order inside the pipe-delimited `refunds` entries.
* Shopify customers: `Total Orders` here counts all of a customer's orders
  (incl. cancelled and pending) - Shopify's exact rule is not documented.
"""


def write_readme() -> None:
    def summary(f: dict) -> str:
        keys = ["data_rows", "distinct_orders", "distinct_customers", "net_revenue", "currency", "expect",
                "refund_rows", "cancelled_orders", "fully_refunded_orders", "partially_refunded_orders",
                "status_counts", "financial_status_counts", "rows_without_customer_id", "rows_without_customer",
                "rows_without_email", "missing_customer_rows", "cancellation_rows", "non_product_rows",
                "stock_adjustment_rows", "orphan_item_rows", "orders_without_items", "rejects", "suspicious",
                "rows_duplicated_across_sheets", "exact_duplicate_rows", "sheets", "duplicate_rows",
                "conflicts", "negative_rows", "negative_amount_rows", "bad_bytes", "failed_rows",
                "requires_payment_method_rows", "guest_orders", "orders_with_unknown_customer"]
        parts = []
        for k in keys:
            if k not in f or f[k] in (None, [], {}):
                continue
            v = f[k]
            if k == "rejects":
                v = "; ".join(f"row {r['row']} {r['column']}={r['value']!r}" for r in v)
            elif k == "non_product_rows":
                v = ", ".join(f"{c}: {rows}" for c, rows in v.items())
            elif isinstance(v, (list, dict)):
                v = json.dumps(v, ensure_ascii=False)
            parts.append(f"{k}={v}")
        return "; ".join(parts).replace("|", "\\|")

    out = [README_HEAD, "| path | layout | exercises | facts (full list in facts.json) |", "|---|---|---|---|"]
    for rel, f in FACTS.items():
        if rel.startswith("_"):
            continue
        ex = f.get("exercises", "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{rel}` | {f.get('layout', '')} | {ex} | {summary(f)} |")
    out.append(README_SOURCES)
    write_text("README.md", "\n".join(out) + "\n")


def main() -> None:
    people = make_people(random.Random(SEED + 1))
    gen_shopify(random.Random(SEED + 2), people)
    gen_woo_analytics(random.Random(SEED + 3), people)
    gen_webtoffee(random.Random(SEED + 4), people)
    gen_skyverge(random.Random(SEED + 5), people)
    gen_square(random.Random(SEED + 6), people)
    gen_stripe(random.Random(SEED + 7), people)
    gen_online_retail(random.Random(SEED + 8))
    gen_cdnow(random.Random(SEED + 9))
    gen_split(random.Random(SEED + 10), people)
    gen_generic(random.Random(SEED + 11))
    gen_dialects(random.Random(SEED + 12), people)
    gen_broken(random.Random(SEED + 13))
    selfcheck()
    FACTS_OUT = OrderedDict([("_generator", {"script": "make_test_data.py", "seed": SEED,
                                             "row_numbers": "spreadsheet rows: header = 1, first data row = 2"})])
    FACTS_OUT.update(FACTS)
    write_text("facts.json", json.dumps(FACTS_OUT, indent=1, ensure_ascii=False, default=str) + "\n")
    write_readme()
    print(f"wrote {len(WRITTEN)} files under {ROOT}")


if __name__ == "__main__":
    main()
