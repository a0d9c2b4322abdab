"""Playbooks: what to do for each segment -- service level, offer, channel, angle, cadence, KPI, levers.

Every segment of every built-in kind has a default (``playbooks.yaml`` next to this module);
the owner edits a copy (`clientfolio playbooks --write playbooks.yaml`) and the copy is merged
over the defaults, entry by entry and key by key.  A segment without an entry (a discovered
group, a rule segment of the owner's) gets a generic standard-service playbook that says it is
"not tailored", so reports can point at it.

Safeguards that hold whatever the file says:

- every segment keeps a minimum service level: nothing below self-service ("none" is refused);
- behavioural levers come from a fixed list, each with its guardrail (truthful only, opt-out
  honoured, never aimed at vulnerable groups), and are used only for customers who consented
  to nudges on the playbook's channel (:func:`customer_levers`);
- divestment candidates (unprofitable after cost to serve) get a respectful phased plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from clientfolio.actions.consent import consent_status
from clientfolio.actions.members import current_members
from clientfolio.core.errors import ClientfolioError
from clientfolio.live.kinds import KINDS, SEGMENT_NAMES
from clientfolio.live.triggers import Trigger, _Loader, _suggest, load_triggers  # one YAML dialect for both files
from clientfolio.store.base import Store

__all__ = ["CHANNELS", "LEVERS", "SERVICE_LEVELS", "Lever", "Playbook", "PlaybookError", "Playbooks",
           "customer_levers", "default_playbooks_text", "divestment_ids", "divestment_playbook",
           "install_playbook_triggers", "load_playbooks", "playbook_table", "playbook_triggers",
           "trigger_subscriptions", "write_default_playbooks"]

#: Most attention first.  There is nothing below self-service: every segment keeps a service level.
SERVICE_LEVELS = ("dedicated", "priority", "standard", "self-service")
CHANNELS = ("email", "sms", "phone", "post", "push", "in_store", "account_manager")
#: The consent channel a playbook channel needs (consent.py's channels).  In the shop and through
#: an account manager are not one of them: only consent for every channel ("any") covers them.
CONSENT_CHANNEL = {"email": "email", "sms": "sms", "phone": "phone", "post": "post", "push": "push",
                   "in_store": "any", "account_manager": "any"}
PURPOSES = ("marketing", "service")
REQUIRED = ("service_level", "offer", "channel", "angle", "cadence", "kpi")
OPTIONAL = ("levers", "purpose", "on_entry", "steps", "note")
DEFAULT_FILE = "playbooks.yaml"
BUILT_IN = "built-in playbooks"
TRIGGER_ACTION = "playbook"
DIVESTMENT, DIVESTMENT_SEGMENT = "divestment", "Divestment candidates"  # a row of the table, not a segment kind
MAX_FILE_BYTES = 1_000_000

GUARDRAIL = "Truthful only; opt-out honoured in every message; never aimed at vulnerable groups."


class PlaybookError(ClientfolioError, ValueError):
    """A playbook file that cannot be used: names the file, the segment, what is wrong and how to fix it."""


@dataclass(frozen=True)
class Lever:
    """A behavioural lever and the guardrail that comes with it."""

    name: str
    what: str
    guardrail: str


LEVERS: dict[str, Lever] = {
    "loss_framing": Lever("loss_framing", "say what they stand to lose by not acting (points that expire, a "
                          "price that ends, a saved basket)",
                          "Only losses that are real and will happen as stated: no invented deadlines or threats. "
                          + GUARDRAIL),
    "social_proof": Lever("social_proof", "show what other customers choose or rate highly",
                          "Only true, current figures and genuine reviews: no made-up counts or testimonials. "
                          + GUARDRAIL),
    "scarcity": Lever("scarcity", "say when something is limited (stock, a seasonal item, an offer's end)",
                      "Only real limits (actual stock, a real end date): never a false countdown or 'only 2 "
                      "left' that is not so. " + GUARDRAIL),
    "defaults": Lever("defaults", "make the option that suits most people the pre-selected one (e.g. a standing "
                      "order, a reminder)",
                      "The default must be in the customer's interest, clearly shown and undone in one step; "
                      "never a pre-ticked paid extra. " + GUARDRAIL),
    "reciprocity": Lever("reciprocity", "give something first (a thank-you, a sample, useful advice)",
                         "A gift with no strings and no obligation to buy; never presented as a debt. " + GUARDRAIL),
}


@dataclass(frozen=True)
class Playbook:
    """What to do for one segment (``segment == "*"``: every segment of the kind without its own entry)."""

    segment_kind: str
    segment: str
    service_level: str
    offer: str
    channel: str
    angle: str
    cadence: str
    kpi: str
    levers: tuple[str, ...] = ()
    purpose: str = "marketing"
    on_entry: bool = True
    steps: tuple[str, ...] = ()
    note: str = ""
    tailored: bool = True  # False: the generic playbook of a segment nobody wrote one for
    source: str = BUILT_IN  # where it came from: the built-in file, the owner's file, or "generic"

    @property
    def consent_channel(self) -> str:
        """The consent channel (consent.py) that nudges on this playbook's channel need."""
        return CONSENT_CHANNEL[self.channel]

    def guardrails(self) -> list[str]:
        """Each lever with its guardrail, in plain words."""
        return [f"{name}: {LEVERS[name].guardrail}" for name in self.levers]


