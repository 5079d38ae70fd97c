"""Where the two runtimes could read one request two ways, they answer it the same: racing
DELETEs of one image, a request carrying two credentials, a key listing's malformed cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..support.bodies import generate, generation
from ..support.config import ADMIN_TOKEN

pytestmark = pytest.mark.runtimes("local", "worker")


def test_of_racing_deletes_of_one_image_exactly_one_deletes_it(
    client: httpx.Client, async_client: Callable[..., Any], auth: dict[str, str]
) -> None:
    """Like a second DELETE, every DELETE but the one that deleted the image is a 404."""
    r = generate(client, auth, generation("a glass lighthouse", square=256))
    assert r.status_code == 200, r.text
    image_id = r.json()["id"]

    async def race() -> list[httpx.Response]:
        async with async_client() as http:
            return list(
                await asyncio.gather(
                    *(http.delete(f"/v1/images/{image_id}", headers=auth) for _ in range(10))
                )
            )

    answers = asyncio.run(race())
    assert sorted(a.status_code for a in answers) == [200] + [404] * 9
    assert all(a.json()["error"]["code"] == "not_found" for a in answers if a.status_code == 404)
    assert client.get(f"/v1/images/{image_id}", headers=auth).status_code == 404


def twice(first: str, second: str) -> list[tuple[str, str]]:
    """Two ``Authorization`` headers, sent as two header lines."""
    return [("Authorization", first), ("Authorization", second)]


@pytest.mark.parametrize("valid_first", [True, False], ids=["valid-first", "valid-second"])
def test_two_authorization_headers_are_one_invalid_credential(
    client: httpx.Client, auth: dict[str, str], valid_first: bool
) -> None:
    """A request is one credential: two ``Authorization`` headers are read as one value
    (joined with ", ", as the Fetch standard has it), which is no key, whichever comes
    first. The generation route (answered before the framework) and a listing route read
    it alike."""
    valid, bad = auth["Authorization"], "Bearer fg_not-a-key-0123456789abcdef0123456789"
    headers = twice(valid, bad) if valid_first else twice(bad, valid)
    for r in (
        client.post("/v1/images/generations", json=generation("a kite"), headers=headers),
        client.get("/v1/images", headers=headers),
    ):
        assert r.request.headers.get_list("authorization") == [h for _, h in headers]
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_api_key"


def test_two_authorization_headers_are_no_admin_token(client: httpx.Client) -> None:
    r = client.get("/v1/admin/keys", headers=twice(f"Bearer {ADMIN_TOKEN}", "Bearer nope"))
    assert r.request.headers.get_list("authorization") == [f"Bearer {ADMIN_TOKEN}", "Bearer nope"]
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"


@pytest.mark.parametrize("cursor", ["%FF", "%C3%A9", "a%20b", "%00"])
def test_a_malformed_key_cursor_is_400_as_an_images_cursor_is(
    client: httpx.Client, admin: dict[str, str], auth: dict[str, str], cursor: str
) -> None:
    """Not a cursor any listing returns (not printable ASCII): refused, never read as an
    empty page or as the first one; the code is the images listing's for its cursor."""
    for path in ("/v1/admin/keys", "/v1/admin/usage"):
        r = client.get(f"{path}?cursor={cursor}", headers=admin)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["param"] == "cursor"
    images = client.get("/v1/images?cursor=%FF", headers=auth)
    assert images.status_code == 400 and images.json()["error"]["code"] == "invalid_request"
