"""The image model behind the AI binding, as a test scripts and watches it.

In process it is :class:`ScriptedAI`, the local :class:`PlaceholderAI` (which enforces the
binding's multipart contract) plus queued failures; on workerd it is :class:`WorkerdAI`, the
AI stand-in Worker bound as ``AI`` (``worker/local/ai.mjs``), reached through the stack's
control port. Both record each call's inputs and model, and both fail the next call on
demand as Workers AI does.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

import pytest

from fluxgate.local.placeholder import InferenceUpstreamError, PlaceholderAI

from .runtimes import on_worker
from .workerd import Workerd


class ModelDouble(Protocol):
    """What a test sees of the model: its calls, what each was given, and a script."""

    @property
    def calls(self) -> int: ...

    @property
    def inputs(self) -> list[Any]:
        """Each call's inputs as the binding received them (``{"multipart": {body,
        contentType}}``, the body as bytes)."""
        ...

    @property
    def called_models(self) -> list[str]:
        """The model id of each call, in order."""
        ...

    def fail_next(self, message: str) -> None:
        """The next call fails with ``message``, as Workers AI raises it."""
        ...

    latency: float  # seconds each image takes


class ScriptedAI(PlaceholderAI):
    """The contract-enforcing AI double, plus failures queued with :meth:`fail_next`."""

    def __init__(self) -> None:
        super().__init__()
        self._failures: list[str] = []
        self.inputs: list[Any] = []
        self.called_models: list[str] = []  # the model id of each call, in order

    def fail_next(self, message: str) -> None:
        self._failures.append(message)

    async def run(self, model: str, inputs: Any) -> dict[str, str]:
        self.inputs.append(inputs)
        self.called_models.append(model)
        if self._failures:
            raise InferenceUpstreamError(self._failures.pop(0))
        return await super().run(model, inputs)


class WorkerdAI:
    """The AI stand-in (``worker/local/ai.mjs``), seen like the in-process ``ScriptedAI``."""

    def __init__(self, stack: Workerd) -> None:
        self._stack = stack

    @property
    def calls(self) -> int:
        return int(self._stack.call("GET", "/ai")["calls"])

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """Each call's inputs as the binding received them: ``{"multipart": {body,
        contentType}}`` with the raw body bytes."""
        return [
            {"multipart": {"body": base64.b64decode(i["body"]), "contentType": i["contentType"]}}
            for i in self._stack.call("GET", "/ai")["inputs"]
        ]

    @property
    def called_models(self) -> list[str]:
        """The model id of each call, in order."""
        return [str(i["model"]) for i in self._stack.call("GET", "/ai")["inputs"]]

    def fail_next(self, message: str) -> None:
        self._stack.call("POST", "/ai/fail", {"message": message})

    @property
    def latency(self) -> float:
        return float(self._stack.call("GET", "/ai")["latency_seconds"])

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._stack.call("POST", "/ai/latency", {"seconds": seconds})


@pytest.fixture
def ai(request: pytest.FixtureRequest) -> ModelDouble:
    """The image model of the runtime under test."""
    if on_worker(request):
        return WorkerdAI(request.getfixturevalue("workerd"))
    return ScriptedAI()
