"""Exact money: ISO 4217 currencies, parsing client amounts, minor units, formatting.

Amounts travel as Decimal from the JSON parser (see app/jsonbody.py) to integer minor
units in the database; no float is ever involved.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Minor-unit exponents (ISO 4217). Codes not listed under 0/3/4 use 2.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN "
    "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES "
    "WST XCD YER ZAR ZMW ZWG"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 0 for c in _EXPONENT_0.split()},
    **{c: 2 for c in _EXPONENT_2.split()},
    **{c: 3 for c in _EXPONENT_3.split()},
    **{c: 4 for c in _EXPONENT_4.split()},
}
# Exclusive upper bound on any amount, in minor units (API.md, "Conventions").
MAX_MINOR_UNITS = 10**15

_DECIMAL_STRING = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class AmountError(ValueError):
    """A client amount that cannot be money; the message says why."""


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[currency]


def normalize_currency(value: object) -> str:
    if not isinstance(value, str) or value.strip().upper() not in CURRENCY_EXPONENTS:
        raise ValueError("currency must be an ISO 4217 code such as INR, USD, EUR or JPY")
    return value.strip().upper()


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
        text = value.strip()
        if not _DECIMAL_STRING.match(text):
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


def format_minor(minor: int, currency: str) -> str:
    exp = exponent(currency)
    if exp == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"
