"""The on-disk format of one partition file, and the scanner that recovers records from it.

A partition file is a 20-byte file header followed by records, appended and never edited::

    file header: b"SXLOGv1\\n" | next_offset_floor u64 | crc32 of the previous 16 bytes u32
    record:      magic b"\\xd5SXr" | flags u8 | offset u64 | timestamp_ms i64
                 | key_len u32 | value_len u32 | crc32(payload) u32 | crc32(the 33 bytes before) u32
                 | payload = key + value

All integers are big-endian. ``flags`` bit 0 marks a tombstone (value None), bit 1 the last
record of an append batch: records count as committed only up to a batch end, so a batch torn
by a crash disappears as a whole. ``next_offset_floor`` is written when the file is created or
rewritten by compaction: the next offset never goes below it, even if compaction removed the
last record. Files are replaced atomically (temp file + ``os.replace``), never rewritten in
place, so the file header is always whole.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Final

from schedulerx.ports.event_log import Record

FILE_MAGIC: Final = b"SXLOGv1\n"
MAGIC: Final = b"\xd5SXr"
FLAG_TOMBSTONE: Final = 1
FLAG_BATCH_END: Final = 2
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
"""Largest key + value of one record; larger appends are refused."""

_FILE_HEAD: Final = struct.Struct(">8sQ")
_CRC: Final = struct.Struct(">I")
_HEAD: Final = struct.Struct(">4sBQqIII")
_HEAD_CRC: Final = struct.Struct(">4sBQqIIII")
FILE_HEADER_SIZE: Final = _FILE_HEAD.size + _CRC.size
HEADER_SIZE: Final = _HEAD.size + _CRC.size
_CHUNK: Final = 1 << 20


def encode_file_header(next_offset_floor: int) -> bytes:
    """The file header of a partition file whose next offset is at least ``next_offset_floor``."""
    head = _FILE_HEAD.pack(FILE_MAGIC, next_offset_floor)
    return head + _CRC.pack(zlib.crc32(head))


def decode_file_header(data: bytes) -> int | None:
    """The next-offset floor stored in ``data``, or None if it is not a valid file header."""
    if len(data) < FILE_HEADER_SIZE:
        return None
    head = data[: _FILE_HEAD.size]
    magic, floor = _FILE_HEAD.unpack(head)
    (crc,) = _CRC.unpack_from(data, _FILE_HEAD.size)
    if magic != FILE_MAGIC or crc != zlib.crc32(head):
        return None
    return int(floor)


def encode_record(
    offset: int, timestamp_ms: int, key: bytes, value: bytes | None, flags: int
) -> bytes:
    """The bytes of one record (``flags`` may include FLAG_BATCH_END; tombstone is derived)."""
    if value is None:
        flags |= FLAG_TOMBSTONE
        value = b""
    payload = key + value
    head = _HEAD.pack(MAGIC, flags, offset, timestamp_ms, len(key), len(value), zlib.crc32(payload))
    return head + _CRC.pack(zlib.crc32(head)) + payload


@dataclass(frozen=True, slots=True)
class Header:
    """A record header whose CRC checked out."""

    flags: int
    offset: int
    timestamp_ms: int
    key_len: int
    value_len: int
    payload_crc: int

    @property
    def size(self) -> int:
        """Bytes of the whole record."""
        return HEADER_SIZE + self.key_len + self.value_len


def decode_header(data: bytes | memoryview, at: int = 0) -> Header | None:
    """The header at ``data[at:]``, or None if the magic, CRC or lengths are wrong."""
    if len(data) - at < HEADER_SIZE:
        return None
    magic, flags, offset, ts, klen, vlen, pcrc, hcrc = _HEAD_CRC.unpack_from(data, at)
    if magic != MAGIC or hcrc != zlib.crc32(data[at : at + _HEAD.size]):
        return None
    if klen + vlen > MAX_RECORD_BYTES or (flags & FLAG_TOMBSTONE and vlen):
        return None
    return Header(flags, offset, ts, klen, vlen, pcrc)


def decode_payload(partition: int, header: Header, payload: bytes | memoryview) -> Record | None:
    """The record of ``header`` + ``payload``, or None if the payload CRC is wrong."""
    if zlib.crc32(payload) != header.payload_crc:
        return None
    key = bytes(payload[: header.key_len])
    value = None if header.flags & FLAG_TOMBSTONE else bytes(payload[header.key_len :])
    return Record(partition, header.offset, key, value, header.timestamp_ms)


class _Window:
    """Buffered positional reads of ``fd`` below ``size`` (the size seen when scanning began)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size
        self._base = 0
        self._buf = b""

    def get(self, pos: int, n: int) -> bytes | None:
        """``n`` bytes at ``pos``, or None if they are not all there."""
        if pos + n > self.size:
            return None
        rel = pos - self._base
        if rel < 0 or rel + n > len(self._buf):
            self._buf = os.pread(self._fd, max(n, _CHUNK), pos)
            self._base, rel = pos, 0
            if len(self._buf) < n:  # the file shrank under us
                return None
        return self._buf[rel : rel + n]

    def find(self, needle: bytes, start: int) -> int | None:
        """The first position >= ``start`` where ``needle`` begins, or None."""
        pos = start
        while pos + len(needle) <= self.size:
            chunk = self.get(pos, min(_CHUNK, self.size - pos))
            if chunk is None:
                return None
            i = chunk.find(needle)
            if i >= 0:
                return pos + i
            pos += len(chunk) - len(needle) + 1
        return None


