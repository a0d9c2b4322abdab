"""Reports: a self-contained HTML report with charts (plotting lives here, never in models/)."""

from clientfolio.report.html import render, write_report

__all__ = ["render", "write_report"]
