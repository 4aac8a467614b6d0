"""Framing between the evaluator and the worker (and between strict-mode processes): each message is a
4-byte big-endian length and that many bytes of UTF-8 JSON."""

import json
import os
import select
import struct
import time

MAX_FRAME = 64 << 20


def read_exact(fd, n, deadline=None):
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise TimeoutError
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_frame(fd, deadline=None, limit=MAX_FRAME):
    (n,) = struct.unpack(">I", read_exact(fd, 4, deadline))
    if n > limit:
        raise ValueError("frame too large")
    return json.loads(read_exact(fd, n, deadline).decode("utf-8"))


def write_frame(fd, obj):
    data = json.dumps(obj).encode("utf-8")
    data = struct.pack(">I", len(data)) + data
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