_OK: Final = 0
_PARTIAL: Final = 1
_BAD_PAYLOAD: Final = 2
_BAD: Final = 3


def _probe(win: _Window, pos: int, after: int) -> tuple[int, Header | None]:
    """What starts at ``pos``: a whole valid record with offset > ``after`` (_OK), one not all
    written yet (_PARTIAL), a valid header with a bad payload or offset (_BAD_PAYLOAD), or
    nothing valid (_BAD)."""
    head = win.get(pos, HEADER_SIZE)
    if head is None:
        return _PARTIAL, None
    header = decode_header(head)
    if header is None:
        return _BAD, None
    payload = win.get(pos + HEADER_SIZE, header.key_len + header.value_len)
    if payload is None:
        return _PARTIAL, header
    if header.offset <= after or zlib.crc32(payload) != header.payload_crc:
        return _BAD_PAYLOAD, header
    return _OK, header


@dataclass(slots=True)
class ScanResult:
    """Committed records found by ``scan``, and where scanning should resume."""

    offsets: array[int] = field(default_factory=lambda: array("q"))
    positions: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("q"))
    committed_end: int = 0
    """File position after the last committed byte: resume here; a writer truncates here."""
    corrupt: list[int] = field(default_factory=list)
    """File positions of corrupt regions that were skipped (later valid records exist)."""
    torn: bool = False
    """Bytes after ``committed_end`` are not (or not yet) committed records."""


def scan(fd: int, start: int, size: int, last_offset: int) -> ScanResult:
    """Committed records of ``fd`` between ``start`` and ``size`` with offsets > ``last_offset``.

    Records count once their batch end is seen. A bad region followed by a valid record is
    corruption: it is skipped and listed in ``corrupt``, and resync finds the next header whose
    magic and CRC check out (offsets are in the records, so nothing else is needed). A bad or
    unfinished region with nothing valid after it is a torn (or still being written) tail.
    """
    win = _Window(fd, size)
    res = ScanResult(committed_end=start)
    pending: list[tuple[int, int, int]] = []
    pos, prev = start, last_offset
    while pos < size:
        kind, header = _probe(win, pos, prev)
        if kind == _OK and header is not None:
            pending.append((header.offset, pos, pos + header.size))
            prev, pos = header.offset, pos + header.size
            if header.flags & FLAG_BATCH_END:
                _commit(res, pending, pos)
            continue
        if kind == _PARTIAL:
            break  # the last record is not all there: torn tail or an append in progress
        # A trusted header gives the record's length: resume after it, so that bytes inside
        # a corrupt payload are never mistaken for records.
        resume = pos + header.size if header is not None else pos + 1
        nxt = _resync(win, resume, prev)
        if nxt is None:
            break
        res.corrupt.append(pos)
        _commit(res, pending, nxt)
        pos = nxt
    res.torn = pos < size or bool(pending)
    return res


def _commit(res: ScanResult, pending: list[tuple[int, int, int]], end: int) -> None:
    for offset, pos, rec_end in pending:
        res.offsets.append(offset)
        res.positions.append(pos)
        res.ends.append(rec_end)
    pending.clear()
    res.committed_end = end


def _resync(win: _Window, start: int, after: int) -> int | None:
    """The position of the next whole valid record at or after ``start``, or None."""
    pos = win.find(MAGIC, start)
    while pos is not None:
        if _probe(win, pos, after)[0] == _OK:
            return pos
        pos = win.find(MAGIC, pos + 1)
    return None
