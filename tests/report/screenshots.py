"""Refresh the README's screenshots from fresh reports (headless Debian Chromium, nothing downloaded).

    PYTHONPATH=. python -m tests.report.screenshots docs/

Writes report-summary.png, report-portfolio.png and report-actions.png (the demo at laptop width), report-phone.png
(the demo on two 390 px phone screens) and report-tiny-shop.png (a real 2-customer Shopify export
from ../shared/corpus, else the small one in tests/data/trust/), and report-predictions-1280.png and
report-predictions-390.png (the demo's Predictions section with its real churn and next-order
evaluation; at 390 px down to the calibration chart).  Look at each before committing.

    PYTHONPATH=. python -m tests.report.screenshots docs/ predictions    # only the Predictions ones
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
TINY = ["shopify_orders_export__devstore_ramkumar03ace.csv"]


def reports(folder: Path) -> tuple[Path, Path]:
    """The demo's report and a 2-customer shop's report, written into `folder`."""
    import clientfolio
    from clientfolio.datasets import demo_shop_paths
    from tests.conftest import CORPUS, DATA

    p = demo_shop_paths()
    demo = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]])
    tiny_file = CORPUS / TINY[0] if (CORPUS / TINY[0]).exists() else DATA / "trust" / "tiny_shop_2_customers.csv"
    tiny = clientfolio.analyze(tiny_file)
    return demo.report(folder / "demo" / "report.html"), tiny.report(folder / "tiny" / "report.html")


def shoot(demo: Path, tiny: Path, docs: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        page = b.new_page(viewport={"width": 1240, "height": 900})
        page.goto(demo.resolve().as_uri())
        page.wait_for_timeout(2500)
        page.query_selector("#summary").screenshot(path=str(docs / "report-summary.png"))
        page.query_selector("#portfolio").screenshot(path=str(docs / "report-portfolio.png"))
        # What to do: the contact-first list and the value-at-stake chart (the rest of the section is tables).
        page.evaluate("window.scrollTo(0, 0)")  # boxes relative to the top of the page, as full_page clips are
        top = page.query_selector("#actions").bounding_box()
        chart = page.query_selector("#chart-value-at-stake").bounding_box()
        page.screenshot(path=str(docs / "report-actions.png"), full_page=True,
                        clip={"x": top["x"], "y": top["y"], "width": top["width"],
                              "height": chart["y"] + chart["height"] + 12 - top["y"]})
        page.close()
        # Two phone screens side by side: the top of the report, and the customer-value chart.
        frame = "width:390px;height:844px;border:1px solid #999;background:#fff"
        wrap = demo.parent / "phone.html"
        wrap.write_text(f"<!DOCTYPE html><html><body style='margin:0;background:#d9dde3;display:flex;gap:24px;"
                        f"padding:20px'><iframe src='{demo.resolve().as_uri()}' style='{frame}'></iframe>"
                        f"<iframe src='{demo.resolve().as_uri()}#value' style='{frame}'></iframe></body></html>")
        page = b.new_page(viewport={"width": 866, "height": 886})
        page.goto(wrap.as_uri())
        page.wait_for_timeout(4000)
        page.screenshot(path=str(docs / "report-phone.png"))
        page.close()
        # The 2-customer shop: header, summary and data check-up.
        page = b.new_page(viewport={"width": 1000, "height": 900})
        page.goto(tiny.resolve().as_uri())
        page.wait_for_timeout(2500)
        data = page.query_selector("#data").bounding_box()
        page.screenshot(path=str(docs / "report-tiny-shop.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1000, "height": data["y"] + data["height"] + 12})
        page.close()
        b.close()


def predictions_report(folder: Path) -> Path:
    """The demo's report with its predictions (as ``analyze --predict`` would add them)."""
    import clientfolio
    from clientfolio.datasets import demo_shop_paths, load_demo_shop
    from clientfolio.predict.evaluation import predict_shop

    p = demo_shop_paths()
    demo = clientfolio.analyze([p["customers"], p["transactions"], p["events"], p["marketing_spend"]])
    if demo.predictions is None:
        demo.predictions = predict_shop(load_demo_shop())
    return demo.report(folder / "predictions" / "report.html")


def shoot_predictions(report: Path, docs: Path) -> None:
    """The Predictions section at 1280 px (whole) and at 390 px (down to the end of the calibration chart)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
        for width in (1280, 390):
            page = b.new_page(viewport={"width": width, "height": 900})
            page.goto(report.resolve().as_uri())
            page.wait_for_timeout(2500)
            page.evaluate("window.scrollTo(0, 0)")
            top = page.query_selector("#predictions").bounding_box()
            end = top if width > 600 else page.query_selector("#chart-pred-calibration").bounding_box()
            page.screenshot(path=str(docs / f"report-predictions-{width}.png"), full_page=True,
                            clip={"x": 0, "y": top["y"] - 8, "width": width,
                                  "height": end["y"] + end["height"] + 16 - top["y"]})
            page.close()
        b.close()


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    with tempfile.TemporaryDirectory() as tmp:
        if sys.argv[2:] != ["predictions"]:
            shoot(*reports(Path(tmp)), out)
        shoot_predictions(predictions_report(Path(tmp)), out)
    for png in sorted(out.glob("report-*.png")):
        print(f"{png}: {png.stat().st_size // 1024} KB")
