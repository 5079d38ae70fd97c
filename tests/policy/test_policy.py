import re

import pytest

from fluxgate.policy.prompts import (
    REMEMBERED_PROMPT_LENGTH,
    REMEMBERED_PROMPTS,
    PolicyViolation,
    PromptPolicy,
    normalize_prompt,
)


def test_normalisation_is_nfkc_with_whitespace_collapsed():
    assert normalize_prompt("  Ａ\u00a0cat\t\n on   a ﬁeld ") == "A cat on a field"


def test_control_and_format_characters_become_spaces():
    assert normalize_prompt("a\u200bcat\x00dog") == "a cat dog"


def test_empty_after_normalisation_is_refused():
    with pytest.raises(PolicyViolation) as exc:
        PromptPolicy().apply(" \u200b\t ")
    assert exc.value.reason == "empty"


def test_length_is_counted_after_normalisation():
    policy = PromptPolicy(max_length=5)
    assert policy.apply("  a    b  ") == "a b"
    with pytest.raises(PolicyViolation) as exc:
        policy.apply("abcdef")
    assert exc.value.reason == "too_long"
    assert exc.value.status == 400 and exc.value.code == "prompt_rejected"


def test_deny_terms_match_whole_words_case_insensitively_and_after_nfkc():
    policy = PromptPolicy.build(100, ["gore"], [])
    assert policy.apply("gorgeous gores") == "gorgeous gores"
    for prompt in ("GORE scene", "some gore", "ｇｏｒｅ"):
        with pytest.raises(PolicyViolation) as exc:
            policy.apply(prompt)
        assert exc.value.reason == "denied_term"


def test_deny_patterns_are_regexes():
    policy = PromptPolicy.build(100, [], [r"\bcelebrity\s+\w+"])
    with pytest.raises(PolicyViolation) as exc:
        policy.apply("a Celebrity   Smith portrait")
    assert exc.value.reason == "denied_pattern"
    assert exc.value.to_dict()["error"]["reason"] == "denied_pattern"


def test_invalid_pattern_fails_at_build_time():
    with pytest.raises(re.error):
        PromptPolicy.build(100, [], ["("])


def test_a_prompt_answers_the_same_every_time_it_is_asked_remembered_or_not():
    """A policy remembers the short prompts that passed it (a cache hit repeats its prompt):
    the answer is the same the second time, a refusal is refused every time, and a prompt
    past the remembered length or count is normalised again, to the same text."""
    policy = PromptPolicy.build(4096, ["forbidden"], [])
    prompts = [f"a ﬁeld  number {i}" for i in range(REMEMBERED_PROMPTS + 5)]
    prompts.append("long " * (REMEMBERED_PROMPT_LENGTH // 5 + 1))
    first = [policy.apply(p) for p in prompts]
    assert [policy.apply(p) for p in prompts] == first == [normalize_prompt(p) for p in prompts]
    for _ in range(2):
        with pytest.raises(PolicyViolation) as exc:
            policy.apply("a forbidden field")
        assert exc.value.reason == "denied_term"