def _generic(kind: str, segment: str) -> Playbook:
    """The playbook of a segment without one: standard service, nothing pushy, and marked as not tailored."""
    return Playbook(kind, segment, service_level="standard",
                    offer="the usual newsletter and offers; nothing special until this segment has a playbook "
                          "of its own",
                    channel="email", angle="what is new", cadence="at most one e-mail every 30 days",
                    kpi="share who order again within 90 days", levers=(), on_entry=False, tailored=False,
                    source="generic")


class Playbooks:
    """The playbooks in force: the built-in defaults with the owner's file merged over them."""

    def __init__(self, entries: Mapping[tuple[str, str], Playbook], files: Sequence[str] = ()) -> None:
        self._entries = dict(entries)
        self.files = list(files)

    def for_segment(self, kind: str, segment: str) -> Playbook:
        """The playbook of `segment` of `kind`: its own entry, else the kind's "*", else the generic one.

        Names match without regard to case ("At Risk" finds lifecycle's "at risk").
        """
        kind, segment = str(kind), str(segment)
        found = self._entries.get((kind, segment))
        if found is None:
            want = segment.casefold()
            found = next((p for (k, s), p in self._entries.items() if k == kind and s != "*" and s.casefold() == want),
                         None)
        if found is None:
            found = self._entries.get((kind, "*"))
        if found is None:
            return _generic(kind, segment)
        return dataclasses.replace(found, segment_kind=kind, segment=segment)

    def entries(self) -> list[Playbook]:
        """Every written entry (including the "*" ones), in file order."""
        return list(self._entries.values())

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)


# ----------------------------------------------------------------------------- reading and checking

def default_playbooks_text() -> str:
    """The built-in playbooks file, comments included (what `--write` gives the owner to edit)."""
    return resources.files("clientfolio.actions").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")


