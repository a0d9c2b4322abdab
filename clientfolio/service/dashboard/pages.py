"""The dashboard's routes under /dashboard: sign-in, then one server-rendered page per question."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape

from clientfolio.core.errors import ClientfolioError
from clientfolio.service.auth import allows
from clientfolio.service.dashboard import data, session
from clientfolio.service.deps import Ctx
from clientfolio.service.errors import ApiError

HERE = Path(__file__).parent
router = APIRouter(prefix="/dashboard", include_in_schema=False)
env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
NAV = [("overview", "Overview", "/dashboard/"), ("segments", "Segments", "/dashboard/segments"),
       ("playbooks", "Playbooks", "/dashboard/playbooks"), ("exports", "Exports", "/dashboard/exports"),
       ("experiments", "Experiments", "/dashboard/experiments"), ("webhooks", "Webhooks", "/dashboard/webhooks"),
       ("checkup", "Data check-up", "/dashboard/checkup")]


def _missing(v: Any) -> bool:
    """Nothing to show: None, an undefined template value, NaN or an empty string."""
    return v is None or isinstance(v, Undefined) or v == "" or (isinstance(v, float) and v != v)


def _num(v: Any, decimals: int = 0) -> str:
    if _missing(v):
        return "–"
    return f"{float(v):,.{decimals}f}" if decimals else f"{round(float(v)):,}"


def _pct(v: Any, decimals: int = 0) -> str:
    return "–" if _missing(v) else f"{float(v):.{decimals}%}"


def _date(v: Any, with_time: bool = False) -> str:
    if _missing(v):
        return "–"
    t = pd.Timestamp(v)
    if t is pd.NaT:
        return "–"
    return f"{t:%d %b %Y %H:%M}" if with_time else f"{t:%d %b %Y}"


env.filters.update(num=_num, pct=_pct, date=_date, money=lambda v, m="": "–" if _missing(v) else data.fmt_money(v, m),
                   url=lambda v: quote(str(v), safe=""))


def secret(request: Request) -> bytes:
    return request.app.state.dashboard_secret


def render(request: Request, template: str, status: int = 200, ctx: Ctx | None = None,
           sess: session.Session | None = None, **values: Any) -> HTMLResponse:
    """A page with the navigation, the signed-in workspace and the CSRF token; never cached."""
    html = env.get_template(template).render(
        nav=NAV, workspace=ctx.workspace if ctx else None, scope=ctx.key.scope if ctx else None,
        csrf=session.csrf_token(secret(request), sess) if sess else None, **values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP,
                                                           "X-Content-Type-Options": "nosniff",
                                                           "Referrer-Policy": "same-origin"})


def signed_in(request: Request) -> tuple[Ctx, session.Session] | None:
    """The page's workspace context from the session cookie (None: not signed in, or the key was revoked)."""
    svc = request.app.state.service
    sess = session.decode(secret(request), request.cookies.get(session.COOKIE))
    if sess is None:
        return None
    info = session.key_info(svc.registry, sess.key_id)
    if info is None:
        return None
    svc.limiter.take(info.key_id)
    held = svc.registry.store_for(info)
    return Ctx(info, held, svc.files_for(held.workspace), svc), sess


def to_signin(request: Request) -> RedirectResponse:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    r = RedirectResponse("/dashboard/signin?next=" + quote(nxt, safe=""), status_code=303)
    r.delete_cookie(session.COOKIE, path=session.PATH)
    return r


def page(request: Request, name: str, template: str, build: Callable[[Ctx], dict[str, Any]]) -> Response:
    """Render `template` with what `build` reads, for a signed-in session; problems become a plain page."""
    try:
        got = signed_in(request)
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, title="Please wait", message=exc.detail)
    if got is None:
        return to_signin(request)
    ctx, sess = got
    try:
        values = build(ctx)
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, ctx=ctx, sess=sess, current=name,
                      title="Not found" if exc.status == 404 else "Something is not right", message=exc.detail)
    except ClientfolioError as exc:
        return render(request, "error.html", status=400, ctx=ctx, sess=sess, current=name,
                      title="Something is not right", message=str(exc))
    return render(request, template, ctx=ctx, sess=sess, current=name, **values)


# -- sign-in -------------------------------------------------------------------------------------------
@router.get("/signin")
def signin_form(request: Request, next: str = "/dashboard/") -> Response:
    pre = secrets.token_urlsafe(16)
    r = render(request, "signin.html", token=session.signin_token(secret(request), pre), next=_safe_next(next),
               error=None)
    _set_cookie(request, r, session.PRE_COOKIE, pre, 1800)
    return r


def _safe_next(target: str) -> str:
    """Only a dashboard path of this site (no open redirect)."""
    ok = target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target
    return target if ok or target == "/dashboard" else "/dashboard/"


def _set_cookie(request: Request, r: Response, name: str, value: str, max_age: int) -> None:
    r.set_cookie(name, value, max_age=max_age, path=session.PATH, httponly=True, samesite="strict",
                 secure=request.url.scheme == "https")


