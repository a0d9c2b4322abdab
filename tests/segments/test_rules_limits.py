"""Rule files have limits (size, segments, conditions, nesting, alias expansion), refused early.

Each hostile file is in tests/data/trust/cli/ (made by make_files.py there).  The tests count
work, not wall time: the alias bomb never reaches the YAML constructor, the checker stops at
the condition limit, and `analyze` reports no progress at all before refusing a rule file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import clientfolio
from clientfolio.segments import _rules_load, _rules_parse
from clientfolio.segments._rules_load import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_SEGMENTS,
    MAX_YAML_NODES,
    check_yaml_size,
)
from clientfolio.segments.rules import RuleError, RuleSet, load_rules
from tests.conftest import DATA

TRUST = DATA / "trust" / "cli"
SCHEMA = {"revenue": "number", "orders": "number"}


def refused(name: str) -> RuleError:
    path = TRUST / name
    with pytest.raises(RuleError) as info:
        load_rules(path, schema=SCHEMA)
    assert str(info.value).startswith(f"{path}: "), "the error names the file"
    return info.value


def test_alias_bomb_is_refused_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr(_rules_load.yaml, "load", lambda *a, **k: built.append(1))
    exc = refused("rules_alias_bomb.yaml")
    assert f"more than {MAX_YAML_NODES:,} YAML values" in str(exc) and "aliases" in str(exc)
    assert built == [], "the document was never constructed"


def test_alias_counting_follows_nested_anchors() -> None:
    small = "a: &a {field: revenue, gt: 1}\nb: &b [*a, *a]\nc: [*b, *b]\n"
    check_yaml_size(small)  # 1 + 5 + 1 + 2*5 + 1 + 2*(1 + 2*5) + ... well under the limit
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(5))
    with pytest.raises(RuleError, match="YAML values"):
        check_yaml_size(laughs)


def test_too_many_segments() -> None:
    exc = refused("rules_many_segments.yaml")
    assert f"250 segments is more than the limit of {MAX_SEGMENTS}" in str(exc)


def test_too_many_conditions_stops_counting_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = _rules_parse.Checker.cond
    monkeypatch.setattr(_rules_parse.Checker, "cond", lambda self, *a: seen.append(1) or original(self, *a))
    exc = refused("rules_many_conditions.yaml")
    assert f"more than {MAX_CONDITIONS:,} conditions" in str(exc)
    assert len(seen) < MAX_CONDITIONS, "checking stopped at the limit, not after 2,500 conditions"


@pytest.mark.parametrize("name", ["rules_deep_nesting.yaml", "rules_deep_nesting.json"])
def test_deep_nesting_is_an_error_not_a_recursion_crash(name: str) -> None:
    exc = refused(name)
    assert f"limit of {MAX_DEPTH} levels of all/any/not" in str(exc)


def test_depth_limit_also_guards_documents_given_as_dicts() -> None:
    when: dict = {"field": "revenue", "gt": 1}
    for _ in range(300):
        when = {"not": when}
    with pytest.raises(RuleError, match=f"nested more than {MAX_DEPTH} levels"):
        RuleSet.from_dict({"segments": [{"name": "deep", "when": when}]}, schema=SCHEMA)
    ok: dict = {"field": "revenue", "gt": 1}
    for _ in range(MAX_DEPTH):
        ok = {"not": ok}
    assert RuleSet.from_dict({"segments": [{"name": "fine", "when": ok}]}, schema=SCHEMA).names == ["fine"]


def test_self_referencing_dict_is_refused_not_looped() -> None:
    when: dict = {"all": []}
    when["all"].append(when)
    with pytest.raises(RuleError, match="nested more than"):
        RuleSet.from_dict({"segments": [{"name": "loop", "when": when}]}, schema=SCHEMA)


def test_file_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("segments:\n" + "#" * MAX_FILE_BYTES + "\n", encoding="utf-8")
    with pytest.raises(RuleError, match=f"the limit is {MAX_FILE_BYTES:,}") as info:
        load_rules(big)
    assert str(big) in str(info.value)


def test_limits_leave_ordinary_files_alone() -> None:
    rs = load_rules("segments:\n  - name: a\n    when: {any: [{field: revenue, gt: 1}, {field: orders, gte: 2}]}\n",
                    schema=SCHEMA)
    assert rs.names == ["a"]
    anchors = "x: &big {field: revenue, gt: 100}\nsegments:\n  - {name: a, when: *big}\n  - {name: b, when: *big}\n"
    doc = yaml.safe_load(anchors)
    assert RuleSet.from_dict({"segments": doc["segments"]}, schema=SCHEMA).names == ["a", "b"]


def test_analyze_refuses_bad_rules_before_any_work(tmp_path: Path) -> None:
    """No progress at all (no import, no fit) is reported before the rule file is refused."""
    for name, words in [("rules_unknown_field.yaml", "did you mean 'revenue'"),
                        ("rules_alias_bomb.yaml", "YAML values"), ("rules_many_segments.yaml", "segments")]:
        stages: list[str] = []
        with pytest.raises(RuleError, match=words):
            clientfolio.analyze(TRUST / "formula_orders.csv", store=tmp_path / "s.duckdb", rules=TRUST / name,
                                progress=lambda msg, frac: stages.append(msg))
        assert stages == []
        assert not (tmp_path / "s.duckdb").exists(), "not even the store was opened"
