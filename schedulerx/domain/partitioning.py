"""Which partition holds a command's records: Kafka's murmur2 of the command id.

The value matches Java's default partitioner (``(murmur2(key) & 0x7fffffff) % n``), so a
stock Kafka client keyed by the bare command id lands on the same partition as we do.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data`` (seed 0x9747b28c), unsigned 32-bit."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    end = length - (length % 4)
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(command_id: str, partitions: int) -> int:
    """The partition (0..partitions-1) of every record of ``command_id``."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return (murmur2(command_id.encode()) & 0x7FFFFFFF) % partitions