@router.post("/signin")
def signin(request: Request, key: str = Form("", max_length=200), csrf: str = Form("", max_length=200),
           next: str = Form("/dashboard/", max_length=500)) -> Response:
    svc = request.app.state.service
    pre = request.cookies.get(session.PRE_COOKIE)
    if (not pre or not session.same_origin(request)
            or not session.check_token(session.signin_token(secret(request), pre), csrf)):
        return render(request, "error.html", status=403, title="Please sign in again",
                      message="This form was not sent from the sign-in page of this site (or it expired). "
                              "Open the sign-in page and try again.")
    try:
        svc.limiter.take("signin:" + (request.client.host if request.client else "?"))
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, title="Please wait", message=exc.detail)
    info = svc.registry.resolve(key.strip())
    if info is None:
        fresh = secrets.token_urlsafe(16)
        r = render(request, "signin.html", status=401, token=session.signin_token(secret(request), fresh),
                   next=_safe_next(next), error="That key was not recognised. Check it was copied whole, and that "
                                                "it has not been revoked (`clientfolio key list`).")
        _set_cookie(request, r, session.PRE_COOKIE, fresh, 1800)
        return r
    r = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, r, session.COOKIE, session.encode(secret(request), info.key_id), session.MAX_AGE)
    r.delete_cookie(session.PRE_COOKIE, path=session.PATH)
    return r


def _posted(request: Request, csrf: str) -> tuple[Ctx, session.Session] | Response:
    """The signed-in context of a POST whose CSRF token and origin check out, else the page to show."""
    try:
        got = signed_in(request)
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, title="Please wait", message=exc.detail)
    if got is None:
        return to_signin(request)
    ctx, sess = got
    if not session.same_origin(request) or not session.check_token(session.csrf_token(secret(request), sess), csrf):
        return render(request, "error.html", status=403, ctx=ctx, sess=sess, title="Form refused",
                      message="This form did not come from a page of this dashboard (its security token is "
                              "missing or wrong). Reload the page and send it again.")
    return ctx, sess


@router.post("/signout")
def signout(request: Request, csrf: str = Form("", max_length=200)) -> Response:
    got = _posted(request, csrf)
    if isinstance(got, Response):
        return got
    r = RedirectResponse("/dashboard/signin", status_code=303)
    r.delete_cookie(session.COOKIE, path=session.PATH)
    return r


# -- pages -----------------------------------------------------------------------------------------------
@router.get("/")
def overview(request: Request) -> Response:
    return page(request, "overview", "overview.html", data.overview)


@router.get("/segments")
def segments(request: Request) -> Response:
    return page(request, "segments", "segments.html", data.segments)


@router.get("/segments/{kind}/{name}")
def segment(request: Request, kind: str, name: str, after: str | None = None) -> Response:
    if len(kind) > 100 or len(name) > 200 or (after is not None and len(after) > 200):
        return Response("too long", status_code=414)
    return page(request, "segments", "segment.html", lambda ctx: data.segment(ctx, kind, name, after))


@router.get("/customers/{customer_id}")
def customer(request: Request, customer_id: str) -> Response:
    if len(customer_id) > 200:
        return Response("too long", status_code=414)
    return page(request, "segments", "customer.html", lambda ctx: data.customer(ctx, customer_id))


@router.get("/playbooks")
def playbooks(request: Request) -> Response:
    return page(request, "playbooks", "playbooks.html", data.playbooks)


@router.get("/exports")
def exports(request: Request) -> Response:
    return page(request, "exports", "exports.html", lambda ctx: {**data.exports(ctx), "made": None})


@router.post("/exports")
def make_export(request: Request, csrf: str = Form("", max_length=200), segment: str = Form(..., max_length=320),
                target: str = Form("csv", max_length=40)) -> Response:
    from clientfolio.service.routes.actions import create_export
    from clientfolio.service.schemas import ExportIn

    got = _posted(request, csrf)
    if isinstance(got, Response):
        return got
    ctx, sess = got
    if not allows(ctx.key.scope, "write"):
        return render(request, "error.html", status=403, ctx=ctx, sess=sess, current="exports",
                      title="Not allowed with this key",
                      message=f"You signed in with a {ctx.key.scope} key; writing an export needs a write key "
                              "(`clientfolio key create --scope write`).")
    kind, _, name = segment.partition("|")

    def build(c: Ctx) -> dict[str, Any]:
        made = create_export(c, ExportIn(segment=name, segment_kind=kind or None, target=target))
        return {**data.exports(c), "made": made}

    try:
        values = build(ctx)
    except ClientfolioError as exc:
        return render(request, "error.html", status=getattr(exc, "status", 400), ctx=ctx, sess=sess,
                      current="exports", title="The export was not written", message=str(exc))
    return render(request, "exports.html", status=201, ctx=ctx, sess=sess, current="exports", **values)


@router.get("/exports/{export_id}/download")
def download(request: Request, export_id: str) -> Response:
    from clientfolio.service.routes.actions import download_export

    got = signed_in(request)
    if got is None:
        return to_signin(request)
    if not export_id.startswith("exp_") or len(export_id) != 20 or not export_id[4:].isalnum():
        return Response("no such export", status_code=404)
    try:
        res: FileResponse = download_export(got[0], export_id)
    except ApiError as exc:
        return Response(exc.detail, status_code=exc.status)
    return res


@router.get("/experiments")
def experiments(request: Request) -> Response:
    return page(request, "experiments", "experiments.html", data.experiments)


@router.get("/experiments/{name}")
def experiment(request: Request, name: str) -> Response:
    return page(request, "experiments", "experiment.html", lambda ctx: {"x": data.experiment(ctx, name[:200])})


@router.get("/webhooks")
def webhooks(request: Request) -> Response:
    return page(request, "webhooks", "webhooks.html", data.webhooks)


@router.get("/checkup")
def checkup(request: Request) -> Response:
    return page(request, "checkup", "checkup.html", data.checkup)


@router.get("/plotly.js")
def plotly_js() -> Response:
    """plotly.js from the installed plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return Response(get_plotlyjs(), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
