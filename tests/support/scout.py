"""Llama 4 Scout, the output classifier behind the AI binding, as a test scripts and watches it.

In process it is :class:`FakeScoutAI`, which holds the chat input to the model's contract
and answers the scripted verdicts; on workerd it is :class:`WorkerdScout`, the same script in
the AI stand-in Worker, reached through the stack's control port.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

import pytest

from fluxgate.local.placeholder import InferenceUpstreamError, vision_image

from .runtimes import on_worker
from .workerd import Workerd


class ScoutDouble(Protocol):
    """The ``verdicts`` queued (``{"safe", "categories"}``; safe when none is left), the
    ``failures`` queued, the answer ``form`` (``object``, ``json_text`` or ``text``), the
    number of ``calls`` and each image ``seen`` (``{"model", "format", "size", "sha256"}``)."""

    verdicts: list[dict[str, Any]]
    failures: list[str]
    form: str

    @property
    def calls(self) -> int: ...

    @property
    def seen(self) -> list[dict[str, Any]]: ...


class FakeScoutAI:
    """Llama 4 Scout (the output classifier) behind the AI binding's ``run``: holds the
    chat input to the model's contract (``vision_image``: one data-URI image whose bytes are
    the format it names, a ``response_format``), then answers the next scripted verdict
    (``verdicts``: ``{"safe", "categories"}``; safe when none is left) in the answer
    ``form`` chosen (``object``, ``json_text`` or Llama Guard's ``text``), or the next of
    ``failures`` as Workers AI raises it. ``seen``: each image it was shown."""

    MODEL = "@cf/meta/llama-4-scout-17b-16e-instruct"

    def __init__(self) -> None:
        self.verdicts: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.form = "object"
        self.calls = 0
        self.seen: list[dict[str, Any]] = []

    async def models(self, search: str) -> list[str]:
        """The binding's catalog search: this model, when the search names it."""
        return [self.MODEL] if search in self.MODEL else []

    async def run(self, model: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if model != self.MODEL:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        mime, data = vision_image(inputs)
        self.calls += 1
        digest = hashlib.sha256(data).hexdigest()
        self.seen.append({"model": model, "format": mime, "size": len(data), "sha256": digest})
        if self.failures:
            raise InferenceUpstreamError(self.failures.pop(0))
        verdict: dict[str, Any] = (
            self.verdicts.pop(0) if self.verdicts else {"safe": True, "categories": []}
        )
        categories: list[str] = verdict["categories"]
        usage = {"prompt_tokens": 1200, "completion_tokens": 12, "total_tokens": 1212}
        if self.form == "json_text":
            return {"response": json.dumps(verdict), "usage": usage}
        if self.form == "text":
            cats = ",".join(categories)
            return {"response": "safe" if verdict["safe"] else f"unsafe\n{cats}", "usage": usage}
        return {"response": verdict, "usage": usage}


class WorkerdScout:
    """Llama 4 Scout (the output classifier) behind the stand-in, seen like the in-process
    ``FakeScoutAI``: queued ``verdicts`` and ``failures``, the answer ``form``, the
    ``calls`` and the images ``seen``."""

    def __init__(self, stack: Workerd) -> None:
        self._stack = stack

    def _get(self, field: str) -> Any:
        return self._stack.call("GET", "/scout")[field]

    @property
    def calls(self) -> int:
        return int(self._get("calls"))

    @property
    def seen(self) -> list[dict[str, Any]]:
        return list(self._get("seen"))

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return list(self._get("verdicts"))

    @verdicts.setter
    def verdicts(self, verdicts: list[dict[str, Any]]) -> None:
        self._stack.call("POST", "/scout", {"verdicts": list(verdicts)})

    @property
    def failures(self) -> list[str]:
        return list(self._get("failures"))

    @failures.setter
    def failures(self, messages: list[str]) -> None:
        self._stack.call("POST", "/scout", {"failures": list(messages)})

    @property
    def form(self) -> str:
        return str(self._get("form"))

    @form.setter
    def form(self, value: str) -> None:
        self._stack.call("POST", "/scout", {"form": value})


@pytest.fixture
def scout(request: pytest.FixtureRequest) -> ScoutDouble:
    """Llama 4 Scout, the output classifier, behind the AI binding: scripted verdicts and
    failures, the answer's form, its calls and the images it saw."""
    if on_worker(request):
        return WorkerdScout(request.getfixturevalue("workerd"))
    return FakeScoutAI()
