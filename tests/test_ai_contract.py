"""The AI double holds callers to the flux-2-dev binding contract."""

import base64

import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.images import inspect_image
from fluxgate.local.placeholder import InferenceUpstreamError, PlaceholderAI
from fluxgate.multipart import FilePart, encode_form

from .doubles import image_bytes

pytestmark = pytest.mark.anyio


def form(*extra, prompt="a cat"):
    return encode_form([("prompt", prompt), *extra])


async def run(body, content_type):
    return await PlaceholderAI().run(
        FLUX_MODEL_ID, {"multipart": {"body": body, "contentType": content_type}}
    )


async def test_a_valid_form_returns_a_real_png_of_the_requested_size():
    body, ct = form(("width", "640"), ("height", "320"), ("seed", "5"))
    result = await run(body, ct)
    info = inspect_image(base64.b64decode(result["image"]))
    assert (info.format, info.width, info.height) == ("png", 640, 320)


async def test_same_inputs_give_the_same_image_and_another_seed_another():
    a = await run(*form(("seed", "1")))
    b = await run(*form(("seed", "1")))
    c = await run(*form(("seed", "2")))
    assert a == b and a != c


async def test_a_content_type_without_boundary_is_refused():
    body, _ = form()
    with pytest.raises(InferenceUpstreamError, match=r"^5006: .*boundary"):
        await run(body, "multipart/form-data")


async def test_a_plain_dict_instead_of_multipart_is_refused():
    with pytest.raises(InferenceUpstreamError, match=r"^5006"):
        await PlaceholderAI().run(FLUX_MODEL_ID, {"prompt": "a cat"})


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ([("style", "anime")], "unknown field"),
        ([("width", "255")], "width"),
        ([("height", "1921")], "height"),
        ([("steps", "many")], "steps"),
        (
            [("input_image_4", FilePart(image_bytes("PNG", 8, 8), "image/png", "x.png"))],
            "unknown field",
        ),
        (
            [("input_image_0", FilePart(image_bytes("PNG", 512, 100), "image/png", "x.png"))],
            "smaller than 512x512",
        ),
        ([("input_image_0", FilePart(image_bytes("GIF", 8, 8), "image/gif", "x.gif"))], "GIF"),
    ],
)
async def test_contract_violations_fail_like_workers_ai(fields, needle):
    with pytest.raises(InferenceUpstreamError, match=r"^5006") as exc:
        await run(*form(*fields))
    assert needle in str(exc.value)


async def test_missing_prompt_is_refused():
    body, ct = encode_form([("width", "512")])
    with pytest.raises(InferenceUpstreamError, match="prompt"):
        await run(body, ct)


async def test_reference_images_are_accepted_under_512():
    refs = [
        (f"input_image_{i}", FilePart(image_bytes("JPEG", 511, 300), "image/jpeg", "r.jpg"))
        for i in range(4)
    ]
    assert "image" in await run(*form(*refs))


async def test_unknown_model_is_refused():
    body, ct = form()
    with pytest.raises(InferenceUpstreamError, match=r"^5007"):
        await PlaceholderAI().run("@cf/other", {"multipart": {"body": body, "contentType": ct}})
