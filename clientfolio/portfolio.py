"""The result of `clientfolio.analyze`: every customer, every segment, and what it means."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from clientfolio.core.money import format_money
from clientfolio.core.notes import Notes
from clientfolio.store.audit import Support

if TYPE_CHECKING:
    from clientfolio.actions.acquisition import Profile
    from clientfolio.actions.budget import Advice, Assumptions
    from clientfolio.actions.fairness import FairnessReport
    from clientfolio.actions.plan import ActionPlan
    from clientfolio.actions.playbooks import Playbooks
    from clientfolio.store.base import Store

# A range whose top is more than this many times the estimate says nothing a reader can use.
MAX_RANGE_RATIO = 10.0


@dataclass
class Portfolio:
    """Customers, segment memberships, KPIs and the evidence behind them.

    ``customers``: one row per customer with every feature, score and membership;
    ``segments``: (customer_id, segment_kind, segment, as_of) for every kind;
    ``kpis``: per segment size, growth, retention, CLV, AOV, revenue, engagement.
    """

    customers: pd.DataFrame
    segments: pd.DataFrame
    kpis: pd.DataFrame
    as_of: pd.Timestamp
    previous_as_of: pd.Timestamp | None = None
    previous_segments: pd.DataFrame | None = None
    models: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    concentration: pd.DataFrame | None = None
    top20_share: float = float("nan")
    clv_cac: pd.DataFrame | None = None
    clv_cac_by_segment: pd.DataFrame | None = None
    divestment: Any = None
    clusters: Any = None
    personas: pd.DataFrame | None = None
    quadrant_splits: dict[str, float] = field(default_factory=dict)
    forecast: pd.DataFrame | None = None  # lifecycle sizes projected by the Markov chain of the last period
    settings: dict[str, Any] = field(default_factory=dict)
    notes: Notes = field(default_factory=Notes)  # each Note says whether it is for the owner or the method notes
    audit: Any = None
    currency: str = ""
    import_result: Any = None  # ImportResult of the files analyze imported (None: analysed a store as it was)
    # Does the data support forecasts (CLV, P(alive), expected purchases)?  Every output reads this
    # one verdict: below the measured minimum they say so and show the historical view instead.
    support: Support = field(default_factory=lambda: Support(True, "not checked"))
    state: Any = None  # the fitted clientfolio.state.PortfolioState behind these results
    changes: pd.DataFrame | None = None  # the store's change log since the previous analysis (None: first one)
    # What to do (the analyze stage `action_plan`): the ActionPlan, who may be contacted (Reach, read from the store
    # while it was open), and the fairness audit, ideal customer profile and retention advice the report shows
    # (each the result, or a sentence saying why it could not be made).
    actions: Any = None
    reach: Any = None
    insight: dict[str, Any] = field(default_factory=dict)
    # Churn risk and next order (clientfolio.predict.ShopPredictions) when analyze was asked for them, or a
    # sentence saying why they could not be made; None when they were not asked for.
    predictions: Any = None

    # -- plain words ----------------------------------------------------------------------

    def money(self, v: float) -> str:
        """An amount with its currency ("£1,234", "-£12.50"); bare only when the export names no currency."""
        return format_money(v, self.currency)

    def currency_note(self) -> str | None:
        """When the export names no currency: a sentence saying what unit the amounts are in."""
        return None if self.currency.strip() else ("Amounts are in the file's own currency: the export does not "
                                                   "name it.")

    def headline(self) -> list[str]:
        """The executive summary as short sentences a shop owner can act on."""
        c = self.customers
        n = len(c[c["orders"] > 0]) if "orders" in c else len(c)
        lines = []
        stages = c["lifecycle"].value_counts() if "lifecycle" in c else pd.Series(dtype=int)
        line = (f"{n:,} customers bought from you up to {self.as_of:%d %B %Y}; they spent "
                f"{self.money(float(c['revenue'].sum()))} in total")
        metrics = getattr(self.audit, "metrics", None) or {}
        guests, guest_revenue = int(metrics.get("guest_orders") or 0), float(metrics.get("guest_revenue") or 0.0)
        if guests and metrics.get("revenue") is not None:
            line += (f", and {guests:,} guest order{'s' if guests != 1 else ''} without a customer id brought "
                     f"{self.money(guest_revenue)} more ({self.money(float(metrics['revenue']))} in all)")
        lines.append(line + ".")
        if pd.notna(self.top20_share):
            lines.append(f"Your best 20% of customers bring {self.top20_share:.0%} of revenue.")
        lines.extend(self._forecast_lines())
        active = int(stages.get("active", 0) + stages.get("new", 0) + stages.get("reactivated", 0))
        risk = int(stages.get("at risk", 0))
        if len(stages):
            lines.append(f"{active:,} customers are active or new; {risk:,} are at risk of slipping away, "
                         f"and {int(stages.get('lapsed', 0) + stages.get('churned', 0)):,} have lapsed or churned.")
        if "value_tier" in c and "lifecycle" in c and self.support.forecasts:
            vip_risk = c[(c["value_tier"] == "High-Value Regulars") & (c["lifecycle"].isin(["at risk", "lapsed"]))]
            if len(vip_risk):
                lines.append(f"{len(vip_risk):,} of your high-value regulars are at risk or lapsed, worth "
                             f"{self.money(float(vip_risk['clv'].sum()))} if they stay: contact them first.")
        if self.divestment is not None and len(self.divestment.customers):
            d = self.divestment.customers
            lines.append(f"{len(d):,} customers cost more to serve than they bring "
                         f"(together {self.money(float(-d['profit'].sum()))} lost): review their terms.")
        if self.clv_cac is not None and len(self.clv_cac.dropna(subset=["clv_cac"])):
            t = self.clv_cac.dropna(subset=["clv_cac"])
            best, worst = t.iloc[0], t.iloc[-1]
            lines.append(f"Acquisition: {best['channel']} brings customers worth {best['clv_cac']:.1f}x what they "
                         f"cost; {worst['channel']} {worst['clv_cac']:.1f}x (3x or more is commonly called healthy).")
        return lines

    def _forecast_lines(self) -> list[str]:
        """What the customers are expected to be worth -- or, below the minimum data, why that cannot be said."""
        c = self.customers
        if not self.support.forecasts:
            repeat = int((c["orders"] > 1).sum()) if "orders" in c else 0
            aov = float(c["revenue"].sum() / max(float(c["orders"].sum()), 1.0)) if "orders" in c else float("nan")
            return [f"What your customers will be worth, whether each is still active and when they will buy "
                    f"again cannot be estimated from this data ({self.support.reason}); the figures here describe "
                    "the history only.",
                    f"History: {int(c['orders'].sum()):,} orders, {self.money(aov)} per order on average; "
                    f"{repeat:,} of {len(c):,} customers placed more than one order"
                    + (f", {int((c['frequency'] > 0).sum()):,} of them on more than one day."
                       if "frequency" in c and repeat else ".")]
        if "clv" not in c or c["clv"].isna().all():
            return []
        h = self.settings.get("horizon_months", 12)
        total = float(c["clv"].sum())
        line = (f"Over the next {h} months your customers are expected to be worth {self.money(total)} "
                f"({self.settings.get('value_basis', 'revenue')})")
        band = self.settings.get("clv_total_interval")
        if band:
            lo, hi, level, covers = band["low"], band["high"], band["level"], band["covers"]
            if hi > MAX_RANGE_RATIO * max(total, 1e-9):
                line += (f"; the data cannot pin this down (the {level:.0%} range runs past {MAX_RANGE_RATIO:.0f} "
                         "times the estimate), so treat it as an order of magnitude.")
            else:
                line += f"; {level:.0%} range {self.money(lo)} to {self.money(hi)} ({covers})."
        else:
            line += "."
        lines = [line]
        if self.validation.get("tracks_calibration") is False:
            lines.append("Treat forecasts as rough: no purchase model followed your repeat purchases closely over the "
                         "period it was fitted on (see \u201cCan these predictions be trusted?\u201d in the report).")
        return lines

    def summary_text(self) -> str:
        return "\n".join(self.headline())

    # -- what to do (clientfolio.actions) ---------------------------------------------------------

    def playbooks(self, file: str | Path | None = None) -> pd.DataFrame:
        """One row per segment: its size and playbook (service level, offer, channel, angle, cadence, KPI).

        ``file``: the owner's playbooks YAML, merged over the built-in ones (default: the ones
        the analysis used).
        """
        from clientfolio.actions.playbooks import load_playbooks, playbook_table

        pbs = load_playbooks(file) if file is not None else getattr(self.actions, "playbooks", None)
        return playbook_table(self, pbs)

    def plan_actions(self, playbooks: Playbooks | str | Path | None = None, *,
                     store: Store | None = None) -> ActionPlan:
        """The :class:`~clientfolio.actions.plan.ActionPlan`: per segment the playbook, reach and priority.

        ``playbooks``: a file or :class:`~clientfolio.actions.Playbooks` (default: those of the
        analysis); ``store``: read consent and the contact log now (default: as read by analyze).
        """
        from clientfolio.actions.plan import plan_actions

        if playbooks is None and self.actions is not None:
            playbooks = self.actions.playbooks
        return plan_actions(self, playbooks, store=store, reach=None if store is not None else self.reach)

    def fairness(self, attributes: list[str] | None = None, *, min_group: int | None = None,
                 store: Store | None = None) -> FairnessReport:
        """The fairness audit (:func:`~clientfolio.actions.fairness.fairness_audit`) with the plan's service levels.

        Without arguments: the audit made by analyze (if it could be made).
        """
        from clientfolio.actions.fairness import MIN_GROUP, fairness_audit

        cached = self.insight.get("fairness")
        if attributes is None and min_group is None and store is None and cached is not None \
                and not isinstance(cached, str):
            return cached
        levels = self.actions.service_levels() if self.actions is not None else None
        return fairness_audit(self, attributes, service_levels=levels, min_group=min_group or MIN_GROUP, store=store)

    def segment_health(self, kinds: list[str] | None = None) -> pd.DataFrame:
        """Per segment: size, overlap, stability and whether the action plan gives it an action of its own."""
        from clientfolio.actions.health import segment_health

        check = self.actions.has_action if self.actions is not None else None
        return segment_health(self, check, kinds=kinds)

    def ideal_customer_profile(self, *, store: Store | None = None, top_share: float = 0.2,
                               model: bool = False) -> Profile:
        """Which channels, regions and first purchases bring the best customers, with sample sizes.

        Without arguments: the profile made by analyze (it read the first orders from the store).
        """
        from clientfolio.actions.acquisition import ideal_customer_profile

        cached = self.insight.get("profile")
        if store is None and top_share == 0.2 and not model and cached is not None and not isinstance(cached, str):
            return cached
        return ideal_customer_profile(self, store, top_share=top_share, model=model)

    def retention_advice(self, kind: str = "lifecycle", assumptions: Assumptions | None = None) -> Advice:
        """Retention spend per segment against CLV:CAC per acquisition channel, with every assumption stated."""
        from clientfolio.actions.budget import retention_vs_acquisition

        return retention_vs_acquisition(self, kind, assumptions)

    # -- outputs ----------------------------------------------------------------------------

    def report(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (works offline)."""
        from clientfolio.report import write_report

        return write_report(self, Path(path))

    def to_file(self, path: str | Path) -> Path:
        """Write the customers table (every score and membership) as CSV or Parquet (by suffix).

        The CSV is safe to open in a spreadsheet: text starting with a formula character is
        prefixed with ``'`` and line breaks are quoted (see :mod:`clientfolio.core.safecsv`).
        """
        p = Path(path)
        if p.suffix == ".parquet":
            table = self.customers.copy(deep=False)
            table.attrs = {}  # in-memory notes (the cut-off as a Timestamp) are not file metadata
            table.to_parquet(p, index=False)
        else:
            from clientfolio.core.safecsv import write_frame

            write_frame(self.customers, p)
        return p

    def _repr_html_(self) -> str:
        # Channel and segment names come from the shop's data: escaped, like everything a page shows.
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.headline())
        sizes = self.segments.groupby(["segment_kind", "segment"]).size().rename("customers").reset_index()
        return (f"<h3>clientfolio portfolio as of {self.as_of:%d %b %Y}</h3><ul>{items}</ul>"
                f"<details><summary>segment sizes</summary>{sizes.to_html(index=False)}</details>")

    def __repr__(self) -> str:
        return (f"Portfolio(as_of={self.as_of:%Y-%m-%d}, customers={len(self.customers):,}, "
                f"segment_kinds={self.segments['segment_kind'].nunique()})")
