"""node/gofloat.py: floats in strconv's shortest 'g' layouts, float64 and float32 (the one
implementation behind calicoctl's output, Felix's metrics text and the model's
number-to-string conversion)."""
from __future__ import annotations

import math

import pytest

from node.gofloat import format_float32, format_float64


@pytest.mark.parametrize("value, text", [
    (1e6, "1e+06"), (1234567.5, "1.2345675e+06"), (100000.0, "100000"), (123456.0, "123456"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (1.5, "1.5"), (-2.25, "-2.25"), (0.1, "0.1"),
    (1e21, "1e+21"), (5e-324, "5e-324"), (0.0, "0"), (-0.0, "-0"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
])
def test_float64_as_go_prints_it(value, text):
    assert format_float64(value) == text


@pytest.mark.parametrize("value, text", [
    (1337495556942031415926535.0, "1.3374956e+24"),  # the workloadendpoint doc sample's containerID
    (0.1, "0.1"), (16777217.0, "1.6777216e+07"), (3.4028235e38, "3.4028235e+38"),
    (1e39, "+Inf"), (-1e39, "-Inf"), (1.4e-45, "1e-45"), (1e-46, "0"), (123456.0, "123456"),
    (1234567.0, "1.234567e+06"), (-0.0, "-0"), (math.nan, "NaN"),
])
def test_float32_as_go_prints_it(value, text):
    assert format_float32(value) == text
