"""Rule segments: validation messages, injection safety, batch == per-customer, windows by hand.

Backends are real: an in-memory DuckDB (``evaluate``), a DuckDB store file and a PostgreSQL
store (the ``store`` fixture of tests/conftest.py, once per backend).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clientfolio.core.errors import ClientfolioError
from clientfolio.segments.rules import RuleError, RuleSet, load_rules

DATA = Path(__file__).parent / "data"
AS_OF = dt.date(2024, 6, 30)
SCHEMA = {
    "clv": "number", "p_alive": "number", "orders": "number", "region": "string", "email": "string",
    "last_purchase": "date", "first_seen": "date", "consent_marketing": "bool",
}
OPS = {  # the documented operators per type (README)
    "number": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null"],
    "string": ["eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "is_null"],
    "bool": ["is", "eq", "ne", "is_null"],
    "date": ["before", "after", "eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null"],
}
WINDOW_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in"]


# ----------------------------------------------------------------------------- helpers

def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _py(x):
    if x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and np.isnan(x)):
        return None
    if isinstance(x, pd.Timestamp):
        return x.to_pydatetime()
    return x.item() if isinstance(x, np.generic) else x


SQL_TYPES = {"number": "DOUBLE PRECISION", "string": "VARCHAR", "bool": "BOOLEAN", "date": "TIMESTAMP"}


def create_table(store, name: str, df: pd.DataFrame, types: dict[str, str]) -> None:
    """A table `name` with df's rows, columns typed by `types` (names quoted: they may be hostile)."""
    defs = ", ".join(f"{q(c)} {SQL_TYPES[types[c]]}" for c in df.columns)
    _write(store, f"CREATE TABLE {q(name)} ({defs})", name, df)


def insert_rows(store, name: str, df: pd.DataFrame) -> None:
    _write(store, None, name, df)


def _write(store, ddl: str | None, name: str, df: pd.DataFrame) -> None:
    cols = ", ".join(q(c) for c in df.columns)
    rows = [tuple(_py(v) for v in r) for r in df.itertuples(index=False, name=None)]
    if store.kind == "duckdb":
        if ddl:
            store.con.execute(ddl)
        store.con.register("rules_test_rows", df)
        store.con.execute(f"INSERT INTO {q(name)} ({cols}) SELECT {cols} FROM rules_test_rows")
        store.con.unregister("rules_test_rows")
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as c:
        if ddl:
            c.execute(ddl)
        with c.cursor() as cur, cur.copy(f"COPY {q(name)} ({cols}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)


def canonical_transactions(tx: pd.DataFrame) -> pd.DataFrame:
    """tx as rows of the store's canonical transactions table."""
    return pd.DataFrame({
        "source": "test", "order_id": tx["order_id"], "line_key": [str(i) for i in range(len(tx))],
        "customer_id": tx["customer_id"], "ts": tx["ts"], "amount": tx["amount"], "is_refund": tx["is_refund"],
        "row_hash": "h", "import_id": 1,
    })


def pairs(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["customer_id"].astype(str), df["segment"].astype(str)))


def per_customer(rs: RuleSet, feats: pd.DataFrame, tx: pd.DataFrame | None, as_of=AS_OF) -> set[tuple[str, str]]:
    by: dict[str, list[dict]] = {}
    for r in [] if tx is None else tx.to_dict("records"):
        by.setdefault(r["customer_id"], []).append(r)
    out = set()
    for row in feats.to_dict("records"):
        for name in rs.evaluate_one(row, by.get(row["customer_id"], []), as_of=as_of):
            out.add((row["customer_id"], name))
    return out


# ----------------------------------------------------------------------------- validation

def _one(when, name="VIP at risk", schema=SCHEMA):
    return RuleSet.from_dict({"segments": [{"name": name, "when": when}]}, schema=schema)


