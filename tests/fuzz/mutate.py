"""Seeded mutations of valid files, as a careless or hostile user would make them.

Every mutation is a pure function of ``(data, rng)`` returning new bytes, except the
file-system ones (:data:`FS_MUTATIONS`) that act on the copied seed folder. Families:

- ``binary``: truncation, byte flips, zeroed or repeated ranges, inserted junk.
- ``text``: a number replaced by 0 / negative / huge / 5000 digits / NaN / a word / a
  non-ASCII digit, lines dropped or doubled, non-UTF-8 bytes, plus the binary ones.
- ``json``: a value replaced by a wrong type (string, null, bool, list, dict, NaN,
  Infinity, 10**30, a 5000-digit integer), deep nesting (``[`` x 100000), duplicated rows,
  path traversal in ``filename`` values, a key removed, plus the text ones.
- ``yaml``: numbers replaced, a billion-laughs alias bomb, deep nesting, a ``!!python`` tag,
  wrong types, plus the text ones.
- ``pcd``: a header field (WIDTH, POINTS, SIZE, TYPE, COUNT, FIELDS, DATA) set to 0,
  negative, huge or nonsense; the binary_compressed size prefix inflated; plus binary ones.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import numpy as np

Rng = np.random.Generator

#: Replacement values for a number in text (the issue's corpus: absurd sizes and times).
NUMBER_REPLACEMENTS = ("0", "-1", "-2147483649", "1e30", "-1e30", "9" * 20, "9" * 400, "9" * 5000, "nan", "inf", "-inf", "", "abc", "1e-400", "0x10", "٣", "²")
#: Wrong-typed JSON values (as JSON text, so NaN / Infinity / huge ints survive).
JSON_REPLACEMENTS = ('"text"', "null", "true", "[]", "{}", "[1, 2]", '{"a": 1}', "NaN", "Infinity", "-Infinity", "1e30", "1" + "0" * 30, "9" * 5000, "-1", "0", '"../../../../etc/passwd"')
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _truncate(data: bytes, rng: Rng) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def _flip(data: bytes, rng: Rng) -> bytes:
    if not data:
        return b"\xff"
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(out)))
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out)


def _zero_range(data: bytes, rng: Rng) -> bytes:
    if not data:
        return data
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, 64))
    return data[:start] + b"\x00" * min(length, len(data) - start) + data[start + length :]


def _repeat_range(data: bytes, rng: Rng) -> bytes:
    if not data:
        return data
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, 256))
    return data[: start + length] + data[start : start + length] + data[start + length :]


def _insert_junk(data: bytes, rng: Rng) -> bytes:
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes() + data[at:]


def _big_int_fields(data: bytes, rng: Rng) -> bytes:
    """Overwrite an aligned 4 or 8 byte field with an extreme value (sizes, counts, offsets)."""
    if len(data) < 8:
        return _flip(data, rng)
    width = 8 if rng.random() < 0.5 else 4
    at = int(rng.integers(0, len(data) - width + 1))
    value = [0, 2**31 - 1, 2**32 - 1, 2**40, 2**63 - 1][int(rng.integers(0, 5))] % (1 << (8 * width))
    return data[:at] + value.to_bytes(width, "little") + data[at + width :]


BINARY: tuple[Callable[[bytes, Rng], bytes], ...] = (_truncate, _flip, _flip, _flip, _zero_range, _repeat_range, _insert_junk, _big_int_fields)


def _replace_number(data: bytes, rng: Rng) -> bytes:
    matches = list(_NUMBER.finditer(data))
    if not matches:
        return _flip(data, rng)
    out = data
    for _ in range(int(rng.integers(1, 3))):
        matches = list(_NUMBER.finditer(out))
        if not matches:  # the first replacement took the only number
            break
        m = matches[int(rng.integers(0, len(matches)))]
        value = NUMBER_REPLACEMENTS[int(rng.integers(0, len(NUMBER_REPLACEMENTS)))].encode("utf-8")
        out = out[: m.start()] + value + out[m.end() :]
    return out


def _lines(data: bytes, rng: Rng) -> bytes:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return _truncate(data, rng)
    i = int(rng.integers(0, len(lines)))
    choice = int(rng.integers(0, 3))
    if choice == 0:
        del lines[i]
    elif choice == 1:
        lines.insert(i, lines[i])
    else:
        lines[i] = b""
    return b"\n".join(lines)


def _non_utf8(data: bytes, rng: Rng) -> bytes:
    at = int(rng.integers(0, len(data) + 1))
    return data[:at] + b"\xff\xfe\xc3" + data[at:]


def _empty(data: bytes, rng: Rng) -> bytes:
    return b""


TEXT = (_replace_number, _replace_number, _replace_number, _lines, _non_utf8, _empty, _truncate, _flip)


# ---------------------------------------------------------------------- JSON
def _json_paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _json_paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:20]):
            out += _json_paths(value, path + (i,))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return doc


_MARK = "@@FUZZ@@"


def _json_wrong_type(data: bytes, rng: Rng) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return _replace_number(data, rng)
    paths = _json_paths(doc)
    path = paths[int(rng.integers(0, len(paths)))]
    doc = _set(doc, path, _MARK)
    replacement = JSON_REPLACEMENTS[int(rng.integers(0, len(JSON_REPLACEMENTS)))]
    return json.dumps(doc).replace(json.dumps(_MARK), replacement, 1).encode("utf-8")


def _json_deep(data: bytes, rng: Rng) -> bytes:
    depth = [2000, 100_000][int(rng.integers(0, 2))]
    if rng.random() < 0.5:
        return b"[" * depth  # unterminated, as in the issue
    try:
        doc = json.loads(data)
        paths = _json_paths(doc)
        doc = _set(doc, paths[int(rng.integers(0, len(paths)))], _MARK)
        return json.dumps(doc).replace(json.dumps(_MARK), "[" * depth + "]" * depth, 1).encode("utf-8")
    except ValueError:
        return b"[" * depth + b"]" * depth


def _json_duplicate_row(data: bytes, rng: Rng) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return _lines(data, rng)
    if isinstance(doc, list) and doc:
        doc.insert(int(rng.integers(0, len(doc) + 1)), json.loads(json.dumps(doc[int(rng.integers(0, len(doc)))])))
    return json.dumps(doc).encode("utf-8")


def _json_drop_key(data: bytes, rng: Rng) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return _lines(data, rng)
    dicts = [p for p in _json_paths(doc) if isinstance(_get(doc, p), dict) and _get(doc, p)]
    if dicts:
        target = _get(doc, dicts[int(rng.integers(0, len(dicts)))])
        keys = list(target)
        del target[keys[int(rng.integers(0, len(keys)))]]
    return json.dumps(doc).encode("utf-8")


def _json_traversal(data: bytes, rng: Rng) -> bytes:
    values = ["../outside.bin", "../../../../../etc/hostname", "/etc/hostname", "samples/../../outside.bin", "samples/\x00x"]
    text = data.decode("utf-8", "replace")
    names = re.findall(r'"filename": "([^"]*)"', text)
    if not names:
        return _json_wrong_type(data, rng)
    name = names[int(rng.integers(0, len(names)))]
    return text.replace(f'"filename": "{name}"', f'"filename": {json.dumps(values[int(rng.integers(0, len(values)))])}', 1).encode("utf-8")


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


JSON = (_json_wrong_type, _json_wrong_type, _json_wrong_type, _json_wrong_type, _json_deep, _json_duplicate_row, _json_drop_key, _json_traversal) + TEXT


# ---------------------------------------------------------------------- YAML
_BOMB = (
    'lol0: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"lol{i}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9))
)


def _yaml_bomb(data: bytes, rng: Rng) -> bytes:
    text = data.decode("utf-8", "replace")
    head = ""
    if text.startswith("%YAML"):
        head, _, text = text.partition("---\n")
        head += "---\n"
    lines = text.split("\n")
    values = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]+:\s*\S", line)]
    if values:
        i = values[int(rng.integers(0, len(values)))]
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: *i"
    return (head + _BOMB + "\n".join(lines)).encode("utf-8")


def _yaml_deep(data: bytes, rng: Rng) -> bytes:
    depth = [2000, 100_000][int(rng.integers(0, 2))]
    return b"a: " + b"[" * depth + (b"]" * depth if rng.random() < 0.5 else b"")


def _yaml_tag(data: bytes, rng: Rng) -> bytes:
    return data.replace(b": ", b": !!python/object/apply:os.system ['echo pwned'] #", 1)


def _yaml_wrong_type(data: bytes, rng: Rng) -> bytes:
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    values = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]+:\s*\S", line)]
    if not values:
        return _replace_number(data, rng)
    i = values[int(rng.integers(0, len(values)))]
    key = lines[i].split(":", 1)[0]
    replacement = ["null", "[1, 2, 3]", "{a: 1}", "true", "'text'", "9" * 400, "9" * 5000, ".nan", "-.inf", "2001-01-01"][int(rng.integers(0, 10))]
    lines[i] = f"{key}: {replacement}"
    return "\n".join(lines).encode("utf-8")


YAML = (_yaml_bomb, _yaml_bomb, _yaml_deep, _yaml_tag, _yaml_wrong_type, _yaml_wrong_type, _yaml_wrong_type) + TEXT


# ---------------------------------------------------------------------- PCD
_PCD_VALUES = {
    "WIDTH": ["0", "-1", "4294967296", "99999999999", "abc"],
    "HEIGHT": ["0", "-1", "1000000000", "2"],
    "POINTS": ["0", "-5", "99999999999", "41"],
    "SIZE": ["0", "-4", "3", "16", "99999999999"],
    "TYPE": ["X", "f", "I", "U"],
    "COUNT": ["0", "-1", "3", "1000000000"],
    "FIELDS": ["x y", "x x y z", "_ x y z", "x y z _pad9", "a b c d e f", "x_0 x y z"],
    "DATA": ["binary", "ascii", "binary_compressed", "zip"],
    "VIEWPOINT": ["0 0 0", "nan nan nan nan nan nan nan"],
}


def _pcd_header(data: bytes, rng: Rng) -> bytes:
    end = data.find(b"DATA")
    end = data.find(b"\n", end) + 1 if end >= 0 else 0
    header, body = data[:end], data[end:]
    lines = header.split(b"\n")
    keys = [i for i, line in enumerate(lines) if line.split(b" ")[0].decode("ascii", "replace") in _PCD_VALUES]
    if not keys:
        return _flip(data, rng)
    i = keys[int(rng.integers(0, len(keys)))]
    key = lines[i].split(b" ")[0].decode("ascii")
    parts = lines[i].decode("ascii", "replace").split(" ")
    choice = _PCD_VALUES[key][int(rng.integers(0, len(_PCD_VALUES[key])))]
    if key in ("SIZE", "TYPE", "COUNT") and len(parts) > 2:
        j = int(rng.integers(1, len(parts)))
        parts[j] = choice
        lines[i] = " ".join(parts).encode("ascii")
    else:
        lines[i] = f"{key} {choice}".encode("ascii")
    return b"\n".join(lines) + body


def _pcd_size_prefix(data: bytes, rng: Rng) -> bytes:
    end = data.find(b"DATA binary_compressed\n")
    if end < 0:
        return _pcd_header(data, rng)
    at = end + len(b"DATA binary_compressed\n") + (4 if rng.random() < 0.5 else 0)
    value = [0, 1, 2**31, 2**32 - 1, 1_600_000_000][int(rng.integers(0, 5))]
    return data[:at] + value.to_bytes(4, "little") + data[at + 4 :]


def _pcd_ascii_value(data: bytes, rng: Rng) -> bytes:
    end = data.find(b"DATA ascii\n")
    if end < 0:
        return _pcd_header(data, rng)
    cut = end + len(b"DATA ascii\n")
    return data[:cut] + _replace_number(data[cut:], rng)


PCD = (_pcd_header, _pcd_header, _pcd_header, _pcd_size_prefix, _pcd_ascii_value) + BINARY

#: Mutation family -> mutations (each ``(bytes, rng) -> bytes``).
FAMILIES: dict[str, tuple[Callable[[bytes, Rng], bytes], ...]] = {"binary": BINARY, "text": TEXT, "json": JSON, "yaml": YAML, "pcd": PCD}
#: File-system mutations, applied by the harness to one file of the copied seed folder.
FS_MUTATIONS = ("unreadable", "symlink_loop", "directory", "missing", "dangling_symlink")


def mutate(data: bytes, family: str, rng: Rng) -> tuple[str, bytes]:
    """One seeded mutation of ``data`` from ``family``; returns ``(mutation name, new bytes)``."""
    choices = FAMILIES[family]
    mutation = choices[int(rng.integers(0, len(choices)))]
    return mutation.__name__.lstrip("_"), mutation(data, rng)
