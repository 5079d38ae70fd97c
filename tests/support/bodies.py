"""Generation requests for the API tests: one way to build a body, one way to send it.

Most test modules send the same kind of request, a prompt with a few parameters, to
``POST /v1/images/generations``. Each used to spell the body out as a dict literal and
carry its own helper to post it, with small differences in what the helper took. Here
there is one builder and one sender, so that a test module states only what matters to it
(its prompt, which the moderation and policy tests depend on word for word, and the
parameters it varies), and a change to how a request is sent is made in one place.

The builder returns a plain dict, the JSON body exactly as sent: a test that needs a
variant writes ``{**BODY, "seed": 7}``, and a test about malformed input writes its dict
literal directly.
"""

from __future__ import annotations

from typing import Any

import httpx

GENERATIONS = "/v1/images/generations"


def generation(prompt: str, *, square: int | None = None, **fields: Any) -> dict[str, Any]:
    """The JSON body of a generation request for ``prompt``.

    ``square=256`` sets ``width`` and ``height`` both to 256 (named so as not to be
    confused with the API's own ``size`` field, ``"WIDTHxHEIGHT"``, which passes through
    like every other field). Other ``fields`` (``steps``, ``seed``, ``size``,
    ``webhook_url``, ...) are copied into the body as given, unchecked: the API, not the
    builder, decides what is valid.
    """
    body: dict[str, Any] = {"prompt": prompt}
    if square is not None:
        if "width" in fields or "height" in fields:
            raise TypeError("square sets width and height; pass one or the other")
        body.update(width=square, height=square)
    return {**body, **fields}


def generate(
    client: httpx.Client,
    auth: dict[str, str],
    body: dict[str, Any] | None = None,
    /,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """``POST /v1/images/generations`` with ``body`` as JSON, as the holder of ``auth``.

    ``headers`` are sent on top of ``auth`` (``Prefer``, ``Cache-Control``, ...). Without a
    ``body``, the request's content comes from ``kwargs`` (``json=``, ``data=``,
    ``files=``, ``content=``), which, like any other keyword, go to ``client.post`` as
    they are.
    """
    if body is not None:
        if "json" in kwargs:
            raise TypeError("pass the JSON body once, as body or as json=")
        kwargs["json"] = body
    return client.post(GENERATIONS, headers={**auth, **(headers or {})}, **kwargs)