VALIDATION = [
    ({"all": [{"field": "clv", "gt": 500}, {"field": "p_alive", "lt": 0.5},
              {"not": {"field": "regoin", "in": ["north", "south"]}}]},
     ["segment 'VIP at risk', when.all[2].not: unknown field 'regoin' (did you mean 'region'?)",
      "known fields: clv, consent_marketing, email"]),
    ({"field": "clv", "gt": "500"},
     ["segment 'VIP at risk', when: gt on number field 'clv' needs a number, got the string '500'",
      "(write 500 without quotes)"]),
    ({"any": [{"field": "region", "gt": 5}]},
     ["when.any[0]: 'gt' does not apply to string field 'region'", "use eq, ne, in, not_in, contains"]),
    ({"all": [{"field": "clv", "gtt": 5}]}, ["when.all[0]: unknown operator 'gtt' (did you mean 'gt'?)"]),
    ({"all": []}, ["segment 'VIP at risk', when.all: all needs a non-empty list of conditions"]),
    ({"all": [{"field": "clv", "gt": 1}, {"any": []}]}, ["when.all[1].any: any needs a non-empty list"]),
    ({"all": [{"orders_in_last": "30 dayz", "gte": 2}]},
     ["when.all[0]: bad window '30 dayz' for orders_in_last: write e.g. '30 days', '8 weeks' or '3 months'"]),
    ({"spend_in_last": 90, "gt": 1}, ["when: spend_in_last needs a time window text, got the number 90"]),
    ({"field": "clv", "gt": 1, "lt": 5}, ["when: two operators ('gt', 'lt') in one condition", "between"]),
    ({"field": "region", "eq": False},
     ["eq on string field 'region' needs a string, got the boolean false (YAML reads unquoted yes/no"]),
    ({"field": "clv", "between": [10, 5]}, ["when: between on number field 'clv' has its low bound 10 above"]),
    ({"field": "last_purchase", "before": "last tuesday"},
     ["before on date field 'last_purchase' needs a date, got the string 'last tuesday'", "'60 days ago'"]),
    ({"field": "consent_marketing", "is": "true"}, ["needs true or false, got the string 'true' (write true"]),
    ({"orders_in_last": "30 days", "is_null": True}, ["'is_null' does not apply to orders_in_last"]),
    ({"field": "email", "contains": ""}, ["contains on string field 'email' needs a non-empty string"]),
    ({"field": "region", "in": []}, ["in on string field 'region' needs a non-empty list of values"]),
    ({"field": "clv", "gt": 1, "not": {"field": "clv", "lt": 2}}, ["'not' cannot share a mapping with 'field', 'gt'"]),
    ({"clv": 5}, ["unknown operator 'clv'", "needs exactly one of field, orders_in_last, spend_in_last"]),
    ({"field": "clv"}, ["when: the condition on 'clv' has no operator"]),
    ({"field": "email", "eq": "a\x00b"}, ["needs a value without the NUL character"]),
    ({"field": "clv", "eq": None}, ["needs a single value, got nothing (null); to test for a missing value use is_null"]),
]


@pytest.mark.parametrize(("when", "expected"), VALIDATION, ids=[f"v{i}" for i in range(len(VALIDATION))])
def test_validation_messages_point_at_segment_path_and_fix(when, expected):
    with pytest.raises(RuleError) as info:
        _one(when)
    for text in expected:
        assert text in str(info.value), str(info.value)
    assert isinstance(info.value, ClientfolioError)
    assert info.value.segment == "VIP at risk"


def test_segment_and_document_level_problems():
    doc = {"segments": [{"name": "A", "whenn": {"field": "clv", "gt": 1}},
                        {"when": {"field": "clv", "gt": 1}},
                        {"name": "B", "when": {"field": "clv", "gt": 1}},
                        {"name": "B", "when": {"field": "clv", "lt": 1}}],
           "exclusiv": True}
    with pytest.raises(RuleError) as info:
        RuleSet.from_dict(doc, schema=SCHEMA)
    text = str(info.value)
    assert "unknown top-level key 'exclusiv' (did you mean 'exclusive'?)" in text
    assert "segment 'A', segments[0]: unknown key 'whenn' (did you mean 'when'?)" in text
    assert "segments[1]: needs a 'name'" in text
    assert "segment 'B', segments[3]: the name is used by an earlier segment" in text
    assert len(info.value.problems) == 5  # 'A' also lacks a when


def test_rule_file_errors_name_the_file_and_every_problem():
    with pytest.raises(RuleError) as info:
        load_rules(DATA / "broken.yaml", schema=SCHEMA)
    text = str(info.value)
    assert text.startswith(f"{DATA / 'broken.yaml'}: 5 problems in the rules:")
    for part in ["segment 'VIP at risk', when.all[0]: gt on number field 'clv' needs a number",
                 "segment 'VIP at risk', when.all[1]: two operators ('lt', 'gt')",
                 "segment 'VIP at risk', when.all[2].not: unknown field 'regoin' (did you mean 'region'?)",
                 "segment 'VIP at risk', when.all[3]: bad window '30 dayz'",
                 "segment 'Empty', when.any: any needs a non-empty list"]:
        assert part in text


def test_yaml_and_json_syntax_errors_and_duplicate_keys():
    with pytest.raises(RuleError, match=r"line 3, column \d+: invalid YAML: duplicate key 'gt'"):
        RuleSet.from_yaml("segments:\n  - name: a\n    when: {field: clv, gt: 1, gt: 2}\n", schema=SCHEMA)
    with pytest.raises(RuleError, match="duplicate key 'gt'"):
        RuleSet.from_yaml('{"segments": [{"name": "a", "when": {"field": "clv", "gt": 1, "gt": 2}}]}', schema=SCHEMA)
    with pytest.raises(RuleError, match="line 1, column .*invalid JSON"):
        RuleSet.from_yaml('{"segments": [', schema=SCHEMA)
    with pytest.raises(RuleError, match="invalid YAML"):
        RuleSet.from_yaml("segments: [\n  - {", schema=SCHEMA)
    with pytest.raises(RuleError, match="a rule document is a mapping with a 'segments' list"):
        RuleSet.from_yaml("- just a list", schema=SCHEMA)


