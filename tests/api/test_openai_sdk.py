"""The official openai SDK, pointed at Fluxgate, works unchanged."""

import base64
import hashlib

import httpx2
import openai
import pytest

from fluxgate import FLUX_MODEL_ID

from ..support.clients import origin
from ..support.image_files import image_bytes

pytestmark = [pytest.mark.anyio, pytest.mark.runtimes("local", "worker")]


@pytest.fixture
async def connect(async_client):
    """An SDK client with an API key, on the runtime under test (base URL: origin + /v1)."""
    async with async_client(httpx2) as http:
        base = str(http.base_url).rstrip("/")

        def sdk(api_key):
            return openai.AsyncOpenAI(
                base_url=f"{base}/v1", api_key=api_key, http_client=http, max_retries=0
            )

        yield sdk


@pytest.fixture
def sdk(connect, auth):
    return connect(auth["Authorization"].split()[1])


async def test_generate_with_url_response(sdk, client):
    result = await sdk.images.generate(
        model=FLUX_MODEL_ID, prompt="a red bicycle", size="1024x768", response_format="url", n=1
    )
    assert result.created > 0 and len(result.data) == 1
    url = result.data[0].url
    assert url.startswith(f"{sdk.base_url}files/images/")
    assert client.get(url.removeprefix(origin(client))).status_code == 200


async def test_klein_drafts_and_safe_retries_through_the_sdk(sdk, ai):
    """``model=`` picks klein; ``extra_headers`` carries an Idempotency-Key, so the SDK's
    retry of a lost answer replays it."""
    ask = {
        "model": "flux-2-klein-4b",
        "prompt": "a red bicycle",
        "size": "512x512",
        "extra_body": {"seed": 3},
        "extra_headers": {"Idempotency-Key": "sdk-draft-1", "Cache-Control": "no-cache"},
    }
    first = (await sdk.images.generate(**ask)).model_dump()
    again = (await sdk.images.generate(**ask)).model_dump()
    assert first["model"] == "@cf/black-forest-labs/flux-2-klein-4b" and first["steps"] == 4
    assert again == first
    assert ai.calls == 1
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.images.generate(
            model="flux-2-klein-4b", prompt="a red bicycle", extra_body={"steps": 8}
        )
    assert refused.value.param == "steps"


async def test_generate_with_b64_json_and_extra_body(sdk):
    result = await sdk.images.generate(
        model="flux-2-dev",
        prompt="a red bicycle",
        size="512x512",
        response_format="b64_json",
        extra_body={"steps": 4, "seed": 7},
    )
    data = base64.b64decode(result.data[0].b64_json)
    assert data.startswith(b"\x89PNG")
    raw = result.model_dump()
    assert raw["seed"] == 7 and raw["steps"] == 4 and raw["width"] == 512


async def test_edit_maps_images_to_reference_images(sdk, ai):
    pngs = [image_bytes("PNG", 128, 96, color=(i, 2, 3)) for i in range(2)]
    result = await sdk.images.edit(
        image=[("a.png", pngs[0], "image/png"), ("b.png", pngs[1], "image/png")],
        prompt="combine these",
        size="512x512",
        response_format="url",
    )
    assert result.data[0].url
    raw = result.model_dump()
    assert raw["reference_images"] == [hashlib.sha256(p).hexdigest() for p in pngs]
    sent = ai.inputs[-1]["multipart"]["body"]
    assert b'name="input_image_0"' in sent and b'name="input_image_1"' in sent


async def test_a_single_image_edit(sdk):
    png = image_bytes("PNG", 64, 64)
    result = await sdk.images.edit(
        image=("a.png", png, "image/png"), prompt="recolour", size="256x256"
    )
    assert result.model_dump()["reference_images"] == [hashlib.sha256(png).hexdigest()]


async def test_user_scopes_the_cache_per_end_user(sdk, ai):
    for user in ("alice", "alice", "bob"):
        await sdk.images.generate(
            prompt="a fox", size="256x256", user=user, extra_body={"steps": 1}
        )
    assert ai.calls == 2


@pytest.mark.parametrize(
    ("kwargs", "status", "param"),
    [
        ({"n": 2}, 400, "n"),
        ({"model": "dall-e-3"}, 400, "model"),
        ({"size": "4096x4096"}, 400, None),
        ({"quality": "hd"}, 400, "quality"),
        ({"style": "vivid"}, 400, "style"),
    ],
)
async def test_what_cannot_be_honoured_is_an_openai_shaped_error(sdk, kwargs, status, param):
    with pytest.raises(openai.APIStatusError) as exc:
        await sdk.images.generate(prompt="x", **kwargs)
    assert exc.value.status_code == status
    body = exc.value.body
    assert set(body) >= {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error"
    if param:
        assert body["param"] == param


async def test_an_edit_with_a_mask_is_refused(sdk):
    png = image_bytes("PNG", 64, 64)
    with pytest.raises(openai.BadRequestError) as exc:
        await sdk.images.edit(
            image=("a.png", png, "image/png"), mask=("m.png", png, "image/png"), prompt="x"
        )
    assert exc.value.body["code"] == "unsupported_parameter"


async def test_authentication_errors_are_typed(connect):
    with pytest.raises(openai.AuthenticationError):
        await connect("fgk_nope").images.generate(prompt="x")


async def test_models_list_names_the_flux_2_family(sdk):
    models = await sdk.models.list()
    assert [m.id for m in models.data] == [
        FLUX_MODEL_ID,
        "@cf/black-forest-labs/flux-2-klein-4b",
        "@cf/black-forest-labs/flux-2-klein-9b",
    ]
    assert (await sdk.models.retrieve(FLUX_MODEL_ID)).owned_by == "black-forest-labs"
    klein = await sdk.models.retrieve("flux-2-klein-4b")
    assert klein.id == "@cf/black-forest-labs/flux-2-klein-4b"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("gpt-image-1")
