"""The agent's fast address parsing agrees with ``ipaddress`` on every input: the same
networks, the same printed text, the same refusals."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.felix import netaddr

V4 = st.ip_addresses(v=4).map(str)
V6 = st.ip_addresses(v=6).map(str)
# Canonical and non-canonical spellings, with and without a prefix length, and junk.
TEXT = st.one_of(
    st.builds(lambda a, p: f"{a}/{p}", V4, st.integers(0, 33)),
    st.builds(lambda a, p: f"{a}/{p}", V6, st.integers(0, 129)),
    V4, V6,
    st.builds(lambda a: a.upper(), V6),
    st.builds(lambda a, p: f"{a}/0{p}", V4, st.integers(0, 9)),
    st.text(alphabet="0123456789abcdef.:/x", max_size=20),
)


def _reference(text: str):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@given(TEXT)
def test_networks_and_their_text_are_ipaddress_ones(text):
    want = _reference(text)
    if want is None:
        with pytest.raises(ValueError):
            netaddr.parse_network(text)
        with pytest.raises(ValueError):
            netaddr.network_text(text)
        assert netaddr.v4_network_text(text) is None
        return
    assert netaddr.parse_network(text) == want
    assert netaddr.network_text(text) == str(want)
    fast = netaddr.v4_network_text(text)
    assert fast is None or fast == str(want)
    host = want.prefixlen == want.max_prefixlen
    assert netaddr.member_text(text) == (str(want.network_address) if host else str(want))
    assert netaddr.version(text) == want.version
