"""Cases run inside Pyodide by images_harness.mjs: ``WorkersImageTransformer`` over the
harness's double of the Images binding (images_double.mjs), reached as the Worker reaches it
(``env`` as the Workers SDK wraps it for an entrypoint). Each ``case_*`` returns artifacts
(encoded images, base64) that tests/edge/test_images_binding.py decodes with Pillow under CPython.
"""

import base64
import hashlib
import json
import random
import struct
import time
import traceback
import tracemalloc
import zlib
from types import SimpleNamespace

from images_harness import binding, ctx, env, images
from js import Blob, Object
from pyodide.ffi import JsException, to_js
from workers import WorkerEntrypoint

from fluxgate.delivery.variants import FORMATS, TransformError
from fluxgate.edge.bindings.image_buffer import JsImage
from fluxgate.edge.bindings.images_binding import WorkersImageTransformer, transformer_from_env
from fluxgate.edge.ffi import js_bytes
from fluxgate.local.placeholder import render_png

worker_env = WorkerEntrypoint(ctx, env).env
raw = getattr(env, binding)


def png(width, height, seed="x"):
    return render_png(width, height, hashlib.sha256(seed.encode()).digest())


def noise_png(width, height):
    """A PNG of random pixels: incompressible, so as large as a detailed photo's."""
    rows = random.Random(width * height).randbytes(width * height * 3)
    raw = b"".join(b"\0" + rows[y * width * 3 : (y + 1) * width * 3] for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def js_obj(value):
    return to_js(value, dict_converter=Object.fromEntries)


def last_call():
    return images.stats().to_py()["calls"][-1]


def b64(image):
    return base64.b64encode(image.python_bytes()).decode()


async def refused(awaitable):
    try:
        await awaitable
    except TransformError as exc:
        return exc
    raise AssertionError("expected TransformError")


async def case_a_png_becomes_each_variant_format_at_256_px():
    transformer = transformer_from_env(worker_env)
    assert isinstance(transformer, WorkersImageTransformer)
    original = JsImage(js_bytes(png(640, 480)))
    artifacts = {}
    for fmt, mime in FORMATS.items():
        variant = await transformer.transform(original, 256, fmt)
        assert type(variant) is JsImage and variant.array.constructor.name == "Uint8Array"
        call = last_call()
        assert call["transforms"] == [{"width": 256, "fit": "scale-down"}], call
        assert call["format"] == mime and call["content_type"] == mime, call
        assert call["input_bytes"] == original.size, call
        artifacts[fmt] = b64(variant)
    return artifacts


async def case_scale_down_never_enlarges():
    variant = await transformer_from_env(worker_env).transform(
        JsImage(js_bytes(png(200, 150))), 512, "png"
    )
    return {"png": b64(variant)}


async def case_not_an_image_is_a_transform_error_with_9412():
    exc = await refused(
        transformer_from_env(worker_env).transform(
            JsImage(js_bytes(b"<html>no</html>")), 256, "webp"
        )
    )
    assert "9412" in str(exc), str(exc)
    assert isinstance(exc.__cause__, JsException)


async def case_a_scripted_outage_is_a_transform_error_with_its_code():
    images.fail(js_obj({"code": 9422, "message": "usage limit reached"}))
    exc = await refused(
        transformer_from_env(worker_env).transform(JsImage(js_bytes(png(64, 64))), 128, "jpeg")
    )
    assert "9422" in str(exc), str(exc)


async def case_avif_past_1200_px_is_refused_not_stored_as_webp():
    # A portrait original: its 1024-wide variant is 1536 high, past AVIF's 1,200 px.
    exc = await refused(
        transformer_from_env(worker_env).transform(JsImage(js_bytes(png(1024, 1536))), 1024, "avif")
    )
    assert "image/webp" in str(exc), str(exc)
    assert last_call()["content_type"] == "image/webp"


async def case_bytes_handed_to_input_fail_at_output_as_in_workerd():
    # workerd's client takes any non-stream for a text source: V8's TypeError, no code.
    for value in (js_bytes(png(32, 32)), js_bytes(png(32, 32)).buffer):
        try:
            await raw.input(value).output(js_obj({"format": "image/png"}))
        except JsException as exc:
            assert exc.name == "TypeError", exc.name
            assert getattr(exc, "code", None) is None
        else:
            raise AssertionError("a Uint8Array input was accepted")


async def case_the_binding_contract_codes():
    def stream():
        return Blob.new([js_bytes(png(300, 200))]).stream()

    async def code_of(awaitable):
        try:
            await awaitable
        except JsException as exc:
            assert str(exc.message).startswith(f"IMAGES_TRANSFORM_ERROR {exc.code}: "), exc.message
            return exc.code
        raise AssertionError("expected an ImagesError")

    bad_options = (
        {"widht": 100},
        {"width": 0},
        {"width": 12.5},
        {"fit": "stretch"},
        {"rotate": 45},
    )
    for bad in bad_options:
        transformer = raw.input(stream()).transform(js_obj(bad))
        assert await code_of(transformer.output(js_obj({"format": "image/webp"}))) == 9401, bad
    for fmt in ("image/bmp", "webp"):
        assert await code_of(raw.input(stream()).output(js_obj({"format": fmt}))) == 9401
    transformer = raw.input(stream())
    result = await transformer.output(js_obj({"format": "image/png"}))
    assert result.contentType() == "image/png"
    assert result.response().headers.get("content-type") == "image/png"
    assert await code_of(transformer.output(js_obj({"format": "image/png"}))) == 9525
    info = (await raw.info(stream())).to_py()
    assert info["format"] == "image/png" and (info["width"], info["height"]) == (300, 200), info
    try:
        await raw.info(Blob.new([js_bytes(b"garbage")]).stream())
    except JsException as exc:
        assert exc.code == 9412 and str(exc.message).startswith("IMAGES_INFO_ERROR 9412: ")
    else:
        raise AssertionError("info() of garbage was accepted")


async def case_no_binding_no_transformer():
    assert transformer_from_env(SimpleNamespace()) is None


async def case_the_image_bytes_stay_in_js():
    # Neither the original nor the variant becomes a Python object on the way.
    original = JsImage(js_bytes(noise_png(512, 512)))
    transformer = transformer_from_env(worker_env)
    tracemalloc.start()
    try:
        variant = await transformer.transform(original, 512, "png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    smallest = min(original.size, variant.size)
    assert smallest > 512 * 1024, (original.size, variant.size)
    assert peak < 64 * 1024, (peak, original.size, variant.size)


async def run():
    results = []
    for name, case in [(n, f) for n, f in globals().items() if n.startswith("case_")]:
        started = time.monotonic()
        try:
            artifacts = await case()
            results.append({"case": name, "ok": True, "artifacts": artifacts or {}})
        except BaseException as exc:
            detail = "".join(traceback.format_exception(exc)[-6:])
            results.append({"case": name, "ok": False, "detail": detail})
        results[-1]["seconds"] = round(time.monotonic() - started, 3)
    return json.dumps(results)
