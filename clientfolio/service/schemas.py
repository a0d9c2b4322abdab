"""Request and response bodies of the API (inputs and outputs kept apart)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL bytes: refuse them at the door
Id = Field(min_length=1, max_length=200, pattern=NO_NUL)
Text = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderLineIn(In):
    amount: float = Field(allow_inf_nan=False, ge=-1e9, le=1e9, description="Net amount of the line.")
    product_id: Text | None = None
    category: Text | None = None
    quantity: float | None = Field(None, allow_inf_nan=False, ge=-1e6, le=1e6)
    cost: float | None = Field(None, allow_inf_nan=False, ge=-1e9, le=1e9)
    discount: float | None = Field(None, allow_inf_nan=False, ge=-1e9, le=1e9)


class OrderIn(In):
    """An order: one amount, or several lines."""

    order_id: str = Id
    customer_id: str = Id
    ts: datetime = Field(description="When the order was placed (ISO 8601; no zone means UTC).")
    amount: float | None = Field(None, allow_inf_nan=False, ge=-1e9, le=1e9,
                                 description="Net amount of a one-line order (or give `lines`).")
    lines: list[OrderLineIn] | None = Field(None, min_length=1, max_length=1000)
    source: Text | None = Field(None, description="Where the order came from (default 'live').")
    channel: Text | None = None


class RefundIn(In):
    """A refund of (part of) an order, recorded as its own negative order line."""

    refund_id: str = Id
    customer_id: str = Id
    ts: datetime
    amount: float = Field(gt=0, le=1e9, allow_inf_nan=False, description="The amount refunded (positive).")
    source: Text | None = None


class CancellationIn(In):
    """An order taken back whole: its lines are removed."""

    order_id: str = Id
    source: Text = "live"


class EventIn(In):
    event_id: str = Id
    customer_id: str = Id
    ts: datetime
    type: str = Field(min_length=1, max_length=100, pattern=NO_NUL, description="page_view, email_open, support_ticket, ...")
    properties: dict[str, Any] | None = None


class BatchIn(In):
    """Orders, refunds, cancellations and events applied together in one transaction.

    Idempotent: every order, refund, cancellation and event has a key (its id), and one applied
    before is skipped, so sending the same batch twice records nothing new.
    """

    orders: list[OrderIn] = Field(default_factory=list, max_length=10_000)
    refunds: list[RefundIn] = Field(default_factory=list, max_length=10_000)
    cancellations: list[CancellationIn] = Field(default_factory=list, max_length=10_000)
    events: list[EventIn] = Field(default_factory=list, max_length=10_000)
    as_of: date | None = Field(None, description="Score the touched customers at this day (default: the latest "
                                                 "time in the batch).")


class ChangeOut(BaseModel):
    change_id: int | None = None
    customer_id: str
    segment_kind: str
    from_segment: str | None = None
    to_segment: str | None = None
    changed_at: str | None = None
    cause: str
    reason: str


class UpdateOut(BaseModel):
    applied: int = Field(description="Orders, refunds, cancellations and events applied now.")
    skipped: int = Field(description="Already applied before (sent again): nothing recorded for them.")
    customers_touched: int
    rescanned: int
    outbox: int = Field(description="Messages queued for subscribed actions (webhooks, ...).")
    changes: list[ChangeOut]
    notes: list[str] = []


class SweepIn(In):
    as_of: date | None = Field(None, description="Bring the portfolio to this day (default: today, UTC).")


class RefitIn(In):
    cutoff: date | None = Field(None, description="Fit at this day (default: the last order).")


class ExportIn(In):
    segment: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    segment_kind: Text | None = None
    target: str = Field("csv", max_length=40, pattern=NO_NUL, description="mailchimp, klaviyo, hubspot, zoho, salesforce, shopify, "
                                                          "csv or parquet")
    since: date | None = None
    pseudonymise: bool = False


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_after: int | None = Field(None, description="Pass as `after` for the next page; null on the last page.")


class CustomerPage(BaseModel):
    items: list[dict[str, Any]]
    next_after: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")
