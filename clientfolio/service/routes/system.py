"""Health (no key), the portfolio's status, refit and sweep (admin), and the periodic jobs."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Request

from clientfolio.service.deps import AdminCtx, ReadCtx, records
from clientfolio.service.schemas import RefitIn, SweepIn

router = APIRouter(tags=["service"])


@router.get("/health", summary="Is the service up (no key needed)")
def health(request: Request) -> dict:
    """`ok` when the service answers and its registry database is reachable; says nothing about any shop."""
    svc = request.app.state.service
    svc.registry.workspaces()
    from clientfolio.service.app import API_VERSION

    return {"status": "ok", "api_version": API_VERSION}


@router.get("/status", summary="The shop's portfolio: how old, how well it tracks, refit advice")
def status(ctx: ReadCtx) -> dict:
    with ctx.session() as st:
        if st.load_state() is None:
            n = int(st.query("SELECT count(*) AS n FROM transactions")["n"].iloc[0])
            return {"fitted": False, "transactions": n,
                    "advice": "import orders (POST /v1/imports), then POST /v1/refit to fit the portfolio"}
        h = ctx.live(st).health()
    return {"fitted": True, **{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in h.items()}}


def _changes_summary(result) -> dict:  # noqa: ANN001 - LiveResult
    ch = result.changes
    by = ch.groupby(["segment_kind", "cause"]).size().reset_index(name="changes") if len(ch) else None
    return {"changes": int(len(ch)), "customers_touched": int(result.customers_touched), "outbox": int(result.outbox),
            "by_kind": records(by), "notes": [str(n) for n in result.notes]}


@router.post("/refit", summary="Fit the portfolio anew (admin)")
def refit(ctx: AdminCtx, body: RefitIn | None = None) -> dict:
    """The first time: analyse the shop (fit, apply, write the report).  After that: refit, recording the
    moves the new state causes as cause "refit", apart from behaviour's."""
    import clientfolio
    from clientfolio.actions.outputs import record_output
    from clientfolio.pipeline import refit as refit_store

    cutoff = pd.Timestamp(body.cutoff) if body is not None and body.cutoff else None
    with ctx.session() as st:
        if st.load_state() is None:
            pf = clientfolio.analyze(store=st, cutoff=cutoff)
            report = pf.report(ctx.files / "report.html")
            record_output(st, report, "report", len(pf.customers))
            return {"first_fit": True, "customers": int(len(pf.customers)), "as_of": pd.Timestamp(pf.as_of).isoformat(),
                    "report": "/v1/report"}
        result = refit_store(st, cutoff=cutoff)
    return {"first_fit": False, **_changes_summary(result)}


@router.post("/sweep", summary="Apply the moves time alone causes (admin)")
def sweep(ctx: AdminCtx, body: SweepIn | None = None) -> dict:
    """Bring every due customer to `as_of` (default today, UTC): P(alive) decays, customers turn at risk or lapse."""
    day = pd.Timestamp(body.as_of) if body is not None and body.as_of else \
        pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    with ctx.session() as st:
        live = ctx.live(st)
        pending = live.catch_up(day)
        result = live.sweep(day)
    out = _changes_summary(result)
    out["as_of"] = day.isoformat()
    out["pending_import_changes"] = int(len(pending.changes))
    return out


@router.get("/jobs", summary="The periodic jobs of this shop and their last runs (admin)")
def jobs(ctx: AdminCtx) -> dict:
    return {"jobs": ctx.service.scheduler.status(ctx.workspace)}
