"""A customer's churn risk and next order over HTTP: shown with the day they were last scored (by the
analysis, or by a live update that touched the customer)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.service.conftest import copy_shop, start_server


@pytest.mark.slow
def test_customer_endpoint_shows_stored_predictions_as_of_their_fit(fitted_shop: dict, tmp_path) -> None:
    from clientfolio.predict.evaluation import predict_shop
    from clientfolio.predict.stored import STALE_NOTE, save_predictions
    from clientfolio.store import open_store

    store = copy_shop(fitted_shop, tmp_path)
    with open_store(store) as st:
        result = predict_shop(st, require_support=False)  # 200 customers: below the minimum, fine for the route
        save_predictions(st, result)
        state_id = int(st.query("SELECT state_id FROM portfolio_states WHERE is_current")["state_id"].iloc[0])
    row = result.customers.iloc[0]
    server = start_server(store, tmp_path)
    try:
        with server.client(fitted_shop["keys"]["read"]) as c:
            body = c.get(f"/customers/{row['customer_id']}").json()
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as c:  # the dashboard's page
            token = re.search(r'name="csrf" value="([^"]+)"', c.get("/dashboard/signin").text).group(1)
            assert c.post("/dashboard/signin", data={"key": fitted_shop["keys"]["read"], "csrf": token}
                          ).status_code == 303
            page = c.get(f"/dashboard/customers/{row['customer_id']}").text
    finally:
        server.stop()
    p = body["predictions"]
    assert p["as_of"].startswith(str(result.customers.attrs["as_of"].date())) and p["note"] == STALE_NOTE
    assert p["state_id"] == state_id and p["churn_source"] == row["churn_source"]
    assert abs(p["churn_risk"] - row["churn_risk"]) < 1e-9 and p["horizon_days"] == result.horizon_days
    assert p["next_order_low"] <= p["next_order_days"] <= p["next_order_high"]
    # The live score of the same name (1 - P(alive), empty below the minimum for forecasts) stays where it was.
    assert "churn_risk" in body["scores"]
    as_of = f"{result.customers.attrs['as_of']:%d %b %Y}"
    assert f"Churn risk and next order, as of {as_of}" in page and "rescores them with the models" in page
    assert f"{row['churn_risk']:.0%}" in page and "80% interval" in page
