"""Exact money: ISO 4217 currencies, parsing client amounts, minor units, formatting.

Amounts travel as Decimal from the JSON parser (see app/http/jsonbody.py) to integer minor
units in the database; no float is ever involved.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import iso4217

from app.errors import Invalid

# The current ISO 4217 list, from the maintained `iso4217` package (codes whose minor unit
# is "N.A.", such as XAU or XXX, are not money). New invoices take only these.
ISO_4217: dict[str, int] = {c.code: c.exponent for c in iso4217.Currency
                            if c.exponent is not None}
# Codes this app once accepted that ISO 4217 has since withdrawn: invoices in them stay
# readable and payable (ANG became XCG in 2025, BGN became EUR in 2026).
RETIRED: dict[str, int] = {"ANG": 2, "BGN": 2}
CURRENCY_EXPONENTS: dict[str, int] = {**RETIRED, **ISO_4217}
# Exclusive upper bound on any amount, in minor units (docs/API.md, "Conventions").
MAX_MINOR_UNITS = 10**15

# ASCII digits only: Python's \d (and Decimal) would also take "١٢" or "１２".
_DECIMAL_STRING = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


class AmountError(ValueError):
    """A client amount that cannot be money; the message says why."""


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[currency]


def normalize_currency(value: object) -> str:
    code = value.upper() if isinstance(value, str) and value.isascii() else None
    if code not in ISO_4217:
        raise ValueError("currency must be an ISO 4217 code such as INR, USD, EUR or JPY")
    return code


def parse_amount(value: object) -> Decimal:
    """A JSON number or decimal string to a positive, finite Decimal (scale not checked)."""
    if isinstance(value, bool):
        raise AmountError("amount must be a number or a decimal string, not a boolean")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, float):
        # Only reachable from non-JSON callers; repr keeps the digits the sender wrote.
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        text = value
        if not _DECIMAL_STRING.fullmatch(text):
            raise AmountError("amount must be a decimal number such as 500 or \"500.50\"")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex already checked
            raise AmountError("amount must be a decimal number") from exc
    else:
        raise AmountError("amount must be a number or a decimal string")
    if not amount.is_finite():
        raise AmountError("amount must be a finite number")
    if amount <= 0:
        raise AmountError("amount must be greater than 0")
    if amount.adjusted() >= 15:
        raise AmountError("amount is too large")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact minor units, or AmountError when the amount has too many decimals or is too big."""
    exp = exponent(currency)
    quantum = Decimal(1).scaleb(-exp)
    try:
        exact = amount.quantize(quantum)
    except InvalidOperation as exc:
        raise AmountError("amount is too large") from exc
    if exact != amount:
        raise AmountError(
            f"{currency} amounts have at most {exp} decimal place{'s' if exp != 1 else ''}"
            if exp
            else f"{currency} amounts are whole numbers"
        )
    minor = int(exact.scaleb(exp))
    if minor >= MAX_MINOR_UNITS:
        largest = format_minor(MAX_MINOR_UNITS - 1, currency)
        raise AmountError(f"amount must be at most {largest} {currency}")
    if minor <= 0:
        raise AmountError("amount must be greater than 0")
    return minor


def minor_units(amount: Decimal, currency: str) -> int:
    """`to_minor`, refusing as a domain error about the input field `amount`."""
    try:
        return to_minor(amount, currency)
    except AmountError as exc:
        raise Invalid(str(exc), field="amount") from None


def has_at_most_decimals(amount: Decimal, places: int) -> bool:
    try:
        return amount == amount.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        return False


MAX_EXPONENT = max(CURRENCY_EXPONENTS.values())


def format_minor(minor: int, currency: str) -> str:
    return format_units(minor, CURRENCY_EXPONENTS[currency])


def format_units(minor: int, exp: int) -> str:
    """`minor` units with `exp` decimals, as a string. String slicing, not divmod and a
    nested format spec: a list page formats 200 of these, and this is seven times faster
    (docs/PERFORMANCE.md). Zero, the commonest amount (nothing refunded, nothing paid yet,
    nothing due), is a lookup: a fifth of the time."""
    if minor <= 0:
        if minor == 0:
            return _ZEROS[exp]
        return "-" + format_units(-minor, exp)
    if exp == 0:
        return str(minor)
    digits = str(minor)
    if len(digits) <= exp:
        digits = digits.rjust(exp + 1, "0")
    return f"{digits[:-exp]}.{digits[-exp:]}"


_ZEROS = tuple(format(0, f".{exp}f") for exp in range(MAX_EXPONENT + 1))