def write_default_playbooks(path: str | Path, overwrite: bool = False) -> Path:
    """Write the built-in playbooks to `path` for the owner to edit; an existing file is kept unless `overwrite`."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise PlaybookError(f"{p} already exists; edit it, remove it first, or choose another file name")
    if p.parent and not p.parent.exists():
        raise PlaybookError(f"{p}: the folder {p.parent} does not exist; create it or choose another path")
    tmp = p.with_name(p.name + ".part")
    tmp.write_text(default_playbooks_text(), encoding="utf-8")
    tmp.replace(p)
    return p


def _read(path: Path) -> Any:
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PlaybookError(f"{name}: larger than {MAX_FILE_BYTES:,} bytes; a playbook file is a few pages: "
                                "check that this is the right file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(f"{name}: cannot read the playbook file ({exc.strerror or exc}); check the path") from None
    except UnicodeDecodeError:
        raise PlaybookError(f"{name}: the file is not UTF-8 text; save it as UTF-8") from None
    return _parse_text(text, name)


def _parse_text(text: str, name: str) -> Any:
    try:
        return yaml.load(text.lstrip("\ufeff"), Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise PlaybookError(f"{name}: {where}not valid YAML: {getattr(exc, 'problem', None) or exc} (check the "
                            "indentation there: each segment under its kind, each key under its segment, two spaces "
                            "deeper; put a text with ':' or '#' in quotes; `clientfolio playbooks --write FILE` "
                            "writes a valid file to start from)") from None


def _text_list(v: Any, key: str, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        problems.append(f"{where}: {key!r} must be a list of texts, e.g. [{'loss_framing' if key == 'levers' else 'a step'}]"
                        f", got {v!r}")
        return None
    return tuple(x.strip() for x in v)


def _check_entry(raw: Any, where: str, complete: bool) -> tuple[dict[str, Any], list[str]]:
    """The checked fields of one entry, or the problems found in it (all of them)."""
    if not isinstance(raw, Mapping):
        return {}, [f"{where}: expected the keys {', '.join(REQUIRED)} under the segment name, got "
                    f"{type(raw).__name__} {raw!r}"]
    problems: list[str] = []
    out: dict[str, Any] = {}
    allowed = REQUIRED + OPTIONAL
    for key in raw:
        if key not in allowed:
            problems.append(f"{where}: unknown key {str(key)!r}{_suggest(str(key), allowed)}; allowed keys are "
                            f"{', '.join(allowed)}")
    if complete:
        for key in REQUIRED:
            if key not in raw:
                problems.append(f"{where}: the key {key!r} is missing; a playbook needs {', '.join(REQUIRED)}")
    for key in ("offer", "angle", "cadence", "kpi", "note"):
        if key in raw:
            v = raw[key]
            if not isinstance(v, str) or (key != "note" and not v.strip()):
                problems.append(f"{where}: {key!r} must be a non-empty text, got {v!r}")
            else:
                out[key] = v.strip()
    if "service_level" in raw:
        v = raw["service_level"]
        if v in SERVICE_LEVELS:
            out["service_level"] = v
        elif isinstance(v, str) and v.strip().lower() in ("none", "no service", "no-service", "off", ""):
            problems.append(f"{where}: service_level {v!r} is not allowed: every segment keeps at least self-service "
                            f"(the minimum service level); use one of {', '.join(SERVICE_LEVELS)}")
        else:
            problems.append(f"{where}: service_level {v!r} is not one of {', '.join(SERVICE_LEVELS)}"
                            f"{_suggest(str(v), SERVICE_LEVELS)} (most attention first; the least is self-service)")
    if "channel" in raw:
        v = raw["channel"]
        if v in CHANNELS:
            out["channel"] = v
        else:
            problems.append(f"{where}: channel {v!r} is not one of {', '.join(CHANNELS)}{_suggest(str(v), CHANNELS)}")
    if "purpose" in raw:
        v = raw["purpose"]
        if v in PURPOSES:
            out["purpose"] = v
        else:
            problems.append(f"{where}: purpose {v!r} must be marketing (a message, needs marketing consent) or "
                            "service (how the customer is served)")
    if "on_entry" in raw:
        if isinstance(raw["on_entry"], bool):
            out["on_entry"] = raw["on_entry"]
        else:
            problems.append(f"{where}: 'on_entry' must be true or false, got {raw['on_entry']!r}")
    if "levers" in raw:
        levers = _text_list(raw["levers"], "levers", where, problems)
        if levers is not None:
            bad = [x for x in levers if x not in LEVERS]
            for x in bad:
                problems.append(f"{where}: unknown lever {x!r}{_suggest(x, LEVERS)}; the levers are "
                                f"{', '.join(LEVERS)} (each used only truthfully and with the customer's consent "
                                "to nudges)")
            if len(set(levers)) != len(levers):
                problems.append(f"{where}: a lever is listed twice in {list(levers)}; list each once")
            if not bad:
                out["levers"] = levers
    if "steps" in raw:
        steps = _text_list(raw["steps"], "steps", where, problems)
        if steps is not None:
            out["steps"] = steps
    return out, problems


def _entries(doc: Any, name: str, complete: bool) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
    """(kind, segment, checked fields) of every entry of a parsed file, and every problem found."""
    if doc is None:
        return [], []
    if not isinstance(doc, Mapping) or set(doc) != {"playbooks"}:
        keys = ", ".join(repr(str(k)) for k in doc) if isinstance(doc, Mapping) else type(doc).__name__
        return [], [f"{name}: expected one top-level key 'playbooks' (playbooks: -> kind -> segment -> keys), "
                    f"found {keys}; `clientfolio playbooks --write FILE` writes a file to start from"]
    body = doc["playbooks"] or {}
    if not isinstance(body, Mapping):
        return [], [f"{name}: 'playbooks' must hold segment kinds (rfm:, lifecycle:, ...), got {type(body).__name__}"]
    out, problems = [], []
    for kind, segments in body.items():
        kind = str(kind)
        if kind not in KINDS:
            problems.append(f"{name}: unknown segment kind {kind!r}{_suggest(kind, KINDS)}; the kinds are "
                            f"{', '.join(KINDS)}")
            continue
        if not isinstance(segments, Mapping):
            problems.append(f"{name}: {kind}: expected segment names under the kind, got {type(segments).__name__}")
            continue
        for segment, raw in segments.items():
            if not isinstance(segment, str):
                problems.append(f"{name}: {kind}: the segment name {segment!r} must be text (quote it in YAML)")
                continue
            where = f"{name}: {kind} {segment!r}"
            known = SEGMENT_NAMES.get(kind)
            if known is not None and segment != "*" and segment not in known:
                problems.append(f"{where}: {kind} has no segment {segment!r}{_suggest(segment, known)}; its "
                                f"segments are {', '.join(repr(n) for n in known)}")
                continue
            fields, found = _check_entry(raw, where, complete)
            problems += found
            if not found:
                out.append((kind, segment, fields))
    return out, problems


def _playbook(kind: str, segment: str, fields: Mapping[str, Any], source: str) -> Playbook:
    return Playbook(segment_kind=kind, segment=segment, tailored=True, source=source,
                    **{k: v for k, v in fields.items() if k in REQUIRED + OPTIONAL})


def _defaults() -> dict[tuple[str, str], Playbook]:
    entries, problems = _entries(_parse_text(default_playbooks_text(), BUILT_IN), BUILT_IN, complete=True)
    if problems:  # a broken shipped file is a bug, said plainly
        raise PlaybookError("\n".join(problems))
    return {(k, s): _playbook(k, s, f, BUILT_IN) for k, s, f in entries}


def load_playbooks(path: str | Path | None = None) -> Playbooks:
    """The built-in playbooks, with the owner's file at `path` (if any) merged over them.

    Every entry of the file is checked (unknown keys, a service level below self-service or not
    in the list, an unknown lever, channel or segment); all problems are raised together in one
    :class:`PlaybookError`, each as ``<file>: <kind> '<segment>': <what is wrong> (<how to fix>)``.
    An entry may name only the keys it changes; the rest come from the default of that segment,
    else the kind's "*" entry, else the generic playbook.
    """
    merged = _defaults()
    if path is None:
        return Playbooks(merged)
    p = Path(path)
    if not p.exists():
        raise PlaybookError(f"{p}: no such playbook file; `clientfolio playbooks --write {p}` writes one to edit")
    entries, problems = _entries(_read(p), str(p), complete=False)
    if problems:
        raise PlaybookError("\n".join(problems))
    for kind, segment, fields in entries:
        base = merged.get((kind, segment)) or merged.get((kind, "*")) or _generic(kind, segment)
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(Playbook)}
        values.update(fields)
        values.update(segment_kind=kind, segment=segment, tailored=True, source=str(p))
        merged[(kind, segment)] = Playbook(**values)
    return Playbooks(merged, [str(p)])


# ----------------------------------------------------------------------------- using them

def _memberships(source: Any) -> pd.DataFrame:
    """(customer_id, segment_kind, segment) from a Portfolio, a membership frame or a store."""
    if isinstance(source, Store):
        return current_members(source)
    frame = getattr(source, "segments", source)
    if not isinstance(frame, pd.DataFrame) or not {"segment_kind", "segment"} <= set(frame.columns):
        raise PlaybookError("playbook_table needs a Portfolio, a store, or a membership table with the columns "
                            f"customer_id, segment_kind and segment; got {type(source).__name__}")
    return frame


def divestment_ids(source: Any) -> list[str]:
    """Divestment candidates (unprofitable after cost to serve) of a Portfolio or an analysed store."""
    if isinstance(source, Store):
        cols = set(source.customer_state_columns())
        if not {"profit", "stat_cost_to_serve"} <= cols:
            return []
        df = source.query("SELECT customer_id FROM customer_state WHERE profit < 0 AND stat_cost_to_serve > 0")
        return sorted(df["customer_id"].astype(str))
    d = getattr(source, "divestment", None)
    customers = getattr(d, "customers", None)
    return sorted(customers["customer_id"].astype(str)) if customers is not None and len(customers) else []


def divestment_playbook(playbooks: Playbooks) -> Playbook:
    """The phased plan for divestment candidates: the playbook of profitability 'Unprofitable'."""
    return dataclasses.replace(playbooks.for_segment("profitability", "Unprofitable"), segment_kind=DIVESTMENT,
                               segment=DIVESTMENT_SEGMENT)


def playbook_table(portfolio_or_segments: Any, playbooks: Playbooks | None = None) -> pd.DataFrame:
    """One row per segment present: its size and its playbook, and whether that playbook is tailored.

    With a Portfolio or a store, a last row covers the divestment candidates (unprofitable after
    cost to serve, whichever profitability segment they are in) with the phased plan.

    Columns: segment_kind, segment, size, service_level, offer, channel, angle, cadence, kpi,
    levers (comma-separated), tailored ("yes"/"no": "no" is the generic playbook of a segment
    nobody wrote one for), steps (a phased plan, " / "-separated; empty for most).
    """
    playbooks = playbooks or load_playbooks()
    m = _memberships(portfolio_or_segments)
    if "customer_id" in m:
        sizes = m.groupby(["segment_kind", "segment"])["customer_id"].nunique()
    else:
        sizes = m.groupby(["segment_kind", "segment"]).size()
    order = {k: i for i, k in enumerate(KINDS)}
    rows = []
    for (kind, segment), n in sorted(sizes.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][0],
                                                                   str(kv[0][1]))):
        pb = playbooks.for_segment(kind, segment)
        rows.append(_row(pb, int(n)))
    if not isinstance(portfolio_or_segments, pd.DataFrame):
        candidates = divestment_ids(portfolio_or_segments)
        if candidates:
            rows.append(_row(divestment_playbook(playbooks), len(candidates)))
    cols = ["segment_kind", "segment", "size", "service_level", "offer", "channel", "angle", "cadence", "kpi",
            "levers", "tailored", "steps"]
    return pd.DataFrame(rows, columns=cols)


def _row(pb: Playbook, size: int) -> dict[str, Any]:
    return {"segment_kind": pb.segment_kind, "segment": pb.segment, "size": size, "service_level": pb.service_level,
            "offer": pb.offer, "channel": pb.channel, "angle": pb.angle, "cadence": pb.cadence, "kpi": pb.kpi,
            "levers": ", ".join(pb.levers), "tailored": "yes" if pb.tailored else "no", "steps": " / ".join(pb.steps)}


def customer_levers(store: Store, playbook: Playbook, customer_ids: Sequence[str]) -> pd.DataFrame:
    """Per customer, the levers of `playbook` they may get: only with consent to nudges on its channel.

    Columns: customer_id, levers (tuple; empty without consent), dropped (the levers left out),
    basis (the consent decision in words).  A customer without the consent still gets the
    playbook itself -- only the lever is dropped.
    """
    st = consent_status(store, list(customer_ids), "nudges", playbook.consent_channel)
    levers = tuple(playbook.levers)
    st["levers"] = [levers if ok else () for ok in st["allowed"]]
    st["dropped"] = [() if ok else levers for ok in st["allowed"]]
    return st[["customer_id", "levers", "dropped", "basis"]]


def playbook_triggers(playbooks: Playbooks, segments: Any = None) -> list[Trigger]:
    """Subscriptions so that a customer entering a segment gets that segment's playbook in the outbox.

    One subscription (``on: entered``, action ``playbook``) per written entry with ``on_entry``;
    kinds whose names come from the data ("*" entries: categories, channels, groups, rules) are
    subscribed for the names in `segments` (a Portfolio, a store, a membership frame, or a
    mapping kind -> names).  Marketing playbooks fire only for customers with consent to marketing
    on the playbook's channel (and below the contact cap);
    service playbooks (e.g. the divestment plan) are a task for the owner and fire for everyone.
    Refits never fire them (a moved threshold is not something the customer did).
    """
    wanted: dict[tuple[str, str], Playbook] = {}
    for pb in playbooks.entries():
        if pb.segment != "*":
            wanted[(pb.segment_kind, pb.segment)] = pb
    known: dict[str, list[str]] = {}
    if segments is not None:
        if isinstance(segments, Mapping):
            pairs = [(k, s) for k, names in segments.items() for s in names]
        else:
            m = _memberships(segments)
            pairs = list(m[["segment_kind", "segment"]].drop_duplicates().itertuples(index=False, name=None))
        for kind, segment in pairs:
            known.setdefault(str(kind), []).append(str(segment))
            if (kind, segment) not in wanted:
                wanted[(str(kind), str(segment))] = playbooks.for_segment(kind, segment)
    docs = [{"segment_kind": k, "segment": s, "on": "entered", "action": TRIGGER_ACTION,
             "only_with_consent": pb.purpose == "marketing", "on_refit": False,
             "purpose": "marketing", "channel": pb.consent_channel}
            for (k, s), pb in wanted.items() if pb.on_entry]
    return load_triggers(docs, known_segments={k: tuple(set(v) | set(SEGMENT_NAMES.get(k, ())))
                                               for k, v in known.items()})


def install_playbook_triggers(store: Store, playbooks: Playbooks | None = None) -> tuple[int, int]:
    """Subscribe the store's living portfolio to the playbooks (for the segments it holds); returns (kept, installed).

    Subscriptions with the action ``playbook`` installed before are replaced; the owner's other
    subscriptions are kept.
    """
    from clientfolio.live.portfolio import LivePortfolio

    live = LivePortfolio(store)
    kept = [t for t in live.triggers if t.action != TRIGGER_ACTION]
    mine = playbook_triggers(playbooks or load_playbooks(), store)
    live.set_triggers(trigger_subscriptions(kept + mine))
    return len(kept), len(mine)


def trigger_subscriptions(triggers: Sequence[Trigger]) -> list[dict[str, Any]]:
    """Triggers as the subscription list `LivePortfolio.set_triggers` (and a YAML file) takes."""
    return [t.as_dict() for t in triggers]