def test_load_from_path_text_json_and_dict_gives_the_same_query(tmp_path):
    from_path = load_rules(DATA / "vip.yaml", schema=SCHEMA)
    text = (DATA / "vip.yaml").read_text()
    import yaml

    doc = yaml.safe_load(text)
    as_json = json.dumps(doc, default=str)
    variants = [load_rules(str(DATA / "vip.yaml"), schema=SCHEMA), RuleSet.from_yaml(text, schema=SCHEMA),
                RuleSet.from_json(as_json, schema=SCHEMA), load_rules(doc, schema=SCHEMA)]
    expected = from_path.compile(as_of=AS_OF)
    for rs in variants:
        assert rs.names == ["VIP at risk", "Lapsed north"]
        sql, params = rs.compile(as_of=AS_OF)
        assert sql == expected[0]
        assert [str(p) for p in params] == [str(p) for p in expected[1]]


def test_schema_from_dataframe_and_missing_schema():
    feats, _ = make_data(30, seed=1)
    rs = load_rules(DATA / "vip.yaml", schema=feats)
    assert rs.schema["last_purchase"] == "date" and rs.schema["consent_marketing"] == "bool"
    assert rs.schema["region"] == "string" and rs.schema["clv"] == "number"
    bare = load_rules(DATA / "vip.yaml")  # structure checked, fields not yet
    with pytest.raises(RuleError, match="compile needs the field types"):
        bare.compile()
    with pytest.raises(RuleError, match="unknown field 'clv'"):
        bare.with_schema({"clv_typo": "number"})
    with pytest.raises(RuleError, match="field 'x' has type 'money'; use one of number, string, bool, date"):
        bare.with_schema({"x": "money"})


def test_compiled_placeholders_match_params():
    rs = load_rules(DATA / "vip.yaml", schema=SCHEMA)
    sql, params = rs.compile("duckdb", as_of=AS_OF)
    assert sql.count("?") == len(params) and "%s" not in sql
    sql, params = rs.compile("postgresql", as_of=AS_OF, features_table="analytics.features")
    assert sql.count("%s") == len(params) and "?" not in sql
    assert 'FROM "analytics"."features" AS f' in sql
    with pytest.raises(RuleError, match="dialect must be"):
        rs.compile("mysql")


# ----------------------------------------------------------------------------- realistic data

