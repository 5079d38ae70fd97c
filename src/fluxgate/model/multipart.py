"""A minimal ``multipart/form-data`` encoder for CPython callers of the model.

On Workers the body is built by the platform's ``FormData``; under CPython (the REST API
and the local model doubles) this produces the same wire format, boundary included.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FilePart:
    data: bytes
    content_type: str
    filename: str


def encode_form(fields: Sequence[tuple[str, str | FilePart]]) -> tuple[bytes, str]:
    """Return ``(body, content_type)``; the content type carries the boundary."""
    boundary = "fluxgate-" + secrets.token_hex(16)
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, FilePart):
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{value.filename}"\r\n'
                f"Content-Type: {value.content_type}\r\n\r\n"
            ).encode()
            out += value.data
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
