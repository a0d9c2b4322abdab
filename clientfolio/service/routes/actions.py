"""Playbooks, exports (written for a segment, then downloaded), experiments and the HTML report."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, HTMLResponse

from clientfolio.service.deps import ReadCtx, WriteCtx, records
from clientfolio.service.errors import NotFound
from clientfolio.service.schemas import ExportIn

router = APIRouter(tags=["actions"])
ExportId = Annotated[str, Path(pattern=r"^exp_[0-9a-f]{16}$", description="An id from POST /v1/exports")]


@router.get("/playbooks", summary="The playbook of every segment present")
def list_playbooks(ctx: ReadCtx) -> dict:
    """Per segment: size, service level, offer, channel, message angle, cadence, KPI and levers."""
    from clientfolio.actions.members import current_members
    from clientfolio.actions.playbooks import playbook_table

    with ctx.session() as st:
        members = current_members(st)
        table = playbook_table(members) if len(members) else None
    return {"playbooks": records(table)}


def _exports_dir(ctx: ReadCtx):  # noqa: ANN202
    d = ctx.files / "exports"
    d.mkdir(parents=True, exist_ok=True)
    return d


@router.post("/exports", status_code=201, summary="Write an export of a segment")
def create_export(ctx: WriteCtx, body: ExportIn) -> dict:
    """Write the segment's current members in a tool's import layout.

    Consent rules apply: customers without marketing consent (or with an invalid e-mail) are
    left out of marketing exports, counted by reason.  Download the file from `download`.
    """
    from clientfolio.actions.export_layouts import LAYOUTS
    from clientfolio.actions.exports import ExportError, export_segment

    if body.target not in LAYOUTS:
        raise ExportError(f"unknown export target {body.target!r}; use one of {', '.join(LAYOUTS)}")
    export_id = "exp_" + secrets.token_hex(8)
    ext = "parquet" if LAYOUTS[body.target].parquet else "csv"
    folder = _exports_dir(ctx)
    path = folder / f"{export_id}.{ext}"
    with ctx.session() as st:
        res = export_segment(st, body.segment, kind=body.segment_kind, target=body.target, out=path,
                             since=pd.Timestamp(body.since) if body.since else None, pseudonymise=body.pseudonymise)
    meta = {"export_id": export_id, "file": path.name, "target": res.target, "segment_kind": res.segment_kind,
            "segment": res.segment, "rows": res.rows, "members": res.members, "left_out": res.left_out,
            "pseudonymised": res.pseudonymised, "notes": [str(n) for n in res.notes],
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(), "download": f"/v1/exports/{export_id}/download"}
    (folder / f"{export_id}.json").write_text(json.dumps(meta))
    return meta


@router.get("/exports", summary="Exports written for this shop")
def list_exports(ctx: ReadCtx) -> dict:
    """Every export still on the server, newest first."""
    metas = [json.loads(p.read_text()) for p in _exports_dir(ctx).glob("exp_*.json")]
    return {"exports": sorted(metas, key=lambda m: m["created_at"], reverse=True)}


def _export(ctx: ReadCtx, export_id: str) -> dict:
    p = _exports_dir(ctx) / f"{export_id}.json"
    if not p.exists():
        raise NotFound(f"no export {export_id!r}")
    return json.loads(p.read_text())


@router.get("/exports/{export_id}", summary="One export's details")
def get_export(ctx: ReadCtx, export_id: ExportId) -> dict:
    return _export(ctx, export_id)


@router.get("/exports/{export_id}/download", summary="Download an export file",
            response_class=FileResponse, responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}})
def download_export(ctx: ReadCtx, export_id: ExportId) -> FileResponse:
    meta = _export(ctx, export_id)
    path = _exports_dir(ctx) / meta["file"]
    if not path.exists():
        raise NotFound(f"no export {export_id!r}")
    media = "text/csv" if path.suffix == ".csv" else "application/octet-stream"
    return FileResponse(path, media_type=media, filename=f"{meta['target']}-{meta['segment_kind']}-{export_id}"
                                                         f"{path.suffix}")


@router.get("/experiments", summary="Experiments with the size of each arm")
def list_experiments(ctx: ReadCtx) -> dict:
    from clientfolio.actions.experiments import experiments

    with ctx.session() as st:
        return {"experiments": records(experiments(st))}


@router.get("/experiments/{name}", summary="An experiment's read-out")
def get_experiment(ctx: ReadCtx, name: Annotated[str, Path(min_length=1, max_length=200)]) -> dict:
    """Per metric: treated vs held out, difference with its interval, p-value and a verdict in words."""
    from clientfolio.actions.experiments import experiments, read_out

    with ctx.session() as st:
        known = experiments(st)
        if name not in set(known["name"].astype(str)):
            raise NotFound(f"no experiment {name!r}")
        r = read_out(st, name)
    return {"name": name, "as_of": pd.Timestamp(r.as_of).isoformat(), "complete": r.complete,
            "results": records(r.table), "text": r.text}


@router.get("/report", summary="The HTML report", response_class=HTMLResponse)
def get_report(ctx: ReadCtx) -> HTMLResponse:
    """The shop's latest HTML report (written by the first fit through the service or by `clientfolio analyze`)."""
    from pathlib import Path as P

    from clientfolio.actions.outputs import recorded_outputs

    with ctx.session() as st:
        outs = recorded_outputs(st)
    outs = outs[(outs["kind"] == "report") & (outs["pseudonymised"] != True)]  # noqa: E712
    for path in reversed(list(outs["path"])):
        p = P(path)
        if p.exists():
            return HTMLResponse(p.read_text(encoding="utf-8"))
    raise NotFound("no report yet: POST /v1/refit with an admin key fits the portfolio and writes one")
