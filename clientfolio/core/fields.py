"""The columns of the customer table that `analyze` builds, as rule files may name them.

Rule segments are evaluated on this table after the models are fitted; knowing its columns
beforehand lets a rule file with a misspelt field fail in a second instead of after the
fit.  Which columns appear depends on the data (no events: no ``email_opens``); a field
listed here but absent from a shop's table is still reported after scoring.  A test keeps
this list equal to what the pipeline produces (``tests/test_cli.py``).
"""

from __future__ import annotations

_NUMBER = """frequency recency T monetary orders revenue refunds cost aov tenure ipt_mean ipt_std last_gap
first_gap ipt_mean_before_last expected_purchases p_alive churn_risk expected_gap_days expected_spend margin
clv clv_low clv_high weekend_share december_share gift_share discount_share orders_per_month email_opens
email_clicks page_views cart_abandons support_tickets reviews avg_rating nps email_click_rate
acquisition_cost R F M FM gross_profit cost_to_serve profit days_since_last rhythm_days revenue_12m value_12m
economic engagement advocacy strategic value_score mean_sentiment negative_share texts_scored sentiment"""
_STRING = """customer_id top_category top_channel region customer_country industry size acquisition_channel RFM
rfm_segment profitability lifecycle quadrant value_tier historical_value_tier frequency_tier cluster
forecast_note"""
_DATE = "first_purchase last_purchase next_order_date first_seen"
_BOOL = "consent_marketing"

CUSTOMER_FIELDS: dict[str, str] = {
    **{f: "number" for f in _NUMBER.split()},
    **{f: "string" for f in _STRING.split()},
    **{f: "date" for f in _DATE.split()},
    **{f: "bool" for f in _BOOL.split()},
}
"""Field name -> rule type (number, string, date, bool) of every column rules can use."""

CUSTOMER_FIELD_PREFIXES: dict[str, str] = {"share_": "number"}
"""Families of columns named after the data: ``share_<category>`` (share of spend per category)."""


def customer_fields_for(used: list[str]) -> dict[str, str]:
    """The known customer fields, plus those in `used` that belong to a data-named family."""
    extra = {f: t for f in used for p, t in CUSTOMER_FIELD_PREFIXES.items() if f.startswith(p) and len(f) > len(p)}
    return {**CUSTOMER_FIELDS, **extra}
