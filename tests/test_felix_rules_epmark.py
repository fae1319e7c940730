"""The endpoint mark mapper (kube-proxy IPVS mode) against Felix's epmark_test.go and
dispatch_test.go vectors."""
import pytest

from node.felix.rules.config import RulesConfig
from node.felix.rules.endpoints import set_endpoint_mark_chain
from node.felix.rules.epmark import (
    PSEUDO_NON_CALI_ENDPOINT,
    EndpointMarkMapper,
    fnv1_32,
    mark_to_number,
    number_to_mark,
)


def last_byte(data: bytes) -> int:
    """epmark_test.go's mock hash: the name's last byte."""
    return data[-1] if data else 0


def test_fnv1_32_is_gos_fnv_new32():
    assert fnv1_32(b"") == 0x811C9DC5
    assert fnv1_32(b"a") == 0x050C5D7E  # FNV-1, not FNV-1a (which gives 0xe40c292c)


@pytest.mark.parametrize("names, marks", [
    (["cali1234", "cali2333", "cali2444"], [0xD400, 0xA700, 0x5200]),
    (["cali11", "cali12", "cali13", "cali21", "cali22"], [0x200, 0x300, 0x400, 0xF700, 0xF400]),
])
def test_marks_of_felix_dispatch_tests(names, marks):
    mapper = EndpointMarkMapper(0xFF00, 0x100)
    assert [mapper.mark(n) for n in names] == marks


@pytest.mark.parametrize("mask, non_cali", [(0x10, 0x10), (0x123F, 0x01), (0xFFFFFFFF, 0x01)])
def test_the_non_calico_mark_is_reserved(mask, non_cali):
    mapper = EndpointMarkMapper(mask, non_cali, hash32=last_byte)
    assert mapper.mark(PSEUDO_NON_CALI_ENDPOINT) == non_cali
    mapper.release(PSEUDO_NON_CALI_ENDPOINT)
    assert mapper.mark(PSEUDO_NON_CALI_ENDPOINT) == non_cali


@pytest.mark.parametrize("steps, expected", [
    # Sequential, and a name keeps its value.
    (["cali1", "cali2", "cali3", "cali1", "cali2", "cali7"], [0x200, 0x300, 0x400, 0x200, 0x300, 0x700]),
    # Collisions move up to the next free value; when none is left there is no mark.
    (["cali1", "cali6", "cali3", "cali11", "cali22", "cali33", "cali8", "cali9"],
     [0x200, 0x600, 0x300, 0x400, 0x500, 0x700, None, None]),
    # A release frees the value for the next comer ("x" releases).
    (["cali1", "cali6", "cali3", "xcali1", "xcali2", "cali33", "cali11", "cali66"],
     [0x200, 0x600, 0x300, 0x400, 0x200, 0x700]),
    (["cali1", "cali6", "cali3", "cali11", "cali22", "cali33", "cali8", "cali5", "xcali3", "xcali6", "cali55",
      "cali66"], [0x200, 0x600, 0x300, 0x400, 0x500, 0x700, None, None, 0x600, 0x300]),
])
def test_allocation_and_release(steps, expected):
    mapper = EndpointMarkMapper(0x700, 0x100, hash32=last_byte)
    got = []
    for step in steps:
        if step.startswith("x"):
            mapper.release(step[1:])
        else:
            got.append(mapper.mark(step))
    assert got == expected


def test_number_and_mark_mapping():
    assert number_to_mark(0b101, 0x700) == 0x500
    assert number_to_mark(0b11, 0x1010) == 0x1010
    assert mark_to_number(0x1010, 0x1010) == 0b11
    with pytest.raises(ValueError):
        number_to_mark(8, 0x700)
    with pytest.raises(ValueError):
        mark_to_number(0x210, 0x700)
    with pytest.raises(ValueError):
        EndpointMarkMapper(0x700, 0x100).mark("")


def test_set_endpoint_mark_chain():
    cfg = RulesConfig(mark_endpoint=0xFF00)
    chain = set_endpoint_mark_chain(cfg, "cali1234", 0xD400)
    assert chain.name == "cali-sm-cali1234"
    assert [r.body for r in chain.rules] == ["--jump MARK --set-mark 0xd400/0xff00"]
    assert set_endpoint_mark_chain(cfg, "cali1234", None).rules == ()
    # Long names are shortened as every endpoint chain is.
    assert len(set_endpoint_mark_chain(cfg, "a-very-long-interface-name", 0x100).name) == 28
