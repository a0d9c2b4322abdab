"""The dashboard: server-rendered pages under /dashboard for shop owners, signed in with an API key.

``CLIENTFOLIO_SESSION_SECRET`` (32+ characters) signs the session cookies; without it a random
secret is made at start-up, so a restart signs everyone out.  Pages: pages.py; what they read:
data.py; sign-in, cookies and CSRF: session.py; Jinja2 templates (autoescaped) and CSS/JS are
served from this package (plotly.js from the installed plotly package: no CDN, works offline).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Mount the dashboard's pages and static files on the service's app."""
    from clientfolio.service.dashboard.pages import router
    from clientfolio.service.dashboard.session import new_secret

    app.state.dashboard_secret = new_secret()
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=Path(__file__).parent / "static"), name="dashboard-static")


__all__ = ["install"]
