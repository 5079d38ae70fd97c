"""The Workers side of variants: ``WorkersImageTransformer``
(src/fluxgate/edge/bindings/images_binding.py)
in real Pyodide over the Pyodide harness's double of the Cloudflare Images binding
(tests/pyodide/images_double.mjs, encoding with sharp), and the double's contract as
workerd's client (src/cloudflare/internal/images-api.ts) and Cloudflare's service present it.

tests/pyodide/images_harness.mjs (a unit-test harness, not the Worker) runs the cases of
tests/pyodide/images_cases.py once per session; the variants they made come back as bytes
and are decoded here with Pillow.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from ..support.pyodide_runner import cases, run_harness

NODE_PACKAGES = ("pyodide", "sharp", "smol-toml")
CASES = cases("images_cases.py")
PILLOW_FORMATS = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}


@pytest.fixture(scope="session")
def results() -> dict[str, dict[str, object]]:
    return run_harness("images_harness.mjs", NODE_PACKAGES)


def decoded(results: dict[str, dict[str, object]], case: str, fmt: str) -> Image.Image:
    record = results[case]
    assert record["ok"], record.get("detail")
    artifacts = record["artifacts"]
    assert isinstance(artifacts, dict)
    image = Image.open(io.BytesIO(base64.b64decode(artifacts[fmt])))
    image.load()
    return image


def test_every_case_was_run(results):
    assert sorted(results) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_case(results, case):
    assert results[case]["ok"], results[case].get("detail")


@pytest.mark.parametrize("fmt", sorted(PILLOW_FORMATS))
def test_a_variant_is_a_real_image_of_the_asked_format_and_width(results, fmt):
    image = decoded(results, "case_a_png_becomes_each_variant_format_at_256_px", fmt)
    assert image.format == PILLOW_FORMATS[fmt]
    assert image.size == (256, 192)  # 640x480 scaled, aspect kept


@pytest.mark.parametrize("fmt", sorted(PILLOW_FORMATS))
def test_a_variant_carries_no_metadata(results, fmt):
    image = decoded(results, "case_a_png_becomes_each_variant_format_at_256_px", fmt)
    assert not image.getexif()
    assert "xmp" not in image.info and "XML:com.adobe.xmp" not in image.info


def test_scale_down_keeps_a_smaller_original_at_its_size(results):
    image = decoded(results, "case_scale_down_never_enlarges", "png")
    assert image.size == (200, 150)
