"""The dashboard: server-rendered pages under /dashboard for shop owners, signed in with an API key."""

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
