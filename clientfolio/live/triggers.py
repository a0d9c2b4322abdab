"""Subscriptions to segment entries and exits, and the outbox rows a batch of changes produces.

A subscription file is a YAML list (or a mapping with one key ``triggers`` holding the list)::

    - segment_kind: lifecycle
      segment: at risk
      on: entered            # entered | left | both
      action: winback_email
      only_with_consent: true   # optional, default true: customers without consent for the purpose get nothing
      purpose: marketing        # optional, default marketing (or personalisation, nudges): the consent it needs
      channel: email            # optional, default email (sms, phone, post, push, any): the channel it uses
      on_refit: false           # optional, default false (see below)

Consent is decided by :func:`clientfolio.store.consent.consent_status` for each subscription's
purpose and channel, so a customer who consented to e-mail marketing but withdrew
personalisation gets no personalisation message.  Subscriptions that need consent and whose
purpose is promotion (marketing, nudges) also respect the contact cap
(:mod:`clientfolio.store.contacts`): a customer at the cap gets no message, and is counted.

Booleans are YAML 1.2's ``true``/``false`` only: ``on``/``yes``/``no`` are words, so the key
``on:`` stays a key and a segment called ``No`` stays a name.

Refits.  A customer's segment moves for two reasons, recorded apart in the change log (``cause``):
their own behaviour or the passing of time under the same fitted state, or a refit of the state.
A refit moves thresholds (the RFM cut points, the tier lines, the quadrant medians) for the
whole base at once; nobody did anything, yet thousands of customers can change segment in one
go.  Sending each of them a "we miss you" e-mail because the median moved would be wrong, so a
change caused by a refit fires a subscription only when it says ``on_refit: true`` (for
example a CRM sync that must mirror every membership).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from clientfolio.core.errors import ClientfolioError, SchemaError
from clientfolio.live.kinds import OPEN_KINDS, SEGMENT_NAMES
from clientfolio.store.contacts import CAPPED_PURPOSES
from clientfolio.store.schema import CHANNELS, PURPOSES

__all__ = ["CHANGE_COLUMNS", "OUTBOX_COLUMNS", "OutboxPlan", "Trigger", "TriggerError", "load_triggers", "outbox_rows",
           "plan_outbox"]

On = Literal["entered", "left", "both"]
REFIT = "refit"
CHANGE_COLUMNS = ("customer_id", "segment_kind", "from_segment", "to_segment", "changed_at", "cause", "reason")
OUTBOX_COLUMNS = ("change_index", "customer_id", "segment_kind", "segment", "transition", "action", "payload")
REQUIRED = ("segment_kind", "segment", "on", "action")
OPTIONAL = ("only_with_consent", "on_refit", "purpose", "channel")
FLAGS = ("only_with_consent", "on_refit")
MAX_FILE_CHARS = 1_000_000
MAX_TRIGGERS = 10_000


class TriggerError(ClientfolioError, ValueError):
    """A subscription file or list is not valid: names the file, the entry, what is wrong and how to fix it."""


@dataclass(frozen=True)
class Trigger:
    """One subscription: run `action` when a customer enters and/or leaves `segment` of `segment_kind`."""

    segment_kind: str
    segment: str
    on: On
    action: str
    only_with_consent: bool = True
    on_refit: bool = False
    purpose: str = "marketing"
    channel: str = "email"

    @property
    def capped(self) -> bool:
        """Does a message of this subscription count towards (and stop at) the contact cap?"""
        return self.only_with_consent and self.purpose in CAPPED_PURPOSES

    def as_dict(self) -> dict[str, Any]:
        """The subscription as a list entry of a subscription file."""
        return {"segment_kind": self.segment_kind, "segment": self.segment, "on": self.on, "action": self.action,
                "only_with_consent": self.only_with_consent, "on_refit": self.on_refit, "purpose": self.purpose,
                "channel": self.channel}

    def transitions(self) -> tuple[str, ...]:
        """The transitions this subscription fires on: ("entered",), ("left",) or both."""
        return ("entered", "left") if self.on == "both" else (self.on,)


# ----------------------------------------------------------------------------- reading

class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 booleans (only true/false) that refuses a key written twice."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is written twice",
                                                    key_node.start_mark)
        if isinstance(key, (str, int, float, bool)):
            seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _looks_like_path(s: str) -> bool:
    if "\n" in s or "\x00" in s or len(s) > 1024:
        return False
    if s.strip().lower().endswith((".yaml", ".yml", ".json")):
        return True
    try:
        return Path(s).is_file()
    except (OSError, ValueError):
        return False


def _read(source: Any) -> tuple[Any, str]:
    """(document, name to quote in errors) from a path, YAML text or an already-read list."""
    if isinstance(source, (list, tuple, Mapping)):
        return source, "triggers"
    if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
        name = str(source)
        try:
            path = Path(source)
            if path.stat().st_size > MAX_FILE_CHARS:
                raise TriggerError(f"{name}: the file is larger than {MAX_FILE_CHARS:,} bytes; a subscription "
                                   "file lists a few subscriptions: check that this is the right file")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TriggerError(f"{name}: cannot read the subscription file ({exc.strerror or exc}); "
                               "check the path") from None
        except UnicodeDecodeError:
            raise TriggerError(f"{name}: the file is not UTF-8 text; save it as UTF-8") from None
    elif isinstance(source, str):
        name, text = "triggers", source
        if len(text) > MAX_FILE_CHARS:
            raise TriggerError(f"triggers: the text is longer than {MAX_FILE_CHARS:,} characters")
    else:
        raise TriggerError(f"load_triggers: expected a file path, YAML text or a list of subscriptions, "
                           f"got {type(source).__name__}")
    try:
        return yaml.load(text.lstrip("\ufeff"), Loader=_Loader), name  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise TriggerError(f"{name}: {where}not valid YAML: {what}") from None


# ----------------------------------------------------------------------------- checking

def _suggest(word: str, options: Iterable[str]) -> str:
    options = list(options)
    lower = {o.lower(): o for o in options}
    if word.lower() in lower:
        return f" (did you mean {lower[word.lower()]!r}? names are case-sensitive)"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _entry(raw: Any, where: str, names: Mapping[str, Sequence[str]]) -> tuple[Trigger | None, list[str]]:
    """A Trigger from one list entry, or the problems found in it (all of them, not just the first)."""
    if not isinstance(raw, Mapping):
        return None, [f"{where}: expected a mapping such as {{segment_kind: lifecycle, segment: at risk, "
                      f"on: entered, action: winback_email}}, got {type(raw).__name__} {raw!r}"]
    problems = []
    allowed = REQUIRED + OPTIONAL
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}: unknown key {str(key)!r}{_suggest(str(key), allowed)}; "
                            f"allowed keys are {', '.join(allowed)}")
    for key in REQUIRED:
        if key not in raw:
            problems.append(f"{where}: the key {key!r} is missing; every subscription needs "
                            f"{', '.join(REQUIRED)}")
    values: dict[str, Any] = {}
    for key in REQUIRED:
        v = raw.get(key)
        if key not in raw:
            continue
        if not isinstance(v, str) or not v.strip():
            problems.append(f"{where}: {key!r} must be a non-empty text, got {v!r}"
                            + (" (quote it in YAML: 'No', '2024')" if not isinstance(v, str) and v is not None else ""))
            continue
        values[key] = v.strip() if key != "segment" else v
    for key in FLAGS:
        if key in raw:
            if not isinstance(raw[key], bool):
                problems.append(f"{where}: {key!r} must be true or false, got {raw[key]!r}")
            else:
                values[key] = raw[key]
    for key, options in (("purpose", PURPOSES), ("channel", CHANNELS)):
        if key in raw:
            v = raw[key]
            if isinstance(v, str) and v.strip() in options:
                values[key] = v.strip()
            else:
                problems.append(f"{where}: {key!r} must be one of {', '.join(options)}, got {v!r}"
                                + (_suggest(v, options) if isinstance(v, str) else ""))
    kind = values.get("segment_kind")
    if kind is not None and kind not in names and kind not in OPEN_KINDS:
        problems.append(f"{where}: unknown segment_kind {kind!r}{_suggest(kind, list(names) + list(OPEN_KINDS))}; "
                        f"use one of {', '.join(sorted(set(names) | set(OPEN_KINDS)))}")
    elif kind is not None and kind in names and "segment" in values and values["segment"] not in names[kind]:
        known = names[kind]
        problems.append(f"{where}: {kind} has no segment {values['segment']!r}{_suggest(values['segment'], known)}; "
                        f"its segments are {', '.join(repr(n) for n in known)}")
    on = values.get("on")
    if on is not None and on not in ("entered", "left", "both"):
        problems.append(f"{where}: 'on' must be entered, left or both, got {on!r}")
    if problems:
        return None, problems
    return Trigger(segment_kind=values["segment_kind"], segment=values["segment"], on=values["on"],
                   action=values["action"], only_with_consent=values.get("only_with_consent", True),
                   on_refit=values.get("on_refit", False), purpose=values.get("purpose", "marketing"),
                   channel=values.get("channel", "email")), []


def load_triggers(source: str | Path | Sequence[Mapping[str, Any]],
                  known_segments: Mapping[str, Sequence[str]] | None = None) -> list[Trigger]:
    """Subscriptions from a YAML file, YAML text, or a list of mappings, checked strictly.

    Every entry is checked (unknown or missing keys, types, ``on``, the segment kind, and the
    segment name for kinds whose names are fixed) and all problems are raised together in one
    :class:`TriggerError`, each as ``<file>: entry <n>: <what is wrong> (<how to fix>)``.
    The same (kind, segment, transition, action) twice is refused: it would send twice.
    ``known_segments`` adds or replaces the names of a kind (a shop with its own RFM grid).
    """
    doc, name = _read(source)
    if isinstance(doc, Mapping):
        extra = [k for k in doc if k != "triggers"]
        if extra or "triggers" not in doc:
            raise TriggerError(f"{name}: expected a list of subscriptions ('- segment_kind: lifecycle ...'), "
                               f"or a mapping with the one key 'triggers'; found the keys "
                               f"{', '.join(repr(str(k)) for k in doc)}")
        doc = doc["triggers"]
    if doc is None:
        return []
    if not isinstance(doc, (list, tuple)):
        raise TriggerError(f"{name}: expected a list of subscriptions, each starting with '- ', "
                           f"got {type(doc).__name__}")
    if len(doc) > MAX_TRIGGERS:
        raise TriggerError(f"{name}: {len(doc):,} subscriptions; the limit is {MAX_TRIGGERS:,}")
    names: dict[str, Sequence[str]] = {**SEGMENT_NAMES, **{k: tuple(v) for k, v in (known_segments or {}).items()}}
    triggers, problems, seen = [], [], {}
    for i, raw in enumerate(doc, start=1):
        trigger, found = _entry(raw, f"{name}: entry {i}", names)
        problems += found
        if trigger is None:
            continue
        for transition in trigger.transitions():
            key = (trigger.segment_kind, trigger.segment, transition, trigger.action)
            if key in seen:
                problems.append(f"{name}: entry {i}: repeats entry {seen[key]} ({trigger.action} when a customer "
                                f"{transition} {trigger.segment_kind} {trigger.segment!r}); it would run twice: "
                                "remove one")
            else:
                seen[key] = i
        triggers.append(trigger)
    if problems:
        raise TriggerError("\n".join(problems))
    return triggers


# ----------------------------------------------------------------------------- outbox

def _segment_or_none(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _consented(v: Any) -> bool:
    """Only a real true is consent: missing, unknown, NaN or any text is not."""
    return isinstance(v, (bool, np.bool_)) and bool(v)


def _iso(v: Any) -> str | None:
    if v is None or v is pd.NA:
        return None
    ts = pd.Timestamp(v)
    return None if pd.isna(ts) else ts.isoformat()


@dataclass
class OutboxPlan:
    """The outbox rows of a batch of changes, and the messages left out, counted by reason."""

    rows: pd.DataFrame
    left_out: dict[str, int] = field(default_factory=dict)


OVER_CAP = "over the contact cap"


def _no_consent(t: Trigger) -> str:
    return f"no consent for {t.purpose} by {t.channel}"


def outbox_rows(changes: pd.DataFrame, triggers: Sequence[Trigger], consent: Mapping[str, bool] | None, *,
                consent_by: Mapping[tuple[str, str], Mapping[str, bool]] | None = None,
                allowance: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The outbox messages a batch of segment changes produces; see :func:`plan_outbox`."""
    return plan_outbox(changes, triggers, consent, consent_by=consent_by, allowance=allowance).rows


