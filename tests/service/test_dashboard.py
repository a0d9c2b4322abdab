"""The dashboard in real headless Chromium against a real `clientfolio serve` on PostgreSQL with two shops.

Shop "alpha" is imported and fitted through the API (with one customer whose id and order hold
HTML); shop "beta" has only its customers imported.  Screenshots of the main pages go to the test's
temporary folder, or to docs/ with CLIENTFOLIO_SCREENSHOTS=1 (how docs/dashboard-*.png are refreshed).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.service.conftest import fill_shop, new_key, shop_files, start_server

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM = "/usr/bin/chromium"
EVIL = "A-<img src=x onerror=alert(1)>"
EVIL_CATEGORY = "<script>window.pwned=1</script>"
PAGES = ["/dashboard/", "/dashboard/segments", "/dashboard/segments/lifecycle/active", "/dashboard/customers/A-C00004",
         "/dashboard/playbooks", "/dashboard/exports", "/dashboard/experiments", "/dashboard/webhooks",
         "/dashboard/checkup"]
SHOTS = {"/dashboard/": "overview", "/dashboard/segments": "segments", "/dashboard/customers/A-C00004": "customer",
         "/dashboard/checkup": "checkup"}


@pytest.fixture(scope="module")
def shops(pg_registry: str, tmp_path_factory: pytest.TempPathFactory):
    """A server with two workspaces and their keys: alpha fitted (40 customers), beta only imported."""
    from clientfolio.service.workspaces import Registry

    tmp = tmp_path_factory.mktemp("dash")
    with Registry(pg_registry) as reg:
        reg.create_workspace("alpha")
        reg.create_workspace("beta")
        keys = {name: reg.create_key(ws, scope)[1] for name, ws, scope in
                [("admin", "alpha", "admin"), ("read", "alpha", "read"), ("write", "alpha", "write"),
                 ("beta", "beta", "admin")]}
    server = start_server(pg_registry, tmp, CLIENTFOLIO_RATE="0")
    try:
        with server.client(keys["admin"]) as c:
            fill_shop(c, prefix="A-", customers=40)
            r = c.post("/orders", json={"order_id": "A-evil-1", "customer_id": EVIL, "ts": "2024-06-20T10:00:00Z",
                                        "lines": [{"amount": 12.5, "category": EVIL_CATEGORY}]})
            assert r.status_code == 200, r.text
        with server.client(keys["beta"]) as c:
            people = shop_files("B-", customers=10)[1]
            assert c.post("/imports", files={"file": ("beta-people.csv", io.BytesIO(people), "text/csv")}
                          ).status_code == 200
        yield {"server": server, "keys": keys, "registry": pg_registry}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                              "--disable-background-networking"])
        yield b
        b.close()


class Watched:
    """A browser page that records console errors, failed requests and error responses."""

    def __init__(self, browser, base: str, width: int = 1280) -> None:  # noqa: ANN001
        self.ctx = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.ctx.new_page()
        self.base = base
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def sign_in(self, key: str) -> None:
        self.page.goto(self.base + "/dashboard/")
        assert "/dashboard/signin" in self.page.url
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/dashboard/$"))

    def open(self, path: str):  # noqa: ANN201
        r = self.page.goto(self.base + path)
        if self.page.locator("[data-chart]").count():
            self.page.wait_for_selector("[data-chart] .main-svg")
        return r

    def close(self) -> None:
        self.ctx.close()


def test_signed_out_pages_redirect_and_forged_sessions_are_refused(shops: dict) -> None:
    base = shops["server"].url
    with httpx.Client(base_url=base) as c:
        for path in PAGES + ["/dashboard/exports/exp_0123456789abcdef/download"]:
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/signin?next="), path
        assert c.get("/dashboard/segments").headers["location"] == "/dashboard/signin?next=%2Fdashboard%2Fsegments"
        # a well-formed cookie with a made-up signature, and garbage
        for forged in ("eyJrIjoia2V5XzAwMDAwMDAwMDAwMCIsIm4iOiJ4IiwidCI6MTc2NDc0NjE2MX0.AAAA", "x.y.z"):
            r = c.get("/dashboard/", cookies={"cf_session": forged})
            assert r.status_code == 303 and "signin" in r.headers["location"]
        # the sign-in form needs its own token: a POST without it is refused even with a valid key
        r = c.post("/dashboard/signin", data={"key": shops["keys"]["read"]})
        assert r.status_code == 403 and "cf_session" not in r.cookies
        form = c.get("/dashboard/signin?next=https://evil.example/")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        assert 'value="/dashboard/"' in form.text  # no open redirect
        bad = c.post("/dashboard/signin", data={"key": "cf_" + "x" * 43, "csrf": token})
        assert bad.status_code == 401 and "not recognised" in bad.text
        token = re.search(r'name="csrf" value="([^"]+)"', bad.text).group(1)
        ok = c.post("/dashboard/signin", data={"key": shops["keys"]["read"], "csrf": token})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert shops["keys"]["read"] not in cookie  # the session holds the key's id, not the key
        home = c.get("/dashboard/")
        assert home.status_code == 200, home.text[-1500:]


def test_revoking_a_key_ends_its_sessions(shops: dict) -> None:
    from clientfolio.service.workspaces import Registry

    with Registry(shops["registry"]) as reg:
        key_id, key = reg.create_key("alpha", "read", "revoked in a test")
    with httpx.Client(base_url=shops["server"].url) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/dashboard/signin").text).group(1)
        assert c.post("/dashboard/signin", data={"key": key, "csrf": token}).status_code == 303
        assert key_id in json.loads(base64.urlsafe_b64decode(c.cookies["cf_session"].split(".")[0] + "=="))["k"]
        assert c.get("/dashboard/segments").status_code == 200
        with Registry(shops["registry"]) as reg:
            reg.revoke_key(key_id)
        r = c.get("/dashboard/segments")
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/signin")


def test_every_page_opens_cleanly_on_desktop_and_phone(shops: dict, browser, tmp_path: Path) -> None:  # noqa: ANN001
    server = shops["server"]
    with server.client(shops["keys"]["read"]) as api:
        segs = api.get("/segments").json()["segments"]
    active = next(s for s in segs if s["segment_kind"] == "lifecycle" and s["segment"] == "active")
    shots = DOCS if os.environ.get("CLIENTFOLIO_SCREENSHOTS") else tmp_path
    for width in (1280, 390):
        w = Watched(browser, server.url, width)
        try:
            w.sign_in(shops["keys"]["read"])
            for path in PAGES:
                r = w.open(path)
                assert r.status == 200, path
                assert w.page.locator("h1").count() == 1, path
                overflow = w.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{path} is {overflow}px wider than a {width}px screen"
                if path in SHOTS:
                    w.page.screenshot(path=str(shots / f"dashboard-{SHOTS[path]}-{width}.png"))
            w.open("/dashboard/")
            assert w.page.locator(".chart .main-svg").count() >= 1  # plotly drew, from the service itself
            kpi = w.page.locator(".kpi", has_text="Customers").locator("b").inner_text()
            assert int(kpi.replace(",", "")) == 41  # 40 imported and the one who came with a posted order
            w.open("/dashboard/segments/lifecycle/active")
            assert w.page.locator(".kpi b").first.inner_text() == f"{active['customers']:,}"
            assert w.page.locator("tbody tr").count() == min(50, active["customers"])
            w.open("/dashboard/webhooks")
            assert "No webhooks set up" in w.page.inner_text("main")
            w.open("/dashboard/checkup")
            text = w.page.inner_text("main")
            assert "orders.csv.gz" in text and "customers.csv" in text and "/tmp" not in text
            assert w.problems == [], w.problems
        finally:
            w.close()


def test_a_customer_followed_from_a_segment_to_the_reason_they_are_in_it(shops: dict, browser) -> None:  # noqa: ANN001
    server = shops["server"]
    w = Watched(browser, server.url)
    try:
        w.sign_in(shops["keys"]["read"])
        w.open("/dashboard/segments")
        w.page.click("a[href='/dashboard/segments/lifecycle/churned']")
        w.page.wait_for_url(re.compile(r".*/segments/lifecycle/churned$"))
        first = w.page.locator("tbody a").first
        customer_id = first.inner_text()
        first.click()
        w.page.wait_for_url(re.compile(rf".*/customers/{re.escape(quote(customer_id, safe=''))}$"))
        why = w.page.locator("#why-lifecycle")
        assert "Churned" in why.locator("h3").inner_text()
        with server.client(shops["keys"]["read"]) as api:
            expected = api.get(f"/customers/{customer_id}").json()["why"]["lifecycle"][0]["why"]
        assert expected and expected in why.inner_text()
        assert w.page.locator("table").last.locator("tbody tr").count() >= 1  # the order history
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_html_from_the_data_is_shown_as_text(shops: dict, browser) -> None:  # noqa: ANN001
    w = Watched(browser, shops["server"].url)
    try:
        w.sign_in(shops["keys"]["read"])
        r = w.open("/dashboard/customers/" + quote(EVIL, safe=""))
        assert r.status == 200
        assert w.page.locator("h1").inner_text() == f"Customer {EVIL}"
        assert EVIL_CATEGORY in w.page.inner_text("main")
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in w.page.content()
        assert w.page.locator("main img").count() == 0 and w.page.evaluate("window.pwned") is None
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_webhook_endpoints_and_deliveries_are_listed(shops: dict, browser) -> None:  # noqa: ANN001
    """Beta gets an endpoint and queued deliveries through the webhooks library; alpha has none."""
    from clientfolio.service.webhooks import Policy, WebhookWorker, add_endpoint
    from clientfolio.service.workspaces import Registry, with_search_path
    from clientfolio.store import open_store
    from tests.service.test_webhooks import consent, moves

    with Registry(shops["registry"]) as reg:
        schema = reg.workspace("beta").schema_name
    loopback = Policy(allow=("127.0.0.0/8",))
    with open_store(with_search_path(shops["registry"], schema)) as st:
        _, secret = add_endpoint(st, "http://127.0.0.1:9/hooks", segment_kinds=["lifecycle"],
                                 description="<b>CRM</b> sync", policy=loopback)
        consent(st, {"B-W1": True, "B-W2": True})
        ids = moves(st, ["B-W1", "B-W2"])
        with WebhookWorker(st, policy=loopback) as worker:
            assert worker.enqueue() == 2
    w = Watched(browser, shops["server"].url)
    try:
        w.sign_in(shops["keys"]["beta"])
        w.open("/dashboard/webhooks")
        text = w.page.inner_text("main")
        assert "http://127.0.0.1:9/hooks" in text and "<b>CRM</b> sync" in text  # shown as text
        assert "entered and left every segment of lifecycle" in text and "sending" in text
        assert all(i in text for i in ids) and "2 pending" in text
        assert secret not in w.page.content() and w.page.locator("main b").count() == 0
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_an_experiment_is_listed_and_read_out(shops: dict, browser) -> None:  # noqa: ANN001
    from clientfolio.actions.experiments import start_experiment
    from clientfolio.service.workspaces import Registry, with_search_path
    from clientfolio.store import open_store

    with Registry(shops["registry"]) as reg:
        schema = reg.workspace("alpha").schema_name
    st = open_store(with_search_path(shops["registry"], schema))
    try:
        start_experiment(st, "win-back <june>", "lifecycle", "churned", holdout_share=0.5, at=datetime(2024, 5, 1))
    finally:
        st.close()
    w = Watched(browser, shops["server"].url)
    try:
        w.sign_in(shops["keys"]["read"])
        w.open("/dashboard/experiments")
        w.page.click("text=win-back <june>")
        w.page.wait_for_url(re.compile(r".*/experiments/win-back%20%3Cjune%3E$"))
        assert w.page.locator("h1").inner_text() == "Experiment win-back <june>"
        assert len(w.page.inner_text("section.card p")) > 20  # the read-out in words
        assert w.problems == [], w.problems
    finally:
        w.close()


def test_another_shops_key_sees_nothing_of_the_first(shops: dict, browser) -> None:  # noqa: ANN001
    w = Watched(browser, shops["server"].url)
    try:
        w.sign_in(shops["keys"]["beta"])
        assert "Shop beta" in w.page.inner_text("header")
        seen = ""
        for path in PAGES:
            r = w.open(path)
            seen += w.page.content()
            assert r.status == (404 if "A-C00004" in path or "/lifecycle/" in path else 200), path
        others = re.findall(r"A-C\d{5}", seen.replace("no customer 'A-C00004'", ""))
        assert others == [] and "alpha" not in seen and "orders.csv.gz" not in seen
        assert "beta-people.csv" in seen and "Nothing to show yet" in seen  # its own import, and no fit
    finally:
        w.close()


def test_exports_need_the_form_token_and_a_write_key(shops: dict, browser) -> None:  # noqa: ANN001
    server = shops["server"]
    w = Watched(browser, server.url)
    try:
        w.sign_in(shops["keys"]["read"])
        w.open("/dashboard/exports")
        assert w.page.locator("form.row button").is_disabled()
        cookies = {c["name"]: c["value"] for c in w.ctx.cookies()}
        token = w.page.locator("form.row input[name=csrf]").get_attribute("value")
        with httpx.Client(base_url=server.url, cookies=cookies) as c:
            form = {"segment": "lifecycle|active", "target": "mailchimp"}
            assert c.post("/dashboard/exports", data=form).status_code == 403  # no token
            assert c.post("/dashboard/exports", data={**form, "csrf": token}).status_code == 403  # read key
        w.close()
        w = Watched(browser, server.url)
        w.sign_in(shops["keys"]["write"])
        w.open("/dashboard/exports")
        cookies = {c["name"]: c["value"] for c in w.ctx.cookies()}
        with httpx.Client(base_url=server.url, cookies=cookies) as c:
            r = c.post("/dashboard/exports", data={**form, "csrf": token})  # the other session's token
            assert r.status_code == 403 and "security token" in r.text
            r = c.post("/dashboard/exports", data={**form, "csrf": w.page.locator("form.row input[name=csrf]")
                                                   .get_attribute("value")}, headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
        with server.client(shops["keys"]["read"]) as api:
            assert api.get("/exports").json()["exports"] == []  # nothing was written by the refused posts
        w.page.select_option("select[name=segment]", "lifecycle|active")
        w.page.select_option("select[name=target]", "mailchimp")
        w.page.click("form.row button")
        w.page.wait_for_selector("[role=status]")
        with server.client(shops["keys"]["read"]) as api:
            made = api.get("/exports").json()["exports"]
        assert len(made) == 1 and made[0]["segment"] == "active" and made[0]["target"] == "mailchimp"
        status = w.page.locator("[role=status]").inner_text()
        assert f"{made[0]['rows']:,} of {made[0]['members']:,} customers" in status
        if made[0]["left_out"]:
            assert "Left out" in status
        with w.page.expect_download() as dl:
            w.page.click("[role=status] a")
        assert dl.value.suggested_filename.endswith(".csv")
        w.page.click("header button")  # sign out
        w.page.wait_for_url(re.compile(r".*/dashboard/signin$"))
        assert w.open("/dashboard/exports").url.split("?")[0].endswith("/dashboard/signin")
        assert [p for p in w.problems if "403" not in p] == [], w.problems
    finally:
        w.close()


def test_every_page_works_on_a_duckdb_shop(tmp_path: Path, browser) -> None:  # noqa: ANN001
    """The same pages on the single-shop DuckDB store (its SQL differs from PostgreSQL's)."""
    store = str(tmp_path / "shop.duckdb")
    admin = new_key(store, scope="admin")
    server = start_server(store, tmp_path)
    try:
        with server.client(admin) as c:
            fill_shop(c, prefix="D-", customers=30)
        w = Watched(browser, server.url)
        try:
            w.sign_in(admin)
            for path in PAGES:
                assert w.open(path.replace("A-C0", "D-C0")).status == 200, path
            w.open("/dashboard/customers/D-C00004")
            assert w.page.locator("table").last.locator("tbody tr").count() == 34  # every order and refund
            assert "33 orders and 1 refund." in w.page.inner_text("main")  # as the orders score counts them
            assert w.page.locator(".kpi", has_text="Orders").locator("b").inner_text() == "33"
            w.open("/dashboard/webhooks")
            assert "No webhooks set up" in w.page.inner_text("main")
            assert w.problems == [], w.problems
        finally:
            w.close()
    finally:
        server.stop()
