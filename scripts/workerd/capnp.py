"""A minimal Cap'n Proto writer for workerd's jsg ``Bundle`` (``src/workerd/jsg/modules.capnp``).

Only what a Pyodide bundle needs, so that no ``capnp`` tool is required: one segment, a
``Bundle`` struct whose only pointer is ``modules :List(Module)``. ``Module``'s layout, as
``capnp compile -ocapnp`` prints it: one data word (``type`` in bits 0-16: bundle 0, builtin
1, internal 2; the ``union`` tag in bits 16-32: src 0, wasm 1, data 2, json 3) and four
pointers (``name``, the union's content, ``tsDeclaration``, ``compileCache``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

Kind = Literal["src", "wasm", "data", "json"]
ModuleType = Literal["bundle", "builtin", "internal"]

_KIND: dict[str, int] = {"src": 0, "wasm": 1, "data": 2, "json": 3}
_TYPE: dict[str, int] = {"bundle": 0, "builtin": 1, "internal": 2}
_MODULE_POINTERS = 4
_MODULE_WORDS = 1 + _MODULE_POINTERS  # one data word, four pointers
_BYTE_LIST = 2  # list element size code for bytes
_COMPOSITE_LIST = 7


@dataclass(frozen=True)
class Module:
    """One module of a bundle: its name, what its content is, the content, its type."""

    name: str
    kind: Kind
    content: bytes
    type: ModuleType = "internal"


class _Segment:
    def __init__(self) -> None:
        self.words: list[bytes] = []

    def alloc(self, count: int) -> int:
        start = len(self.words)
        self.words.extend([bytes(8)] * count)
        return start

    def put(self, at: int, value: int) -> None:
        self.words[at] = struct.pack("<Q", value)

    def struct_pointer(self, at: int, target: int, data_words: int, pointers: int) -> None:
        offset = (target - at - 1) & 0x3FFFFFFF
        self.put(at, (offset << 2) | (data_words << 32) | (pointers << 48))

    def list_pointer(self, at: int, target: int, element_size: int, count: int) -> None:
        offset = (target - at - 1) & 0x3FFFFFFF
        self.put(at, (offset << 2) | 1 | (element_size << 32) | (count << 35))

    def blob(self, at: int, data: bytes, *, text: bool) -> None:
        """``Text`` carries a NUL that its length counts; ``Data`` does not."""
        if text:
            data += b"\0"
        words = (len(data) + 7) // 8
        start = self.alloc(words)
        padded = data.ljust(words * 8, b"\0")
        for index in range(words):
            self.words[start + index] = padded[8 * index : 8 * index + 8]
        self.list_pointer(at, start, _BYTE_LIST, len(data))


def encode_bundle(modules: list[Module]) -> bytes:
    """The serialised message: segment table, then the single segment."""
    segment = _Segment()
    segment.alloc(1)  # the root pointer
    root = segment.alloc(1)  # Bundle: no data, one pointer
    segment.struct_pointer(0, root, 0, 1)
    tag = segment.alloc(1 + _MODULE_WORDS * len(modules))
    segment.put(tag, (len(modules) << 2) | (1 << 32) | (_MODULE_POINTERS << 48))
    segment.list_pointer(root, tag, _COMPOSITE_LIST, _MODULE_WORDS * len(modules))
    for index, module in enumerate(modules):
        base = tag + 1 + _MODULE_WORDS * index
        segment.put(base, _TYPE[module.type] | (_KIND[module.kind] << 16))
        segment.blob(base + 1, module.name.encode(), text=True)
        segment.blob(base + 2, module.content, text=module.kind == "json")
    body = b"".join(segment.words)
    return struct.pack("<II", 0, len(segment.words)) + body
