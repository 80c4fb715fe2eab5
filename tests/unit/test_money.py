"""Exact money: parsing client amounts, minor units, formatting, the currency list."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import Invalid
from app.money import (
    CURRENCY_EXPONENTS,
    ISO_4217,
    MAX_MINOR_UNITS,
    RETIRED,
    AmountError,
    format_minor,
    has_at_most_decimals,
    minor_units,
    normalize_currency,
    parse_amount,
    to_minor,
)


@pytest.mark.parametrize("value, expected", [
    (5, Decimal(5)), ("500.50", Decimal("500.50")), (Decimal("0.3"), Decimal("0.3")),
    (".5", Decimal("0.5")), ("7.", Decimal(7)), ("+3", Decimal(3)),
])
def test_amounts_that_parse(value: object, expected: Decimal) -> None:
    assert parse_amount(value) == expected


@pytest.mark.parametrize("value", [
    True, None, [1], "١٢", "１２", "12\n", " 12", "1e3", "0", "-1", "abc", "", ".",
    Decimal("NaN"), Decimal("Infinity"), Decimal("1E+15"), 0, -5,
])
def test_amounts_that_do_not(value: object) -> None:
    with pytest.raises(AmountError):
        parse_amount(value)


def test_minor_units_follow_the_currency() -> None:
    assert to_minor(Decimal("10.5"), "INR") == 1050
    assert to_minor(Decimal("1.125"), "KWD") == 1125
    assert to_minor(Decimal("1500"), "JPY") == 1500
    assert to_minor(Decimal("0.0001"), "CLF") == 1
    with pytest.raises(AmountError, match="JPY amounts are whole numbers"):
        to_minor(Decimal("10.5"), "JPY")
    with pytest.raises(AmountError, match="at most 2 decimal places"):
        to_minor(Decimal("0.001"), "INR")
    with pytest.raises(AmountError, match=r"at most 9999999999999\.99 INR"):
        to_minor(Decimal("10000000000000"), "INR")


def test_a_misfit_is_a_domain_error_about_the_amount() -> None:
    with pytest.raises(Invalid) as refused:
        minor_units(Decimal("0.5"), "JPY")
    assert refused.value.field == "amount" and refused.value.code == "validation_error"


def test_formatting() -> None:
    assert format_minor(50050, "INR") == "500.50"
    assert format_minor(-5, "INR") == "-0.05"
    assert format_minor(1500, "JPY") == "1500"
    assert format_minor(1125, "KWD") == "1.125"


def test_decimal_places() -> None:
    assert has_at_most_decimals(Decimal("1.2300"), 2)
    assert not has_at_most_decimals(Decimal("1.23001"), 4)
    assert not has_at_most_decimals(Decimal("1E-999999999"), 4)


def test_the_currency_list_is_iso_4217_with_the_withdrawn_codes_kept() -> None:
    assert normalize_currency("inr") == "INR"
    assert {"XCG", "VED", "USD", "EUR", "JPY"} <= set(ISO_4217)
    assert not {"XAU", "XXX", "XTS", "ANG", "BGN"} & set(ISO_4217)
    assert set(RETIRED) <= set(CURRENCY_EXPONENTS)
    for refused in ("ınr", "INR\n", " INR", "BGN", "XAU", "EURO", "", 7):
        with pytest.raises(ValueError):
            normalize_currency(refused)


@given(minor=st.integers(1, MAX_MINOR_UNITS - 1), currency=st.sampled_from(sorted(ISO_4217)))
def test_format_then_parse_gives_the_same_minor_units(minor: int, currency: str) -> None:
    assert to_minor(parse_amount(format_minor(minor, currency)), currency) == minor


def test_format_minor_agrees_with_decimal_everywhere() -> None:
    import random
    from decimal import Decimal

    rng = random.Random(7)
    values = [0, 1, 9, 10, 99, 100, 101, -1, -10, -100, 10**15 - 1, -(10**15 - 1)]
    values += [rng.randint(-10**16, 10**16) for _ in range(5000)]
    for currency, exp in (("JPY", 0), ("INR", 2), ("KWD", 3)):
        for minor in values:
            expected = str(Decimal(minor).scaleb(-exp)) if exp else str(minor)
            assert format_minor(minor, currency) == expected, (minor, currency)
