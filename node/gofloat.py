"""Floats as Go's strconv formats them with the shortest digits (``FormatFloat(f, 'g',
-1, 64)`` and ``(..., 32)``): the layouts every Go program here prints numbers in
(calicoctl's tables and YAML, Felix's Prometheus text, sigs.k8s.io/yaml's conversion of a
number where a string belongs).
"""
from __future__ import annotations

import decimal
import math
import struct
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction


def shortest_digits(f: float) -> tuple[str, int]:
    """The shortest decimal digits of abs(f) (a finite, non-zero float64) and the position
    of the decimal point: abs(f) == 0.<digits> * 10**dp."""
    _, digits, exp = decimal.Decimal(repr(abs(f))).as_tuple()
    dp = len(digits) + exp
    text = "".join(map(str, digits)).lstrip("0")
    dp -= len("".join(map(str, digits))) - len(text)
    return text.rstrip("0") or "0", dp


def exp_form(neg: bool, digits: str, dp: int) -> str:
    """``0.<digits> * 10**dp`` as Go's %e with the given digits (``1.5e+06``)."""
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    x = dp - 1
    return f"{'-' if neg else ''}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"


def fixed_form(neg: bool, digits: str, dp: int) -> str:
    """``0.<digits> * 10**dp`` as Go's %f with the given digits (``0.0015``, ``1500``)."""
    if dp <= 0:
        text = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        text = digits + "0" * (dp - len(digits))
    else:
        text = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + text


def _special(f: float) -> str | None:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    return None


def _g(neg: bool, digits: str, dp: int) -> str:
    # Shortest formatting decides between the two forms as %g with precision 6 would.
    x = dp - 1
    return exp_form(neg, digits, dp) if x < -4 or x >= 6 else fixed_form(neg, digits, dp)


def format_float64(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)``, Go's ``%v`` of a float64."""
    f = float(f)
    special = _special(f)
    if special is not None:
        return special
    return _g(f < 0, *shortest_digits(f))


def format_float32(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 32)``: ``f`` rounded to a float32, in the
    shortest digits that read back as that float32."""
    if math.isnan(f):
        return "NaN"
    try:
        f = struct.unpack("<f", struct.pack("<f", f))[0]
    except OverflowError:  # rounds past the largest float32
        f = math.copysign(math.inf, f)
    special = _special(f)
    if special is not None:
        return special
    return _g(f < 0, *_float32_digits(abs(f)))


def _float32_digits(f: float) -> tuple[str, int]:
    """The fewest decimal digits that read back as the float32 ``f`` (positive, finite),
    the nearest such when several do, and the decimal point's position:
    ``f ~= 0.<digits> * 10**dp``."""
    exact = Fraction(f)
    mant, exp = math.frexp(f)  # f == mant * 2**exp, 0.5 <= mant < 1
    step = Fraction(2) ** max(exp - 24, -149)  # float32: 24-bit significand, subnormals from 2**-149
    below = step / 2 if mant == 0.5 and exp - 24 > -149 else step  # the float32 under a power of two is closer
    lo, hi = exact - below / 2, exact + step / 2
    even = (exact / step).numerator % 2 == 0  # a tie reads back as the even significand

    def reads_back(c: Decimal) -> bool:
        q = Fraction(c)
        return lo <= q <= hi if even else lo < q < hi

    d = Decimal(f)
    for p in range(1, 10):
        quantum = Decimal(1).scaleb(d.adjusted() - p + 1)
        nearest = d.quantize(quantum, rounding=ROUND_HALF_EVEN)  # a tie goes to the even digit
        other = nearest + quantum if nearest < d else nearest - quantum
        for c in (nearest, other):
            if reads_back(c):
                _, ds, e = c.normalize().as_tuple()
                return "".join(map(str, ds)), len(ds) + e
    raise AssertionError(f"no float32 digits for {f!r}")
