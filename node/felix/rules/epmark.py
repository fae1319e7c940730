"""Per-interface endpoint marks for kube-proxy's IPVS mode (Felix's ``rules/epmark.go``).

IPVS-forwarded packets go through INPUT and then OUTPUT instead of FORWARD, and OUTPUT
cannot match the interface a packet came in on. So in INPUT each packet from an endpoint
interface gets that interface's value in the endpoint mark bits, and OUTPUT dispatches on
the value. Values are numbers 1..2^n-1 spread over the n endpoint-mark bits (Felix's
markbits mapping: bit i of the number goes to the i-th set bit of the mask). A name's
first choice is its 32-bit FNV-1 hash modulo 2^n; on a collision the next free number up
is taken, so a name keeps its value for as long as it holds it and a newcomer never moves
anyone else's. The lowest endpoint bit is reserved for "not a Calico endpoint".
"""
from __future__ import annotations

PSEUDO_NON_CALI_ENDPOINT = "/cali/Pseudo/NonCali/Endpoint/"  # not a valid interface name

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv1_32(data: bytes) -> int:
    """32-bit FNV-1 (multiply, then xor), as Go's ``hash/fnv.New32``."""
    h = _FNV32_OFFSET
    for byte in data:
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def mask_bits(mask: int) -> list[int]:
    return [1 << i for i in range(32) if mask & (1 << i)]


def number_to_mark(number: int, mask: int) -> int:
    """Bit i of ``number`` placed on the i-th set bit of ``mask``."""
    bits = mask_bits(mask)
    if number >> len(bits):
        raise ValueError(f"{number} does not fit the {len(bits)} bits of mark mask {mask:#x}")
    return sum(bit for i, bit in enumerate(bits) if number & (1 << i))


def mark_to_number(mark: int, mask: int) -> int:
    if mark & mask != mark:
        raise ValueError(f"mark {mark:#x} has bits outside mask {mask:#x}")
    return sum(1 << i for i, bit in enumerate(mask_bits(mask)) if mark & bit)


class EndpointMarkMapper:
    """Allocates and remembers each endpoint interface's mark value (not thread-safe; the
    desired dataplane of one IP family owns one)."""

    def __init__(self, mask: int, non_cali_mark: int, hash32=fnv1_32):
        self.mask = mask
        self._hash32 = hash32
        self._positions = 1 << len(mask_bits(mask)) if mask else 0
        self._mark_by_name: dict[str, int] = {}
        self._name_by_number: dict[int, str] = {}
        self._number_by_name: dict[str, int] = {}
        self._set(PSEUDO_NON_CALI_ENDPOINT, mark_to_number(non_cali_mark, mask))

    def _set(self, name: str, number: int) -> int:
        mark = number_to_mark(number, self.mask)
        self._mark_by_name[name] = mark
        self._name_by_number[number] = name
        self._number_by_name[name] = number
        return mark

    def mark(self, name: str) -> int | None:
        """The interface's mark, allocated on first use; None when every value is taken
        (Felix then renders no mark rules for it)."""
        if not name:
            raise ValueError("an endpoint mark needs an interface name")
        mark = self._mark_by_name.get(name)
        if mark is not None:
            return mark
        start = self._hash32(name.encode())
        for i in range(self._positions):
            number = (start + i) % self._positions
            if number and number not in self._name_by_number:
                return self._set(name, number)
        return None

    def release(self, name: str) -> None:
        if name == PSEUDO_NON_CALI_ENDPOINT:
            return  # reserved for good
        number = self._number_by_name.pop(name, None)
        if number is not None:
            del self._name_by_number[number]
            del self._mark_by_name[name]

    def names(self) -> set[str]:
        return set(self._mark_by_name) - {PSEUDO_NON_CALI_ENDPOINT}
