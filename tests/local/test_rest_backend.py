"""The Workers AI REST backend sends the binding's multipart body and maps REST errors."""

import base64
import json

import httpx
import pytest

from fluxgate.local.placeholder import parse_multipart
from fluxgate.local.rest import RestAI
from fluxgate.model.port import ModelInput, MultipartImageModel
from fluxgate.model.upstream import UpstreamError

from ..support.image_files import image_bytes

pytestmark = pytest.mark.anyio

PNG = image_bytes("PNG", 64, 48)


def model_with(handler):
    transport = httpx.MockTransport(handler)
    rest = RestAI(
        "acct123", "cf-token-secret", base_url="https://api.test/client/v4", transport=transport
    )
    return MultipartImageModel(rest)


async def test_posts_multipart_with_boundary_to_the_model_url():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers["authorization"]
        seen["fields"], seen["files"] = parse_multipart(
            request.content, request.headers["content-type"]
        )
        body = {"success": True, "result": {"image": base64.b64encode(PNG).decode()}}
        return httpx.Response(200, json=body)

    image = await model_with(handler).generate(
        ModelInput(prompt="a fox", width=512, height=256, steps=4, seed=9, guidance=3.5)
    )
    assert image.data.python_bytes() == PNG and image.info.format == "png"
    assert seen["url"] == (
        "https://api.test/client/v4/accounts/acct123/ai/run/@cf/black-forest-labs/flux-2-dev"
    )
    assert seen["auth"] == "Bearer cf-token-secret"
    assert seen["fields"] == {
        "prompt": "a fox",
        "width": "512",
        "height": "256",
        "steps": "4",
        "seed": "9",
        "guidance": "3.5",
    }


async def test_rest_errors_carry_the_workers_ai_code():
    def handler(request):
        return httpx.Response(
            503, json={"success": False, "errors": [{"code": 3040, "message": "Capacity"}]}
        )

    with pytest.raises(UpstreamError) as exc:
        await model_with(handler).generate(ModelInput("x", 512, 512, 4, 1))
    assert exc.value.code == 3040


async def test_non_json_failures_and_timeouts_are_upstream_errors():
    with pytest.raises(UpstreamError) as exc:
        await model_with(lambda r: httpx.Response(502, text="<html>bad gateway")).generate(
            ModelInput("x", 512, 512, 4, 1)
        )
    assert exc.value.code is None

    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamError) as exc:
        await model_with(timeout).generate(ModelInput("x", 512, 512, 4, 1))
    assert exc.value.code == 3007


async def test_an_answer_without_an_image_is_an_upstream_error():
    def handler(request):
        return httpx.Response(200, json={"success": True, "result": {"image": "not base64!"}})

    with pytest.raises(UpstreamError, match="base64"):
        await model_with(handler).generate(ModelInput("x", 512, 512, 4, 1))

    def empty(request):
        return httpx.Response(200, content=json.dumps({"success": True, "result": {}}))

    with pytest.raises(UpstreamError, match="no image"):
        await model_with(empty).generate(ModelInput("x", 512, 512, 4, 1))
