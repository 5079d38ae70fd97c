"""Llama Guard, the prompt classifier behind the AI binding, as a test scripts and watches it.

In process it is :class:`FakeGuardAI`, which holds the chat input to the model's contract
and answers in its JSON shape; on workerd it is :class:`WorkerdGuard`, the same script in the
AI stand-in Worker, reached through the stack's control port.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pytest

from fluxgate.local.placeholder import InferenceUpstreamError

from .runtimes import on_worker
from .workerd import Workerd


class GuardDouble(Protocol):
    """Which words are ``unsafe`` (word: category), the ``failures`` queued for the next
    calls, the ``answer_text`` form (``"unsafe\\nS1"`` instead of the JSON object), and the
    number of ``calls``."""

    unsafe: dict[str, str]
    failures: list[str]
    answer_text: bool

    @property
    def calls(self) -> int: ...


class FakeGuardAI:
    """Llama Guard behind the AI binding's ``run``: checks the chat input it is given and
    answers in the model's JSON shape. Tests choose which words are unsafe (and in which
    category), or make the next calls fail as Workers AI does."""

    MODEL = "@cf/meta/llama-guard-3-8b"

    def __init__(self) -> None:
        self.unsafe: dict[str, str] = {}
        self.failures: list[str] = []
        self.calls = 0
        self.answer_text = False  # answer "unsafe\nS1" instead of the JSON object

    async def models(self, search: str) -> list[str]:
        """The binding's catalog search: this model, when the search names it."""
        return [self.MODEL] if search in self.MODEL else []

    async def run(self, model: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if model != self.MODEL:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        messages = inputs.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, Mapping) and {"role", "content"} <= set(m) for m in messages
        ):
            raise InferenceUpstreamError("5006: required properties at '/messages' are 'role'")
        self.calls += 1
        if self.failures:
            raise InferenceUpstreamError(self.failures.pop(0))
        text = " ".join(str(m["content"]) for m in messages).casefold()
        hits = sorted({cat for word, cat in self.unsafe.items() if word in text})
        if self.answer_text:
            return {"response": "unsafe\n" + ",".join(hits) if hits else "safe"}
        return {"response": {"safe": not hits, "categories": hits}}


class WorkerdGuard:
    """Llama Guard behind the stand-in, seen like the in-process ``FakeGuardAI``:
    ``unsafe`` words (and their categories), queued ``failures``, the ``answer_text`` form,
    and the number of ``calls``."""

    def __init__(self, stack: Workerd) -> None:
        self._stack = stack

    def _get(self, field: str) -> Any:
        return self._stack.call("GET", "/guard")[field]

    @property
    def calls(self) -> int:
        return int(self._get("calls"))

    @property
    def unsafe(self) -> dict[str, str]:
        return dict(self._get("unsafe"))

    @unsafe.setter
    def unsafe(self, words: Mapping[str, str]) -> None:
        self._stack.call("POST", "/guard", {"unsafe": dict(words)})

    @property
    def failures(self) -> list[str]:
        return list(self._get("failures"))

    @failures.setter
    def failures(self, messages: list[str]) -> None:
        self._stack.call("POST", "/guard", {"failures": list(messages)})

    @property
    def answer_text(self) -> bool:
        return bool(self._get("answer_text"))

    @answer_text.setter
    def answer_text(self, value: bool) -> None:
        self._stack.call("POST", "/guard", {"answer_text": value})


@pytest.fixture
def guard(request: pytest.FixtureRequest) -> GuardDouble:
    """Llama Guard behind the AI binding: which words are unsafe, failures, calls."""
    if on_worker(request):
        return WorkerdGuard(request.getfixturevalue("workerd"))
    return FakeGuardAI()