REGIONS = ["north", "south", "east", "west", "Nord-Ost", "MÜNCHEN", "münchen", "İzmir", None]
NAMES = ["anna", "Élodie", "o'brien", "ZOË", "İsmail", "bob", "x'; DROP TABLE canary; --", "mëlanie", "ΣΟΦΙΑ"]
DOMAINS = ["example.com", "EXAMPLE.COM", "gmail.com", "shop.de", "Ünï.org"]


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """n customers with NULLs, dates, strings, booleans, and their transactions (amounts exact in binary)."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:05d}" for i in range(n)]

    def holes(values, share):
        return [None if rng.random() < share else v for v in values]

    base = pd.Timestamp("2023-01-01")
    feats = pd.DataFrame({
        "customer_id": ids,
        "clv": pd.array(holes(np.round(rng.lognormal(5, 1.2, n), 2).tolist(), 0.1), dtype="Float64").astype("float64"),
        "p_alive": pd.array(holes(np.round(rng.uniform(0, 1, n), 3).tolist(), 0.05), dtype="Float64").astype("float64"),
        "orders": rng.poisson(3, n).astype("int64"),
        "region": pd.array(holes([REGIONS[i] for i in rng.integers(0, len(REGIONS), n)], 0.05), dtype="string"),
        "email": pd.array(holes([f"{NAMES[a]}{i}@{DOMAINS[b]}" for i, (a, b) in
                                 enumerate(zip(rng.integers(0, len(NAMES), n), rng.integers(0, len(DOMAINS), n)))], 0.1),
                          dtype="string"),
        "last_purchase": pd.to_datetime(holes([base + pd.Timedelta(seconds=int(s)) for s in
                                               rng.integers(0, 560 * 86400, n)], 0.1)),
        "first_seen": pd.to_datetime(holes([base - pd.Timedelta(days=int(d)) for d in rng.integers(0, 900, n)], 0.1)),
        "consent_marketing": pd.array(holes(rng.random(n) < 0.6, 0.15), dtype="boolean"),
    })
    rows = []
    for cid in ids:
        for k in range(int(rng.integers(0, 12))):
            ts = pd.Timestamp("2023-12-01") + pd.Timedelta(seconds=int(rng.integers(0, 250 * 86400)))
            refund = bool(rng.random() < 0.07)
            amount = float(rng.integers(1, 800)) * 0.25 * (-1 if refund else 1)
            rows.append((cid, f"{cid}-o{k}", ts, amount, refund))
            if rng.random() < 0.2:  # a second line of the same order
                rows.append((cid, f"{cid}-o{k}", ts, float(rng.integers(1, 80)) * 0.25, refund))
    tx = pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount", "is_refund"])
    return feats, tx


def _random_value(rng: random.Random, feats: pd.DataFrame, field: str, typ: str, op: str):
    sample = feats[field].dropna()
    pick = lambda: sample.iloc[rng.randrange(len(sample))]  # noqa: E731
    if op == "is_null":
        return rng.random() < 0.5
    if typ == "bool":
        return rng.random() < 0.5
    if typ == "number":
        one = lambda: float(pick()) if rng.random() < 0.8 else round(rng.uniform(-5, 2000), 2)  # noqa: E731
    elif typ == "date":
        def one():
            r = rng.random()
            if r < 0.5:
                return pd.Timestamp(pick()).date().isoformat()
            return "today" if r < 0.55 else f"{rng.randint(1, 400)} {rng.choice(['days', 'weeks', 'months'])} ago"
    else:
        def one():
            text = str(pick())
            if op in ("contains", "starts_with", "ends_with"):
                i = rng.randrange(len(text))
                j = rng.randrange(i, len(text)) + 1
                text = text[:j] if op == "starts_with" else text[i:] if op == "ends_with" else text[i:j]
                return text.swapcase() if rng.random() < 0.4 else text
            return text
    if op == "between":
        a, b = one(), one()
        if typ == "number" and a > b:
            a, b = b, a
        if typ == "date":
            return sorted([a, b], key=lambda s: pd.Timestamp(s) if s[0].isdigit() and "ago" not in s else pd.Timestamp(0))
        return [a, b]
    if op in ("in", "not_in"):
        return [one() for _ in range(rng.randint(1, 4))]
    return one()


def random_rule(rng: random.Random, feats: pd.DataFrame, depth: int = 0):
    if depth < 3 and rng.random() < 0.45:
        r = rng.random()
        if r < 0.2:
            return {"not": random_rule(rng, feats, depth + 1)}
        return {"all" if r < 0.6 else "any": [random_rule(rng, feats, depth + 1) for _ in range(rng.randint(1, 3))]}
    if rng.random() < 0.2:
        kind = rng.choice(["orders_in_last", "spend_in_last"])
        op = rng.choice(WINDOW_OPS)
        span = f"{rng.randint(1, 12)} {rng.choice(['days', 'weeks', 'months'])}"
        value = (lambda: rng.randint(0, 3)) if kind == "orders_in_last" else (lambda: rng.randint(-10, 1200) * 0.25)
        v = sorted([value(), value()]) if op == "between" else [value() for _ in range(2)] if op.endswith("in") else value()
        return {kind: span, op: v}
    field = rng.choice(list(SCHEMA))
    op = rng.choice(OPS[SCHEMA[field]])
    return {"field": field, op: _random_value(rng, feats, field, SCHEMA[field], op)}


def random_rules(seed: int, feats: pd.DataFrame, count: int) -> dict:
    rng = random.Random(seed)
    return {"segments": [{"name": f"r{i}", "when": random_rule(rng, feats)} for i in range(count)]}


@pytest.fixture(scope="module")
def realistic():
    feats, tx = make_data(2000, seed=20240630)
    rules = RuleSet.from_dict(random_rules(7, feats, 80), schema=SCHEMA)
    return feats, tx, rules, per_customer(rules, feats, tx)


def test_batch_equals_per_customer_on_2000_customers_and_random_rules(realistic):
    feats, tx, rules, expected = realistic
    got = rules.evaluate(feats, tx, as_of=AS_OF)
    assert list(got.columns) == ["customer_id", "segment_kind", "segment", "as_of"]
    assert (got["segment_kind"] == "rules").all() and (got["as_of"] == pd.Timestamp(AS_OF)).all()
    assert pairs(got) == expected
    sizes = got.groupby("segment").size().reindex(rules.names, fill_value=0)
    assert ((sizes > 0) & (sizes < len(feats))).sum() >= 30, sizes.to_dict()  # the rules really discriminate


def test_exclusive_mode_batch_equals_per_customer(realistic):
    feats, tx, rules, _ = realistic
    excl = RuleSet.from_dict({**rules.to_dict(), "exclusive": True}, schema=SCHEMA)
    got = excl.evaluate(feats, tx, as_of=AS_OF)
    assert got["customer_id"].is_unique
    assert pairs(got) == per_customer(excl, feats, tx)


@pytest.mark.postgres
def test_store_equals_per_customer_on_both_backends(realistic, store):
    feats, tx, rules, expected = realistic
    create_table(store, "customer_features", feats, {"customer_id": "string", **SCHEMA})
    insert_rows(store, "transactions", canonical_transactions(tx))
    got = rules.evaluate_store(store, as_of=AS_OF)  # compiled for store.kind; orders = distinct source+order_id
    assert pairs(got) == expected


# ----------------------------------------------------------------------------- malicious input

EVIL = [
    "clv; DROP TABLE canary; --", "' OR 1=1 --", "'; DELETE FROM canary; --", '"; DROP TABLE canary; --',
    "\\'; DROP TABLE canary; --", "\\", "' UNION SELECT 'x', 'y', 'z', DATE '2020-01-01' --", "%s", "%(x)s",
    "?", "$1", "$$; DROP TABLE canary; $$", "Robert'); DROP TABLE canary;--", "ünïcødé ' OR ''=' İ ß 🎉",
    "\u202e' OR 1=1 --", "line\nbreak' --", "/* comment */ 1", "E'\\x27'", "'", '"', ";", "--",
]
EVIL_NUM = "clv; DROP TABLE canary; --"           # field names that are SQL
EVIL_STR = "' OR 1=1 --"
EVIL_STR2 = 'a"b%s%(x)s; DROP TABLE canary'
EVIL_SCHEMA = {EVIL_NUM: "number", EVIL_STR: "string", EVIL_STR2: "string", "seen": "date", "ok": "bool"}
STRING_OPS = ["eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with"]


def evil_data() -> pd.DataFrame:
    n = len(EVIL) + 4
    return pd.DataFrame({
        "customer_id": [f"e{i}" if i % 5 else EVIL[i % len(EVIL)] + f"#{i}" for i in range(n)],
        EVIL_NUM: [float(i) if i % 7 else None for i in range(n)],
        EVIL_STR: pd.array([EVIL[i] if i < len(EVIL) else None for i in range(n)], dtype="string"),
        EVIL_STR2: pd.array([EVIL[(i * 5) % len(EVIL)].upper() if i % 3 else "plain" for i in range(n)], dtype="string"),
        "seen": pd.to_datetime(["2024-01-01"] * n),
        "ok": pd.array([True, False, None] * (n // 3) + [True] * (n % 3), dtype="boolean"),
    })


def evil_rules() -> RuleSet:
    segs = []
    for op in STRING_OPS:
        for i, v in enumerate(EVIL):
            field = EVIL_STR if i % 2 == 0 else EVIL_STR2
            value = [v, "x"] if op in ("in", "not_in") else v
            segs.append({"name": f"{op} {i} {v}", "description": v, "when": {"field": field, op: value}})
    segs.append({"name": "'; DROP TABLE canary; --", "when": {"all": [{"field": EVIL_NUM, "gt": 3},
                                                                        {"not": {"field": EVIL_STR, "eq": EVIL[1]}}]}})
    return RuleSet.from_dict({"segments": segs}, schema=EVIL_SCHEMA)


def _canary_ok(store) -> None:
    got = store.query("SELECT id, note FROM canary")
    assert got.values.tolist() == [[1, "alive"]]
    assert int(store.query(f"SELECT count(*) AS n FROM {q('customer_features')}")["n"].iloc[0]) == len(evil_data())


@pytest.mark.postgres
def test_sql_in_values_field_names_and_segment_names_cannot_escape(store):
    feats = evil_data()
    create_table(store, "canary", pd.DataFrame({"id": [1.0], "note": ["alive"]}), {"id": "number", "note": "string"})
    create_table(store, "customer_features", feats, {"customer_id": "string", **EVIL_SCHEMA})
    rules = evil_rules()

    sql, params = rules.compile(store.kind, as_of=AS_OF)
    # Field names appear only as quoted identifiers; no value reaches the text (short ones such
    # as "?" or "%s" are placeholders themselves, so only those with a quote or ; are looked for).
    pct = "%%" if store.kind == "postgresql" else "%"
    text = sql
    for name in EVIL_SCHEMA:
        text = text.replace(f"f.{q(name)}".replace("%", pct), "f.<field>")
    for v in EVIL:
        if any(ch in v for ch in "'\";") and len(v) > 2:
            assert v not in text
    assert text.count("f.<field>") == len(STRING_OPS) * len(EVIL) + 2
    assert sql.count("CAST(%s AS" if store.kind == "postgresql" else "CAST(? AS") == len(params)

    got = rules.evaluate_store(store, as_of=AS_OF)
    _canary_ok(store)
    expected = per_customer(rules, feats, None)
    assert pairs(got) == expected
    assert pairs(rules.evaluate(feats, as_of=AS_OF)) == expected
    # An oracle that owes nothing to the library: eq matches exactly the rows holding that text.
    rows = feats.to_dict("records")
    for i, v in enumerate(EVIL):
        field = EVIL_STR if i % 2 == 0 else EVIL_STR2
        members = {c for c, s in pairs(got) if s == f"eq {i} {v}"}
        assert members == {r["customer_id"] for r in rows if r[field] is not pd.NA and r[field] == v}
    assert {s for _, s in pairs(got)} >= {f"eq 0 {EVIL[0]}", f"contains 1 {EVIL[1]}", "'; DROP TABLE canary; --"}
    assert len(got) < len(feats) * len(rules.names) / 3  # nothing like "OR 1=1" matched everyone

    # Hostile table names are quoted as one name: the query fails to find the table, nothing runs.
    for table in ["customer_features; DROP TABLE canary; --", 'customer_features" ; DROP TABLE canary; --']:
        with pytest.raises(Exception) as info:
            rules.evaluate_store(store, features_table=table, as_of=AS_OF)
        assert not isinstance(info.value, RuleError)
        if store.kind == "postgresql":
            store.conn.rollback()
    _canary_ok(store)


TYPED = [(EVIL_NUM, op) for op in OPS["number"] if op != "is_null"] + [("ok", "is"), ("ok", "eq"), ("ok", "ne")] + \
        [("seen", op) for op in OPS["date"] if op != "is_null"]


@pytest.mark.parametrize(("field", "op"), TYPED)
def test_sql_in_values_of_typed_operators_is_refused(field, op):
    value = {"between": [EVIL[1], EVIL[0]], "in": [EVIL[1]], "not_in": [EVIL[1]]}.get(op, EVIL[1])
    with pytest.raises(RuleError) as info:
        RuleSet.from_dict({"segments": [{"name": "x", "when": {"field": field, op: value}}]}, schema=EVIL_SCHEMA)
    assert f"field {field!r}" in str(info.value) and "got the string \"' OR 1=1 --\"" in str(info.value)


@pytest.mark.parametrize("kind", ["orders_in_last", "spend_in_last"])
def test_sql_in_windows_is_refused(kind):
    with pytest.raises(RuleError, match="bad window"):
        _one({kind: "30 days; DROP TABLE canary; --", "gt": 1})
    with pytest.raises(RuleError, match="needs a number, got the string"):
        _one({kind: "30 days", "gt": "1 OR 1=1"})


@pytest.mark.parametrize("name", [EVIL_NUM + "x", "clv\"; DROP TABLE canary; --", "clv\x00", "CLV", "clv "])
def test_unknown_or_hostile_field_names_are_refused(name):
    with pytest.raises(RuleError, match="unknown field"):
        _one({"field": name, "gt": 1}, schema=EVIL_SCHEMA)


def test_nul_in_names_values_and_schema_is_refused():
    with pytest.raises(RuleError, match="NUL"):
        _one({"field": EVIL_STR, "eq": "x\x00' OR 1=1"}, schema=EVIL_SCHEMA)
    with pytest.raises(RuleError, match="needs a 'name'"):
        _one({"field": EVIL_STR, "eq": "x"}, name="a\x00b", schema=EVIL_SCHEMA)
    with pytest.raises(RuleError, match="not a usable column name"):
        _one({"field": "a", "eq": "x"}, schema={"a\x00b": "string", "a": "string"})


@pytest.mark.postgres
def test_question_mark_in_a_field_name(pg_store_url, tmp_path):
    """DuckDB quotes it; Store.query on PostgreSQL would rewrite it, so that path refuses it."""
    import duckdb
    import psycopg

    from clientfolio.store import open_store

    name = "what?' OR 1=1 --"
    schema = {name: "string"}
    feats = pd.DataFrame({"customer_id": ["a", "b", "c"], name: pd.array(["?", "x", None], dtype="string")})
    rules = RuleSet.from_dict({"segments": [{"name": "q", "when": {"field": name, "in": ["?", "%s"]}}]}, schema=schema)
    assert pairs(rules.evaluate(feats, as_of=AS_OF)) == {("a", "q")}
    con = duckdb.connect(str(tmp_path / "q.duckdb"))
    con.register("f", feats)
    con.execute("CREATE TABLE customer_features AS SELECT * FROM f")
    assert pairs(rules.evaluate_store(con, as_of=AS_OF)) == {("a", "q")}
    with open_store(pg_store_url) as st:
        create_table(st, "customer_features", feats, {"customer_id": "string", **schema})
        with pytest.raises(RuleError, match="contains '\\?'"):
            rules.evaluate_store(st, as_of=AS_OF)
    with psycopg.connect(pg_store_url) as conn:
        assert pairs(rules.evaluate_store(conn, as_of=AS_OF)) == {("a", "q")}


# ----------------------------------------------------------------------------- semantics by hand

def window_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    t = pd.Timestamp
    tx = pd.DataFrame([
        ("A", "o1", t("2024-06-30 23:59:59"), 40.0, False),   # last second of the as_of day: in every window
        ("A", "o2", t("2024-06-10 12:00"), 25.0, False),      # two lines, one order
        ("A", "o2", t("2024-06-10 12:00"), 15.0, False),
        ("A", "o3", t("2024-06-15 09:00"), -20.0, True),      # a refund: not an order, lowers spend
        ("A", "o4", t("2024-06-01 00:00:00"), 10.0, False),   # first instant of the 30-day window
        ("A", "o5", t("2024-05-31 23:59:59"), 100.0, False),  # just outside 30 days / 1 month
        ("A", "o6", t("2024-07-01 00:00:00"), 999.0, False),  # after as_of: never counted
        ("A", "o7", t("2024-03-31 10:00"), 7.0, False),       # outside 3 months (from 04-01), inside 92 days
        ("C", "c1", t("2024-06-20"), -20.0, True),            # C only has a refund
    ], columns=["customer_id", "order_id", "ts", "amount", "is_refund"])
    feats = pd.DataFrame({"customer_id": ["A", "B", "C"], "x": [1.0, 2.0, 3.0]})
    return feats, tx


# (window, orders, spend) for A, computed by hand from the rows above
WINDOW_TRUTH = [("1 day", 1, 40.0), ("30 days", 3, 70.0), ("1 month", 3, 70.0), ("5 weeks", 4, 170.0),
                ("3 months", 4, 170.0), ("92 days", 5, 177.0)]


def window_rules() -> RuleSet:
    segs = []
    for span, orders, spend in WINDOW_TRUTH:
        segs.append({"name": f"orders {span}", "when": {"orders_in_last": span, "eq": orders}})
        segs.append({"name": f"spend {span}", "when": {"spend_in_last": span, "eq": spend}})
    segs += [{"name": "no orders", "when": {"orders_in_last": "30 days", "eq": 0}},
             {"name": "net negative", "when": {"spend_in_last": "30 days", "lt": 0}}]
    return RuleSet.from_dict({"segments": segs}, schema={"x": "number"})


WINDOW_EXPECTED = ({("A", f"{kind} {span}") for span, _, _ in WINDOW_TRUTH for kind in ("orders", "spend")}
                   | {("B", "no orders"), ("C", "no orders"), ("C", "net negative")})


def test_windows_match_the_hand_computed_example():
    feats, tx = window_example()
    rules = window_rules()
    assert pairs(rules.evaluate(feats, tx, as_of=AS_OF)) == WINDOW_EXPECTED
    assert per_customer(rules, feats, tx) == WINDOW_EXPECTED
    # as_of as a timestamp late on the day means the same day
    assert rules.evaluate_one({"customer_id": "A"}, tx, as_of="2024-06-30T18:00:00")[:2] == ["orders 1 day", "spend 1 day"]
    # without order ids every non-refund row is one order: the two lines of o2 count twice
    rows = rules.evaluate(feats, tx.drop(columns="order_id"), as_of=AS_OF)
    assert ("A", "orders 30 days") not in pairs(rows)
    four = RuleSet.from_dict({"segments": [{"name": "4", "when": {"orders_in_last": "30 days", "eq": 4}}]}, schema={})
    assert pairs(four.evaluate(feats, tx.drop(columns="order_id"), as_of=AS_OF)) == {("A", "4")}
    assert four.evaluate_one({"customer_id": "A"}, tx.drop(columns="order_id"), as_of=AS_OF) == ["4"]


@pytest.mark.postgres
def test_windows_on_both_stores(store):
    feats, tx = window_example()
    create_table(store, "customer_features", feats, {"customer_id": "string", "x": "number"})
    insert_rows(store, "transactions", canonical_transactions(tx))
    assert pairs(window_rules().evaluate_store(store, as_of=AS_OF)) == WINDOW_EXPECTED


NULLS = pd.DataFrame({
    "customer_id": ["n1", "n2", "n3"],
    "region": pd.array([None, "north", "south"], dtype="string"),
    "clv": [None, 100.0, None],
    "seen": pd.to_datetime([None, "2024-04-30 23:00", "2024-05-01 00:30"]),
    "ok": pd.array([None, True, False], dtype="boolean"),
})
NULL_RULES = {
    "ne north": ({"field": "region", "ne": "north"}, {"n3"}),
    "not eq north": ({"not": {"field": "region", "eq": "north"}}, {"n3"}),
    "null or ne": ({"any": [{"field": "region", "is_null": True}, {"field": "region", "ne": "north"}]}, {"n1", "n3"}),
    "true and unknown": ({"all": [{"field": "region", "eq": "south"}, {"field": "clv", "gt": 0}]}, set()),
    "not of false/unknown": ({"not": {"all": [{"field": "region", "eq": "south"}, {"field": "clv", "gt": 0}]}}, {"n2"}),
    "true or unknown": ({"any": [{"field": "region", "eq": "south"}, {"field": "clv", "gt": 0}]}, {"n2", "n3"}),
    "not in": ({"field": "region", "not_in": ["north"]}, {"n3"}),
    "known clv": ({"field": "clv", "is_null": False}, {"n2"}),
    "not consented": ({"not": {"field": "ok", "is": True}}, {"n3"}),
    "before 60 days ago": ({"field": "seen", "before": "60 days ago"}, {"n2"}),  # 2024-05-01 is not before itself
    "after May 1st": ({"field": "seen", "after": "2024-04-30"}, {"n3"}),
    "between by day": ({"field": "seen", "between": ["2024-04-30", "2024-04-30"]}, {"n2"}),
}


def null_rules(exclusive: bool = False) -> RuleSet:
    return RuleSet.from_dict({"exclusive": exclusive, "segments": [{"name": k, "when": w} for k, (w, _) in NULL_RULES.items()]},
                             schema={"region": "string", "clv": "number", "seen": "date", "ok": "bool"})


NULL_EXPECTED = {(c, k) for k, (_, members) in NULL_RULES.items() for c in members}


def test_three_valued_logic_by_hand_in_both_evaluators():
    rules = null_rules()
    assert pairs(rules.evaluate(NULLS, as_of=AS_OF)) == NULL_EXPECTED
    assert per_customer(rules, NULLS, None) == NULL_EXPECTED
    assert rules.evaluate_one({"customer_id": "n9"}, as_of=AS_OF) == ["null or ne"]  # absent keys are missing


@pytest.mark.postgres
def test_three_valued_logic_on_both_stores(store):
    create_table(store, "customer_features", NULLS,
                 {"customer_id": "string", "region": "string", "clv": "number", "seen": "date", "ok": "bool"})
    assert pairs(null_rules().evaluate_store(store, as_of=AS_OF)) == NULL_EXPECTED
    excl = null_rules(exclusive=True).evaluate_store(store, as_of=AS_OF)
    assert pairs(excl) == {("n3", "ne north"), ("n2", "not of false/unknown"), ("n1", "null or ne")}


def test_exclusive_first_match_wins_in_file_order():
    rules = null_rules(exclusive=True)
    got = rules.evaluate(NULLS, as_of=AS_OF)
    assert pairs(got) == {("n3", "ne north"), ("n2", "not of false/unknown"), ("n1", "null or ne")}
    assert rules.evaluate_one(NULLS.iloc[2].to_dict(), as_of=AS_OF) == ["ne north"]


def test_case_insensitive_string_operators_agree_everywhere():
    feats = pd.DataFrame({"customer_id": list("abcdef"),
                          "city": ["MÜNCHEN", "münchen", "Muenchen", "İstanbul", "istanbul", None]})
    rules = RuleSet.from_dict({"segments": [
        {"name": "mü", "when": {"field": "city", "contains": "ünch"}},
        {"name": "starts M", "when": {"field": "city", "starts_with": "mü"}},
        {"name": "ends CHEN", "when": {"field": "city", "ends_with": "CHEN"}},
        {"name": "ist", "when": {"field": "city", "starts_with": "ist"}},
        {"name": "exact", "when": {"field": "city", "eq": "münchen"}},
    ]}, schema={"city": "string"})
    expected = {("a", "mü"), ("b", "mü"), ("a", "starts M"), ("b", "starts M"), ("a", "ends CHEN"),
                ("b", "ends CHEN"), ("c", "ends CHEN"), ("e", "ist"), ("b", "exact")}  # 'İ' has no one-letter lower case
    assert pairs(rules.evaluate(feats, as_of=AS_OF)) == expected
    assert per_customer(rules, feats, None) == expected


@pytest.mark.postgres
def test_case_folding_does_not_depend_on_the_postgres_locale(pg_store_url):
    import psycopg

    rules = RuleSet.from_dict({"segments": [{"name": "ü", "when": {"field": "city", "contains": "ÜNCHEN"}}]},
                              schema={"city": "string"})
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute('CREATE TABLE customer_features (customer_id TEXT, city TEXT COLLATE "C")')
        conn.execute("INSERT INTO customer_features VALUES ('a', 'münchen'), ('b', 'München'), ('c', 'Munchen')")
        assert pairs(rules.evaluate_store(conn, as_of=AS_OF)) == {("a", "ü"), ("b", "ü")}
