"""The AI double holds callers to each FLUX.2 model's binding contract."""

import base64

import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.imaging.formats import inspect_image
from fluxgate.local.placeholder import InferenceUpstreamError, PlaceholderAI
from fluxgate.model.family import FLUX_2_DEV, FLUX_2_KLEIN_4B, FLUX_2_KLEIN_9B, MODEL_IDS
from fluxgate.model.multipart import FilePart, encode_form

from ..support.image_files import image_bytes

pytestmark = pytest.mark.anyio


def form(*extra, prompt="a cat"):
    return encode_form([("prompt", prompt), *extra])


async def run(body, content_type, model=FLUX_MODEL_ID):
    return await PlaceholderAI().run(
        model, {"multipart": {"body": body, "contentType": content_type}}
    )


KLEIN_IDS = [FLUX_2_KLEIN_4B.id, FLUX_2_KLEIN_9B.id]


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


# -- the FLUX.2 family: each model its own contract ---------------------------------------


@pytest.mark.parametrize("model", MODEL_IDS)
async def test_each_served_model_answers_a_png(model):
    result = await run(*form(("width", "512"), ("height", "256"), ("seed", "3")), model=model)
    info = inspect_image(base64.b64decode(result["image"]))
    assert (info.format, info.width, info.height) == ("png", 512, 256)


@pytest.mark.parametrize("model", KLEIN_IDS)
async def test_klein_draws_without_steps_with_every_other_field(model):
    ref = FilePart(image_bytes("PNG", 64, 64), "image/png", "r.png")
    fields = [("width", "320"), ("height", "256"), ("guidance", "2.5"), ("seed", "9")]
    assert "image" in await run(*form(*fields, ("input_image_0", ref)), model=model)


@pytest.mark.parametrize("model", KLEIN_IDS)
@pytest.mark.parametrize("steps", ["4", "1", "50"])
async def test_klein_refuses_steps_even_its_own_fixed_four(model, steps):
    with pytest.raises(InferenceUpstreamError, match=r"^5006: ") as exc:
        await run(*form(("steps", steps)), model=model)
    assert str(exc.value) == (
        f"5006: '/steps' cannot be set for {model}: "
        "the steps parameter is fixed at 4 for this model"
    )


async def test_dev_still_takes_steps_in_range():
    assert "image" in await run(*form(("steps", "50")), model=FLUX_2_DEV.id)
    with pytest.raises(InferenceUpstreamError, match=r"^5006: .*steps"):
        await run(*form(("steps", "51")), model=FLUX_2_DEV.id)


async def test_same_fields_different_model_give_a_different_image():
    fields = (("width", "256"), ("height", "256"), ("seed", "11"))
    images = [(await run(*form(*fields), model=model))["image"] for model in MODEL_IDS]
    assert len(set(images)) == len(MODEL_IDS)
    again = await run(*form(*fields), model=FLUX_2_KLEIN_4B.id)
    assert again["image"] == images[MODEL_IDS.index(FLUX_2_KLEIN_4B.id)]


@pytest.mark.parametrize(
    "model",
    [
        "@cf/black-forest-labs/flux-2-pro",
        "flux-2-klein-4b",  # the binding takes Workers AI ids, not the gateway's short names
        "@cf/black-forest-labs/flux-1-schnell",
    ],
)
async def test_a_model_outside_the_family_is_no_such_model(model):
    body, ct = form()
    with pytest.raises(InferenceUpstreamError) as exc:
        await PlaceholderAI().run(model, {"multipart": {"body": body, "contentType": ct}})
    assert str(exc.value) == f"5007: No such model {model}"


async def test_models_lists_every_served_model_matching_the_search():
    ai = PlaceholderAI()
    assert await ai.models("flux-2") == list(MODEL_IDS)
    assert await ai.models("klein") == KLEIN_IDS
    assert await ai.models(FLUX_2_KLEIN_9B.id) == [FLUX_2_KLEIN_9B.id]
    assert await ai.models("FLUX-2-DEV") == [FLUX_2_DEV.id]
    assert await ai.models("stable-diffusion") == []
