"""The AI binding as the gateway's :class:`~fluxgate.model.port.ImageModel`.

The body is built exactly as the model's documentation does: a JS ``FormData`` with string
fields and ``Blob`` reference images, serialised through ``new Response(form)`` so that the
stream and the ``Content-Type`` *with its boundary* travel together. Passing the FormData
itself, or a content type without boundary, fails on Cloudflare.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from js import Blob, FormData, Response
from pyodide.ffi import JsException, JsProxy, to_js

from ...model.family import DEFAULT_MODEL, ModelSpec
from ...model.port import GeneratedImage, ModelInput, check_listed, decode_model_output, typed_image
from ...model.upstream import UpstreamError, parse_upstream_message
from ..ffi import js_bytes, js_object, unwrap
from .image_buffer import base64_field


def build_form(request: ModelInput) -> Any:
    form = FormData.new()
    for name, value in request.text_fields():
        form.append(name, value)
    for name, ref in request.file_fields():
        blob = Blob.new(to_js([js_bytes(ref.data)]), js_object({"type": ref.info.mime}))
        form.append(name, blob, f"{name}.{ref.info.extension}")
    return form


def multipart_inputs(request: ModelInput) -> Any:
    serialised = Response.new(build_form(request))
    return js_object(
        {
            "multipart": {
                "body": serialised.body,
                "contentType": serialised.headers.get("content-type"),
            }
        }
    )


async def listed_models(ai: Any, search: str) -> list[str]:
    """``env.AI.models({search})``: the catalog's matching models, by name (free)."""
    found = await ai.models(js_object({"search": search}))
    return [str(model.name) for model in found]


class WorkersAIRunner:
    """``env.AI.run`` for JSON models (Llama Guard): inputs as a plain JS object."""

    def __init__(self, binding: Any) -> None:
        self._ai = unwrap(binding)

    async def run(self, model: str, inputs: Mapping[str, Any]) -> Any:
        result = await self._ai.run(model, js_object(dict(inputs)))
        return result.to_py() if isinstance(result, JsProxy) else result

    async def models(self, search: str) -> list[str]:
        return await listed_models(self._ai, search)


class WorkersImageModel:
    """The FLUX.2 family through ``env.AI``: the model each request names."""

    def __init__(self, binding: Any) -> None:
        self._ai = unwrap(binding)

    def served_name(self, spec: ModelSpec) -> str:
        return spec.id

    async def generate(self, request: ModelInput) -> GeneratedImage:
        inputs = multipart_inputs(request)
        started = time.perf_counter()
        try:
            result = await self._ai.run(request.model.id, inputs)
        except JsException as exc:  # InferenceUpstreamError("<code>: <message>")
            raise parse_upstream_message(str(exc)) from exc
        upstream_ms = (time.perf_counter() - started) * 1000
        if not isinstance(result, JsProxy):  # already converted by a wrapper
            return replace(decode_model_output(result), upstream_ms=upstream_ms)
        try:
            image = await base64_field(result, "image")
        except JsException as exc:
            raise UpstreamError(None, "the model returned invalid base64") from exc
        if image is None:
            raise UpstreamError(None, "the model returned no image")
        return replace(typed_image(image), upstream_ms=upstream_ms)

    async def ready(self) -> None:
        check_listed(await listed_models(self._ai, DEFAULT_MODEL.id))
