"""What a shop owner reads: no optimiser words outside the method notes, each note once, money with its currency.

The inputs are small files in tests/data/trust/: a 2-customer shop whose purchase model needs the
optimiser's fallback (its messages carried Hessian, penalizer_coef and parameter dumps into the
owner's notes), and an export that names no currency (its CLV axis read "value ()" and its bands
"1.0–1.0").
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from clientfolio.core.notes import Notes, audience_of
from clientfolio.state.models import fit_purchase_model as _fit_purchase_model
from clientfolio.report import charts
from tests.conftest import DATA, ROOT

JARGON = re.compile(r"hessian|penali[sz]er|log[- ]likelihood|\bBIC\b|silhouette|gradient|optimi[sz]er|"
                    r"initial_params|max_iter|could not be fitted as is|\b[a-z]{1,5}=-?\d|\d\.?\d*e[+-]\d+", re.I)
MONEY_CELL = re.compile(r"<td class='num money'>([^<]*)</td>")


def owner_and_method_text(report: Path) -> tuple[str, str]:
    """The report's visible text split at the method notes (scripts and styles dropped)."""
    page = report.read_text(encoding="utf-8")
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    owner, _, method = page.partition("<section id='method'>")
    text = lambda s: html.unescape(re.sub(r"<[^>]+>", " ", s))  # noqa: E731
    return text(owner), text(method)


def test_optimiser_words_stay_in_the_method_notes(tiny_shop_report) -> None:
    path, pf = tiny_shop_report
    owner, _ = owner_and_method_text(path)
    assert not JARGON.findall(owner), JARGON.findall(owner)
    assert not [n for n in pf.notes if audience_of(n) == "owner" and JARGON.search(n)]
    assert "<details class='method'>" in path.read_text(encoding="utf-8")  # collapsed until opened
    # A purchase model that needs the optimiser's fallback (no repeat buyers at all): the detail is kept
    # for whoever checks, in the method notes; the owner is told what it means, in plain words.
    notes = Notes()
    no_repeats = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": np.linspace(1, 30, 200)})
    _fit_purchase_model(no_repeats, "bgnbd", notes)
    method, plain = " ".join(notes.for_method()), " ".join(notes.for_owner())
    assert "penalizer_coef=0.001" in method and ("Hessian" in method or "edge" in method or "identified" in method)
    assert plain and not JARGON.search(plain), plain


def test_each_note_is_said_once(tiny_shop_report) -> None:
    _, pf = tiny_shop_report
    owner = [n for n in pf.notes if audience_of(n) == "owner"]
    assert len(owner) == len(set(owner))
    assert sum("category preference" in n for n in owner) == 1  # features and segments both noticed it
    assert sum("no events" in n or "skipped: no events" in n for n in owner) == 1
    assert not any("rows were rejected" in n for n in pf.notes)  # the data check-up says that, once


def test_money_cells_and_headline_carry_the_currency(tiny_shop_report) -> None:
    path, pf = tiny_shop_report
    cells = MONEY_CELL.findall(path.read_text(encoding="utf-8"))
    assert cells and all(re.match(r"-?₹\d", c) for c in cells), cells
    summary = " ".join(pf.headline())
    amounts = re.findall(r"(?:spent|worth|between|and) (-?\S*\d[\d,.]*)", summary)
    assert amounts and all("₹" in a for a in amounts if not a.replace(",", "").isdigit() or "₹" in a)
    assert all(a.startswith(("₹", "-₹")) for a in re.findall(r"(?:spent|worth|between) (\S+)", summary))


def test_unknown_currency_is_named_never_empty(no_currency_report) -> None:
    path, pf = no_currency_report
    page = path.read_text(encoding="utf-8")
    assert pf.currency == ""
    chart_texts = [json.loads(f'"{t}"') for t in re.findall(r'"text":"((?:[^"\\]|\\.)*)"', page)]
    assert any("the file's currency" in t for t in chart_texts)  # the CLV and portfolio axes name the unit
    assert not [t for t in chart_texts if re.search(r"\(\s*\)", t)]  # never "value ()"
    owner = owner_and_method_text(path)[0]
    assert "Amounts are in the file's own currency" in owner and "()" not in owner


def test_value_bands_differ_and_spread_over_small_values() -> None:
    clv = pd.Series(np.geomspace(0.004, 1.5, 2954))  # Olist-like: every CLV below 2
    edges = charts.clv_bands(clv)
    labels = charts._band_labels(edges, "")
    assert len(labels) >= 10 and len(set(labels)) == len(labels)
    assert not any(re.fullmatch(r"([\d.,]+)–\1", lab) for lab in labels)  # no "1.0–1.0"
    counts, _ = np.histogram(clv, bins=edges)
    assert counts.max() < 0.3 * len(clv)  # not all in the first band
    assert charts._band_labels(charts.clv_bands(pd.Series([120.0, 4500.0, 18000.0])), "£")[-1].startswith("£")


def test_terminal_summary_has_no_jargon_and_money_with_currency(tmp_path: Path) -> None:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "clientfolio.cli", "analyze",
                          str(DATA / "trust" / "tiny_shop_2_customers.csv"), "--store", str(tmp_path / "s.duckdb"),
                          "--out", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    assert not JARGON.findall(out.stdout), JARGON.findall(out.stdout)
    assert "they spent ₹100,261 in total" in out.stdout
    notes = [line.strip() for line in out.stdout.splitlines() if line.strip().startswith("note:")]
    assert notes and len(notes) == len(set(notes))
    assert "Method notes" in out.stdout