def plan_outbox(changes: pd.DataFrame, triggers: Sequence[Trigger], consent: Mapping[str, bool] | None, *,
                consent_by: Mapping[tuple[str, str], Mapping[str, bool]] | None = None,
                allowance: Mapping[str, int] | None = None) -> OutboxPlan:
    """The outbox messages a batch of segment changes produces under the subscriptions.

    A change from A to B is "left A" and "entered B" (a change into or out of no segment is one
    of them).  A subscription matches a transition of its kind and segment; then:

    - ``only_with_consent`` (the default): only customers whose consent is ``True`` get a row;
      missing, unknown or any other value is no consent.  Consent is read from
      ``consent_by[(purpose, channel)]`` (one decision per purpose and channel, from
      :func:`clientfolio.store.consent.consent_map`) when given, else from ``consent``;
    - ``allowance`` (customer -> contacts the cap still allows): capped subscriptions
      (:attr:`Trigger.capped`) use one each, and a customer with none left gets no row;
    - a change with ``cause == "refit"`` gets a row only from subscriptions with ``on_refit``
      (a refit moving thresholds is not something the customer did).

    Rows come in change order, "left" before "entered", subscriptions in file order.
    ``payload`` is JSON text (keys sorted, so equal messages are equal text).  Messages left out
    for consent or the cap are counted under their reason in ``left_out``.
    """
    missing = [c for c in CHANGE_COLUMNS if c not in changes.columns]
    if missing:
        raise SchemaError(f"outbox_rows: the changes have no column(s) {', '.join(missing)}; they need "
                          f"{', '.join(CHANGE_COLUMNS)}")
    by_key: dict[tuple[str, str, str], list[Trigger]] = {}
    for t in triggers:
        for transition in t.transitions():
            by_key.setdefault((t.segment_kind, t.segment, transition), []).append(t)
    consent = consent or {}
    free = None if allowance is None else {str(k): int(v) for k, v in allowance.items()}
    left_out: dict[str, int] = {}

    def leave(reason: str) -> None:
        left_out[reason] = left_out.get(reason, 0) + 1

    rows = []
    # Only changes of a subscribed kind can match: a refit can change every customer's every kind.
    positions = np.flatnonzero(changes["segment_kind"].isin({t.segment_kind for t in triggers}).to_numpy())
    cols = [changes[c].iloc[positions].tolist() for c in CHANGE_COLUMNS]
    for i, cid, kind, was, now, at, cause, reason in zip(positions.tolist(), *cols):
        was, now = _segment_or_none(was), _segment_or_none(now)
        if was == now:
            continue
        refit = _segment_or_none(cause) == REFIT
        for transition, segment in (("left", was), ("entered", now)):
            if segment is None:
                continue
            for t in by_key.get((str(kind), segment, transition), ()):
                if refit and not t.on_refit:
                    continue
                if t.only_with_consent:
                    said = consent if consent_by is None else consent_by.get((t.purpose, t.channel), {})
                    if not _consented(said.get(cid, said.get(str(cid)))):
                        leave(_no_consent(t))
                        continue
                if t.capped and free is not None:
                    if free.get(str(cid), 0) <= 0:
                        leave(OVER_CAP)
                        continue
                    free[str(cid)] -= 1
                payload = {"customer_id": cid, "segment_kind": kind, "segment": segment, "transition": transition,
                           "from": was, "to": now, "reason": _segment_or_none(reason), "changed_at": _iso(at),
                           "cause": _segment_or_none(cause)}
                rows.append((i, cid, kind, segment, transition, t.action,
                             json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)))
    out = pd.DataFrame(rows, columns=list(OUTBOX_COLUMNS))
    out["change_index"] = out["change_index"].astype("int64")
    return OutboxPlan(out, left_out)
