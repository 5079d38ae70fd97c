"""The generation routes' answers, kept and replayed under ``Idempotency-Key``.

:mod:`fluxgate.service.idempotency` decides (claim, wait, replay, what is kept); this module is
the HTTP side: an :class:`Answer` becomes the :class:`~.reply.Reply`, and the text kept for a
replay is the same JSON rendered the same way, so a replay is byte for byte the first body.
A ``b64_json`` answer is kept without its image (it may be megabytes): the replay reads the
stored image back and hands it to the runtime to splice in where it was, as the first
answer did. What a row keeps is so about a
kilobyte: the body (a few hundred bytes of JSON with its signed URL), the headers that
describe it, the key and the request's hash.

Every answer kept has been counted against the caller's rate limit: a model-bound one was
(its ``RateLimit-*`` headers say so), and one that was not (a cache hit, a refusal) is
counted here before it is kept, so that new keys cannot be stored faster than the caller
may generate. Over the limit, the claim is released and the answer is ``429
rate_limited``. A replay counts nothing: it stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ApiError, rendered, storage_unavailable
from ..imaging.image_bytes import ImageBytes
from ..service.gateway import Gateway
from ..service.idempotency import REPLAYED, Attempt, stored
from ..store.answers import StoredResponse
from .reply import Reply, b64_mark, json_reply, render

# The headers a replay repeats: what describes the answer, not the request that made it
# (no RateLimit-*, no Server-Timing: a replay counts against nothing and calls no model).
# Retry-After is a job's polling advice.
_KEPT_HEADERS = frozenset(
    {
        "x-cache",
        "x-fluxgate-model",
        "cache-control",
        "location",
        "preference-applied",
        "retry-after",
    }
)


@dataclass(frozen=True)
class Answer:
    """A generation route's answer. With ``image`` (a ``b64_json`` answer), ``content``'s
    ``data[0].b64_json`` is :func:`~.reply.b64_mark` and ``image_key`` the image's stored
    object."""

    status: int
    content: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    image: ImageBytes | None = None
    image_key: str | None = None

    def reply(self) -> Reply:
        """The answer as sent."""
        return json_reply(self.status, self.content, self.headers, self.image)


def kept(answer: Answer) -> StoredResponse:
    """The answer as kept for replay: its body without the image, the headers that
    describe the answer."""
    content = answer.content
    if answer.image_key is not None:
        content = {**content, "data": [{**content["data"][0], "b64_json": None}]}
    headers = {k: v for k, v in answer.headers.items() if k.lower() in _KEPT_HEADERS}
    return StoredResponse(answer.status, render(content), headers, answer.image_key)


def kept_refusal(error: ApiError) -> StoredResponse:
    """A refusal as kept: as it was sent (:func:`~fluxgate.errors.rendered`), its body
    with its request id."""
    answer = rendered(error)
    return StoredResponse(answer.status, answer.body, answer.headers)


async def replayed(gw: Gateway, stored: StoredResponse) -> Reply:
    """The first answer again, marked ``Idempotent-Replayed: true``."""
    headers = {**stored.headers, REPLAYED: "true"}
    if stored.image_key is None:
        return Reply(stored.status, {**headers, "content-type": "application/json"}, stored.body)
    try:
        image = await gw.objects.read_image(stored.image_key)
    except Exception as exc:
        raise storage_unavailable("the first answer's image could not be read") from exc
    if image is None:
        raise ApiError(
            410,
            "image_gone",
            "The image of the first answer is no longer stored; send the request again "
            "with a new Idempotency-Key.",
        )
    content = json.loads(stored.body)
    content["data"][0]["b64_json"] = b64_mark()
    return json_reply(stored.status, content, headers, image)


async def idempotently(
    gw: Gateway, attempt: Attempt, answer: Callable[[], Awaitable[Answer]]
) -> Answer:
    """Run the claimed request, count it if it was not, keep (or release) its answer, and
    return it."""
    try:
        made = await answer()
    except ApiError as error:  # a refusal: kept if the same request would be refused again
        await _counted(gw, attempt, error.status, error.headers)
        await gw.idempotency.finish(attempt, kept_refusal(error))
        raise
    except BaseException:
        await gw.idempotency.release(attempt)
        raise
    pace = await _counted(gw, attempt, made.status, made.headers)
    if pace:
        made = replace(made, headers={**made.headers, **pace})
    await gw.idempotency.finish(attempt, kept(made))
    return made


async def _counted(
    gw: Gateway, attempt: Attempt, status: int, headers: Mapping[str, str]
) -> Mapping[str, str]:
    """Count an answer about to be kept that the rate limit has not seen (see the module
    docstring): its ``RateLimit-*`` headers. Over the limit the claim is released and the
    ``429`` raised."""
    if not stored(status) or any(name.lower() == "ratelimit-policy" for name in headers):
        return {}
    try:
        return await gw.controls.count_request(attempt.principal)
    except BaseException:
        await gw.idempotency.release(attempt)
        raise
