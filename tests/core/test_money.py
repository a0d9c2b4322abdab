"""Money is written with its currency everywhere (report, terminal, check-up)."""

from __future__ import annotations

import pytest

from clientfolio.core.money import UNKNOWN, currency_prefix, currency_unit, format_money


@pytest.mark.parametrize(("code", "prefix"), [("GBP", "£"), ("inr", "₹"), ("BRL", "R$"), ("CHF", "CHF "),
                                              ("SEK", "SEK "), ("", ""), (None, ""), (float("nan"), "")])
def test_currency_prefix_is_a_symbol_or_the_code(code, prefix) -> None:
    assert currency_prefix(code) == prefix


@pytest.mark.parametrize(("value", "prefix", "decimals", "text"), [
    (1234.5, "£", None, "£1,234"), (12.5, "£", None, "£12.50"), (-112.4, "£", None, "-£112"),
    (-0.13, "£", 2, "-£0.13"), (-0.001, "£", 2, "£0.00"), (3.2, "CHF ", 2, "CHF 3.20"),
    (590683.29, "₹", 2, "₹590,683.29"),
    (float("nan"), "£", 2, "–"),
])
def test_format_money_puts_the_sign_before_the_currency(value, prefix, decimals, text) -> None:
    assert format_money(value, prefix, decimals) == text


def test_an_unknown_currency_is_named_as_the_files_own_never_empty() -> None:
    assert currency_unit("") == UNKNOWN == "the file's currency"
    assert currency_unit("CHF ") == "CHF" and currency_unit("£") == "£"
