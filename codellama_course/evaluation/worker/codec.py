"""Strict mode's plain-data codec: values tagged by exact type, so that only None, bool, int, float,
complex, str, bytes, list, tuple, dict, set and frozenset cross between the judge and the candidate
(a forged ``__eq__`` or a patched builtin stays behind)."""

import base64


class TransferError(Exception):
    pass


def encode(value, depth=0):
    """Encode plain data, tagged by exact type. Sub-classes are reduced to their base value."""
    if depth > 200:
        raise TransferError("value nested too deeply")
    t = type(value)
    if value is None:
        return ["N"]
    if t is bool:
        return ["b", value]
    if t is int:
        return ["i", hex(value)]
    if t is float:
        return ["f", value.hex()]
    if t is str:
        return ["s", value]
    if t is list:
        return ["l", [encode(v, depth + 1) for v in value]]
    if t is tuple:
        return ["t", [encode(v, depth + 1) for v in value]]
    if t is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if t is set:
        return ["S", [encode(v, depth + 1) for v in value]]
    if t is frozenset:
        return ["F", [encode(v, depth + 1) for v in value]]
    if t is complex:
        return ["c", value.real.hex(), value.imag.hex()]
    if t is bytes:
        return ["y", base64.b64encode(value).decode("ascii")]
    # numpy scalars / arrays: their plain value
    if getattr(t, "__module__", "") == "numpy" and hasattr(value, "tolist"):
        return encode(value.tolist(), depth + 1)
    # subclasses of plain types: their base value (the comparison then happens on real builtins)
    for base in (bool, int, float, str, bytes, complex):
        if isinstance(value, base):
            return encode(base(value), depth + 1)
    for base in (list, tuple, set, frozenset):
        if isinstance(value, base):
            return encode(base(iter(value)), depth + 1)
    if isinstance(value, dict):
        return encode(dict(value.items()), depth + 1)
    raise TransferError(f"cannot transfer a value of type {t.__name__}")


def decode(x, depth=0):
    """Inverse of encode. Accepts only well-formed input and builds exact builtin types."""
    if depth > 200:
        raise TransferError("value nested too deeply")
    if type(x) is not list or not x or type(x[0]) is not str:
        raise TransferError("malformed value")
    tag = x[0]
    if tag == "N" and len(x) == 1:
        return None
    if len(x) == 2:
        v = x[1]
        if tag == "b" and type(v) is bool:
            return v
        if tag == "i" and type(v) is str:
            return int(v, 16)
        if tag == "f" and type(v) is str:
            return float.fromhex(v)
        if tag == "s" and type(v) is str:
            return v
        if tag == "y" and type(v) is str:
            return base64.b64decode(v.encode("ascii"), validate=True)
        if type(v) is list:
            if tag == "l":
                return [decode(e, depth + 1) for e in v]
            if tag == "t":
                return tuple(decode(e, depth + 1) for e in v)
            if tag == "S":
                return set(decode(e, depth + 1) for e in v)
            if tag == "F":
                return frozenset(decode(e, depth + 1) for e in v)
            if tag == "d":
                out = {}
                for pair in v:
                    if type(pair) is not list or len(pair) != 2:
                        raise TransferError("malformed dict")
                    out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
                return out
    if tag == "c" and len(x) == 3 and type(x[1]) is str and type(x[2]) is str:
        return complex(float.fromhex(x[1]), float.fromhex(x[2]))
    raise TransferError("malformed value")
