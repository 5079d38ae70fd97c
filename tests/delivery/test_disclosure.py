"""AI disclosure: every stored image carries IPTC's trainedAlgorithmicMedia in XMP.

Read back with an independent reader, exiftool (Debian ``libimage-exiftool-perl``, which
``.ci/run`` installs), and decoded with Pillow (and, for AVIF, also made by ``sharp``,
libheif's writer, which the Images-binding double uses): the marked file must still be the
same picture, and the packet must be where readers look for it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from fluxgate.delivery.disclosure import (
    TRAINED_ALGORITHMIC_MEDIA,
    DisclosureError,
    ai_system,
    mark,
)
from fluxgate.imaging.image_bytes import InProcessImage

from ..support.bodies import generate, generation
from ..support.exiftool import exiftool_path
from ..support.workerd import node

pytestmark = pytest.mark.runtimes("local", "worker")

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = "@cf/black-forest-labs/flux-2-dev"
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z


def read_xmp(data: bytes, tmp_path: Path) -> dict[str, Any]:
    """What exiftool reads from the file's XMP (group-1 names), with its warnings."""
    path = tmp_path / f"image-{hashlib.sha256(data).hexdigest()[:12]}"
    path.write_bytes(data)
    result = subprocess.run(
        [exiftool_path(), "-j", "-G1", "-XMP:all", "-Warning", "-Error", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(result.stdout)[0]
    found.pop("SourceFile")
    return found


def assert_disclosed(
    data: bytes, tmp_path: Path, generator: str, created: int, generation: str | None = None
) -> None:
    """The packet, as exiftool reads it; ``generation``: an original names the generation
    it is (``xmpMM:InstanceID``), so no two generations share bytes."""
    xmp = read_xmp(data, tmp_path)
    when = datetime.fromtimestamp(created, UTC).strftime("%Y:%m:%d %H:%M:%SZ")
    instance = {"XMP-xmpMM:InstanceID": f"xmp.iid:{generation}"} if generation else {}
    assert xmp == {
        "XMP-iptcExt:DigitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "XMP-xmp:CreatorTool": generator,
        "XMP-iptcExt:AISystemUsed": ai_system(generator),
        "XMP-iptcExt:AISystemVersionUsed": generator,
        "XMP-xmp:CreateDate": when,
        **instance,
    }


def picture(mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Image.Image:
    image = Image.new(mode, size)
    image.putdata(
        [
            (x * 5 % 256, y * 7 % 256, (x * y) % 256, (x + y) * 3 % 256)[: len(mode)]
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    return image


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def marked(data: bytes, fmt: str) -> bytes:
    return asyncio.run(mark(InProcessImage(data), fmt, GENERATOR, CREATED)).python_bytes()


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


def without_app0(jpeg: bytes) -> bytes:
    assert jpeg[2:4] == b"\xff\xe0"
    (length,) = struct.unpack(">H", jpeg[4:6])
    return jpeg[:2] + jpeg[4 + length :]


def exif() -> Image.Exif:
    tags = Image.Exif()
    tags[0x0110] = "a camera"  # Model
    return tags


OLD_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="someone else" '
    'xmp:Label="old"/></rdf:RDF></x:xmpmeta>'
)


def png_with_xmp() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", OLD_XMP)
    return encoded(picture(), "PNG", pnginfo=info)


def png_with_xmp_far_in() -> bytes:
    """An old packet behind a 100 KB text chunk: past the head the marker reads first."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 100_000)
    info.add_itxt("XML:com.adobe.xmp", OLD_XMP)
    return encoded(picture(), "PNG", pnginfo=info)


FILES = {
    "png": lambda: ("png", encoded(picture(), "PNG")),
    "png-rgba": lambda: ("png", encoded(picture("RGBA"), "PNG")),
    "png-with-xmp": lambda: ("png", png_with_xmp()),
    "png-with-xmp-far-in": lambda: ("png", png_with_xmp_far_in()),
    "jpeg-jfif": lambda: ("jpeg", encoded(picture(), "JPEG")),
    "jpeg-jfif-exif": lambda: ("jpeg", encoded(picture(), "JPEG", exif=exif())),
    "jpeg-bare": lambda: ("jpeg", without_app0(encoded(picture(), "JPEG"))),
    "jpeg-exif-only": lambda: ("jpeg", without_app0(encoded(picture(), "JPEG", exif=exif()))),
    "jpeg-with-xmp": lambda: ("jpeg", encoded(picture(), "JPEG", xmp=OLD_XMP.encode())),
    "webp-lossy": lambda: ("webp", encoded(picture(), "WEBP", quality=80)),
    "webp-lossless": lambda: ("webp", encoded(picture(), "WEBP", lossless=True)),
    "webp-alpha": lambda: ("webp", encoded(picture("RGBA"), "WEBP")),
    "webp-alpha-lossless": lambda: ("webp", encoded(picture("RGBA"), "WEBP", lossless=True)),
    "webp-odd-size": lambda: ("webp", encoded(picture(size=(33, 17)), "WEBP")),
    "webp-with-xmp-and-exif": lambda: (
        "webp",
        encoded(picture(), "WEBP", xmp=OLD_XMP.encode(), exif=exif()),
    ),
    "avif": lambda: ("avif", encoded(picture(), "AVIF")),
    "avif-alpha": lambda: ("avif", encoded(picture("RGBA"), "AVIF")),
}


@pytest.mark.parametrize("name", FILES)
def test_a_marked_image_is_the_same_picture_and_exiftool_reads_the_disclosure(name, tmp_path):
    fmt, original = FILES[name]()
    result = marked(original, fmt)
    assert pixels(result) == pixels(original)
    assert_disclosed(result, tmp_path, GENERATOR, CREATED)  # an old packet is replaced
    again = marked(result, fmt)  # marking again: still one packet, ours
    if fmt == "avif":  # the XMP item points to the new packet; the old one is left unused
        assert pixels(again) == pixels(original)
        assert_disclosed(again, tmp_path, GENERATOR, CREATED)
    else:
        assert again == result


def test_exif_is_kept_when_jpeg_and_webp_are_marked(tmp_path):
    for fmt, data in [
        ("jpeg", encoded(picture(), "JPEG", exif=exif())),
        ("webp", encoded(picture(), "WEBP", exif=exif())),
    ]:
        with Image.open(io.BytesIO(marked(data, fmt))) as image:
            assert image.getexif()[0x0110] == "a camera"


def test_the_jpeg_packet_follows_jfif_and_exif():
    data = marked(encoded(picture(), "JPEG", exif=exif()), "jpeg")
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        markers.append((data[pos + 1], data[pos + 4 : pos + 8]))
        pos += 2 + length
    assert markers[:3] == [(0xE0, b"JFIF"), (0xE1, b"Exif"), (0xE1, b"http")]


def test_a_simple_webp_becomes_extended_with_its_canvas_size():
    data = marked(encoded(picture(size=(33, 17)), "WEBP", lossless=True), "webp")
    assert data[12:16] == b"VP8X" and data[20] & 0x04  # the XMP flag
    width = int.from_bytes(data[24:27], "little") + 1
    height = int.from_bytes(data[27:30], "little") + 1
    assert (width, height) == (33, 17)
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8


def sharp_avif(tmp_path: Path, alpha: bool) -> bytes:
    """An AVIF written by sharp (libvips + libheif), as the Images-binding double makes them."""
    binary = node()
    if binary is None or not (ROOT / "node_modules" / "sharp").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and node_modules/sharp are needed (npm ci)")
        pytest.skip("node or node_modules/sharp is missing (run `npm ci`)")
    out = tmp_path / "sharp.avif"
    script = (
        "const sharp = require('sharp');"
        "const raw = Buffer.alloc(64 * 40 * 3, 0).map((_, i) => (i * 7) % 251);"
        "let img = sharp(raw, {raw: {width: 64, height: 40, channels: 3}});"
        f"if ({'true' if alpha else 'false'}) img = img.ensureAlpha(0.5);"
        f"img.avif().toFile({json.dumps(str(out))})"
        ".catch(e => { console.error(e); process.exit(1); });"
    )
    subprocess.run([binary, "-e", script], cwd=ROOT, check=True, timeout=60)
    return out.read_bytes()


@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
def test_an_avif_from_sharp_is_marked(alpha, tmp_path):
    original = sharp_avif(tmp_path, alpha)
    result = marked(original, "avif")
    assert pixels(result) == pixels(original)
    assert_disclosed(result, tmp_path, GENERATOR, CREATED)


# -- generic ISOBMFF: the iloc layouts other writers choose ---------------------------------


def boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    out, pos = [], start
    while pos < end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, pos, pos + size))
        pos += size
    return out


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def parse_iloc(payload: bytes) -> list[tuple[int, list[tuple[int, int]]]]:
    """(item id, [(absolute offset, length)]) of a Pillow AVIF's iloc (version 0, 4/4/0)."""
    assert payload[0] == 0 and payload[4] == 0x44 and payload[5] == 0x00
    (count,) = struct.unpack(">H", payload[6:8])
    items, pos = [], 8
    for _ in range(count):
        item_id, _ref, extents = struct.unpack(">HHH", payload[pos : pos + 6])
        pos += 6
        spans = [
            struct.unpack(">II", payload[pos + 8 * i : pos + 8 * i + 8]) for i in range(extents)
        ]
        pos += 8 * extents
        items.append((item_id, spans))
    return items


def iloc_box(
    items, version: int, offset: int, length: int, base: int, index: int, delta: int
) -> bytes:
    """The same items in another iloc layout, offsets moved by ``delta``. With a base
    offset field the absolute position goes there (and extents count from it)."""
    out = bytearray([version, 0, 0, 0, offset << 4 | length, base << 4 | index])
    out += len(items).to_bytes(4 if version == 2 else 2, "big")
    for item_id, spans in items:
        out += item_id.to_bytes(4 if version == 2 else 2, "big")
        if version:
            out += b"\x00\x00"  # construction method 0
        out += b"\x00\x00"
        first = spans[0][0] + delta
        out += (first if base else 0).to_bytes(base, "big")
        out += len(spans).to_bytes(2, "big")
        for at, size in spans:
            out += bytes(index)
            out += (at + delta - (first if base else 0)).to_bytes(offset, "big")
            out += size.to_bytes(length, "big")
    return box(b"iloc", bytes(out))


def relayout(avif: bytes, **layout: int) -> bytes:
    """``avif`` with its iloc rewritten in another (valid) layout."""
    (_, meta_start, meta_end) = next(b for b in boxes(avif, 0, len(avif)) if b[0] == b"meta")
    children = boxes(avif, meta_start + 12, meta_end)
    _, iloc_start, iloc_end = next(c for c in children if c[0] == b"iloc")
    items = parse_iloc(avif[iloc_start + 8 : iloc_end])
    growth = len(iloc_box(items, delta=0, **layout)) - (iloc_end - iloc_start)
    new_iloc = iloc_box(items, delta=growth, **layout)
    body = avif[meta_start + 8 : iloc_start] + new_iloc + avif[iloc_end:meta_end]
    return avif[:meta_start] + box(b"meta", body) + avif[meta_end:]


LAYOUTS = {
    "v0-4-4-0": {"version": 0, "offset": 4, "length": 4, "base": 0, "index": 0},
    "v0-8-8-8": {"version": 0, "offset": 8, "length": 8, "base": 8, "index": 0},
    "v1-4-4-4-index4": {"version": 1, "offset": 4, "length": 4, "base": 4, "index": 4},
    "v1-0-4-4": {"version": 1, "offset": 0, "length": 4, "base": 4, "index": 0},
    "v2-8-4-0": {"version": 2, "offset": 8, "length": 4, "base": 0, "index": 0},
    "v2-4-8-8-index8": {"version": 2, "offset": 4, "length": 8, "base": 8, "index": 8},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_avif_with_any_iloc_layout_is_marked(layout, tmp_path):
    original = encoded(picture("RGBA"), "AVIF")
    variant = relayout(original, **LAYOUTS[layout])
    assert pixels(variant) == pixels(original)  # the relayout itself is a valid AVIF
    result = marked(variant, "avif")
    assert pixels(result) == pixels(original)
    assert_disclosed(result, tmp_path, GENERATOR, CREATED)


# -- what cannot be marked is refused -------------------------------------------------------


def avif_with_method(method: int) -> bytes:
    original = encoded(picture(), "AVIF")
    variant = bytearray(relayout(original, version=1, offset=4, length=4, base=0, index=0))
    (_, meta_start, meta_end) = next(
        b for b in boxes(bytes(variant), 0, len(variant)) if b[0] == b"meta"
    )
    _, iloc_start, _ = next(
        c for c in boxes(bytes(variant), meta_start + 12, meta_end) if c[0] == b"iloc"
    )
    variant[iloc_start + 8 + 8 + 2 + 1] = method  # the first item's construction method
    return bytes(variant)


MALFORMED = {
    "png-signature-only": ("png", b"\x89PNG\r\n\x1a\n"),
    "png-not-ihdr-first": (
        "png",
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I4s", 0, b"IEND") + b"\0" * 4,
    ),
    "jpeg-without-soi": ("jpeg", b"\xff\xe0\x00\x10JFIF"),
    "jpeg-truncated": ("jpeg", encoded(picture(), "JPEG")[:30]),
    "webp-bad-riff-size": ("webp", encoded(picture(), "WEBP")[:-2]),
    "webp-unknown-chunk": ("webp", b"RIFF\x0c\x00\x00\x00WEBPABCD\x00\x00\x00\x00"),
    "avif-truncated": ("avif", encoded(picture(), "AVIF")[:100]),
    "avif-item-offset-construction": ("avif", avif_with_method(2)),
    "avif-no-meta": ("avif", box(b"ftyp", b"avif\x00\x00\x00\x00") + box(b"mdat", b"x")),
    "avif-image-sequence": (
        "avif",
        box(b"ftyp", b"avis\x00\x00\x00\x00") + box(b"moov", b"") + box(b"mdat", b"x"),
    ),
    "gif": ("gif", b"GIF89a"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_what_cannot_be_parsed_raises_disclosure_error(name):
    fmt, data = MALFORMED[name]
    with pytest.raises(DisclosureError):
        marked(data, fmt)


# -- the API: what is stored, hashed, served and answered is the marked image ---------------


def test_a_generation_is_stored_marked_and_described_by_its_sha256(client, auth, tmp_path):
    body = generate(client, auth, generation("a lighthouse", square=256)).json()
    download = client.get(body["data"][0]["url"])
    assert download.status_code == 200
    data = download.content
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    assert len(data) == body["bytes"] == int(download.headers["content-length"])
    assert download.headers["etag"] == f'"{body["sha256"]}"'
    assert_disclosed(data, tmp_path, body["model"], body["created"], body["id"])
    assert pixels(data)[1] == (256, 256)


def test_a_b64_json_answer_is_the_marked_image(client, auth, tmp_path):
    ask = generation("a lighthouse at dusk", square=256, response_format="b64_json")
    first = generate(client, auth, ask).json()
    data = base64.b64decode(first["data"][0]["b64_json"])
    assert_disclosed(data, tmp_path, first["model"], first["created"], first["id"])
    assert hashlib.sha256(data).hexdigest() == first["sha256"]
    again = generate(client, auth, ask)  # a cache hit reads the stored object
    assert again.headers["x-cache"] == "HIT"
    assert base64.b64decode(again.json()["data"][0]["b64_json"]) == data


@pytest.mark.settings(ai_disclosure=False)
def test_with_ai_disclosure_off_only_the_signed_credentials_say_so(client, auth, tmp_path):
    body = generate(client, auth, generation("a lighthouse", square=256)).json()
    data = client.get(body["data"][0]["url"]).content
    assert read_xmp(data, tmp_path) == {}
    assert b"caBX" in data  # the C2PA store (C2PA is its own setting)


@pytest.mark.settings(ai_disclosure=False, c2pa=False)
def test_with_ai_disclosure_and_c2pa_off_the_image_is_stored_as_made(client, auth, tmp_path):
    body = generate(client, auth, generation("a lighthouse", square=256)).json()
    data = client.get(body["data"][0]["url"]).content
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    assert read_xmp(data, tmp_path) == {}
    assert b"trainedAlgorithmicMedia" not in data
