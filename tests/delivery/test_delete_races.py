"""DELETE /v1/images/{id} racing the downloads of its variants: a variant whose making began
before the deletion (its original already read) and ended after it is not kept. Once the
DELETE has answered and the downloads in flight have, every signed URL of the image, its
variants' included, answers 404 and nothing is left under ``variants/<sha256>/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..support.bodies import generation
from ..support.transformer import CountingTransformer

pytestmark = [pytest.mark.anyio, pytest.mark.runtimes("local", "worker")]

VARIANT = "1024.png"


async def generated(http: httpx.AsyncClient, auth: dict[str, str], prompt: str, side: int) -> Any:
    """A fresh generation (a MISS: its own object) with a signed URL for :data:`VARIANT`."""
    body = generation(prompt, square=side, variants=[VARIANT])
    r = await http.post("/v1/images/generations", json=body, headers=auth)
    assert r.status_code == 200 and r.headers["x-cache"] == "MISS", r.text
    return r.json()


def variant_url(body: Any) -> str:
    return str(body["data"][0]["variants"][VARIANT])


async def assert_no_variant_left(http: httpx.AsyncClient, storage: Any, body: Any) -> None:
    """The variant's signed URL is a 404 and the bucket holds none of the image's variants."""
    r = await http.get(variant_url(body))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.status_code
    assert storage.object_keys(f"variants/{body['sha256']}/") == []


@pytest.mark.runtimes("local")
async def test_a_variant_being_made_when_its_image_is_deleted_is_dropped(
    async_client: Callable[..., Any],
    auth: dict[str, str],
    storage: Any,
    images: CountingTransformer,
) -> None:
    async with async_client() as http:
        body = await generated(http, auth, "a paper crane in the rain", 512)
        images.hold()
        download = asyncio.create_task(http.get(variant_url(body)))
        await images.started()  # the original is read; the variant is not stored yet

        deleted = await http.delete(f"/v1/images/{body['id']}", headers=auth)
        images.release()
        caught = await download

        assert deleted.status_code == 200, deleted.text
        assert caught.status_code == 404 and caught.json()["error"]["code"] == "not_found"
        assert images.made == 1
        await assert_no_variant_left(http, storage, body)


@pytest.mark.parametrize("head_start_ms", [0, 20, 50, 100])
async def test_a_burst_of_variant_downloads_racing_the_delete_leaves_no_variant(
    async_client: Callable[..., Any],
    auth: dict[str, str],
    storage: Any,
    head_start_ms: int,
) -> None:
    # No runtime can hold the Images binding mid-way: ten first downloads of a large
    # image's variant, with the DELETE sent while they are (most likely) being answered.
    # Whatever each download answered, nothing of the variant outlives them and the DELETE.
    async with async_client() as http:
        body = await generated(http, auth, f"a lighthouse at dusk, {head_start_ms}", 1920)
        downloads = [asyncio.create_task(http.get(variant_url(body))) for _ in range(10)]
        await asyncio.sleep(head_start_ms / 1000)

        deleted = await http.delete(f"/v1/images/{body['id']}", headers=auth)
        answered = await asyncio.gather(*downloads)

        assert deleted.status_code == 200, deleted.text
        assert {r.status_code for r in answered} <= {200, 404}
        await assert_no_variant_left(http, storage, body)
