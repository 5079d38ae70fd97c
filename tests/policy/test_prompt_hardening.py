"""A prompt cannot stall the server, nor slip past a deny rule.

Bounded cost: a prompt that expands under NFKC (U+FDFA becomes 18 characters) is refused on
its raw length, before it is normalised. Skeletons: deny rules match on a skeleton, so
look-alike letters, invisible characters and combining marks do not bypass them, while
ordinary words and non-Latin prompts still pass.
"""

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fluxgate.policy import prompts as policy_module
from fluxgate.policy.prompts import (
    RAW_LENGTH_FACTOR,
    PolicyViolation,
    PromptPolicy,
    audit_prompt,
    normalize_prompt,
    raw_length_limit,
)
from fluxgate.policy.skeleton import MAX_NON_STARTERS, skeleton

from ..support.admin import put_policy

pytestmark = pytest.mark.runtimes("local", "worker")

EXPANDING = "\ufdfa"  # ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: 18 characters in NFKC


def reason_of(policy: PromptPolicy, prompt: str) -> str | None:
    try:
        policy.apply(prompt)
    except PolicyViolation as exc:
        return exc.reason
    return None


# -- bounded cost --------------------------------------------------------------------------


def test_an_oversized_prompt_is_refused_before_it_is_normalised(monkeypatch):
    normalize = unicodedata.normalize

    def no_normalising(form: str, text: str) -> str:
        if len(text) > 100_000:
            raise AssertionError(f"normalised a {len(text)}-character prompt")
        return normalize(form, text)

    monkeypatch.setattr(policy_module.unicodedata, "normalize", no_normalising)
    policy = PromptPolicy.build(2048, ["gore"], [r"\bx+y"])
    with pytest.raises(PolicyViolation) as exc:
        policy.apply(EXPANDING * 2_000_000)
    assert exc.value.reason == "too_long"
    assert "before normalisation" in exc.value.message


def test_the_raw_limit_leaves_room_for_what_normalisation_removes():
    policy = PromptPolicy(max_length=10)
    assert raw_length_limit(10) == RAW_LENGTH_FACTOR * 10
    padded = "a" + " " * (raw_length_limit(10) - 2) + "b"
    assert policy.apply(padded) == "a b"
    assert reason_of(policy, padded + " ") == "too_long"


def test_an_expanding_prompt_within_the_raw_limit_is_measured_after_normalisation():
    policy = PromptPolicy(max_length=100)
    with pytest.raises(PolicyViolation) as exc:
        policy.apply(EXPANDING * 10)  # 10 raw characters, 180 normalised
    assert exc.value.reason == "too_long"
    assert "before normalisation" not in exc.value.message


def test_long_runs_of_combining_marks_are_cut_before_normalising():
    """NFKC sorts a run of marks with an insertion sort: alternating classes are quadratic."""
    policy = PromptPolicy(max_length=100_000)
    text = policy.apply("a" + "\u0301\u0323" * 100_000 + " b")
    assert text == normalize_prompt("a" + "\u0323\u0301" * 15 + " b")
    assert len(text) <= 1 + MAX_NON_STARTERS + 2


# Characters where normalising in pieces could go wrong: Hangul jamo that compose with
# what precedes, marks, a halfwidth voiced mark (a starter whose NFKD is a mark), Indic
# vowel signs that compose, expanding ligatures, controls and plain text.
TRICKY = "\u1100\u1161\u11a8\uac00\u0301\u0323\u0345\uff9e\u0b47\u0b3e\ufdfa\ufb01 a\u200d\x00e"


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(alphabet=TRICKY, min_size=900, max_size=3000))
def test_normalising_in_pieces_equals_normalising_at_once(text):
    expected = normalize_prompt(text)
    if expected:
        assert PromptPolicy(max_length=10**6).apply(text) == expected


def test_the_audit_form_of_a_prompt_is_bounded_and_never_normalised():
    assert audit_prompt(EXPANDING * 100_000, 2048) == EXPANDING * raw_length_limit(2048)
    assert audit_prompt("ﬁeld", 2048) == "ﬁeld"


def _post_raw(client, auth, body: dict[str, object]):
    return client.post(
        "/v1/images/generations",
        content=json.dumps(body, ensure_ascii=False).encode(),
        headers={**auth, "content-type": "application/json"},
    )


def test_a_huge_expanding_prompt_is_refused_on_its_raw_length(client, auth, ai):
    r = _post_raw(client, auth, {"prompt": EXPANDING * 2_000_000})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["reason"], error["param"]) == (
        "prompt_rejected",
        "too_long",
        "prompt",
    )
    assert "before normalisation" in error["message"]
    assert ai.calls == 0


@pytest.mark.runtimes("local", reason="watches normalisation inside the in-process app")
def test_the_api_never_normalises_an_oversized_prompt(client, auth, monkeypatch):
    """The whole request path (not only the policy) refuses before normalising: no
    caller may normalise the raw prompt ahead of the policy's raw-length check."""
    normalize = unicodedata.normalize

    def no_normalising(form: str, text: str) -> str:
        if len(text) > 100_000:
            raise AssertionError(f"normalised a {len(text)}-character prompt")
        return normalize(form, text)

    monkeypatch.setattr(policy_module.unicodedata, "normalize", no_normalising)
    r = _post_raw(client, auth, {"prompt": EXPANDING * 2_000_000})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["reason"] == "too_long"


# -- skeletons -----------------------------------------------------------------------------

LOOKALIKES = {
    "cyrillic o and ie": "g\u043er\u0435",
    "greek omicron": "g\u03bfre",
    "cyrillic capitals": "G\u041eR\u0415",
    "small capitals": "\u0262\u1d0f\u0280\u1d07",
    "script g": "\u0261ore",
    "combining acute": "go\u0301re",
    "combining marks stacked": "g\u0308o\u0323r\u0327e\u0301",
    "combining grapheme joiner": "go\u034fre",
    "variation selector": "go\ufe0fre",
    "variation selector supplement": "gor\U000e0100e",
    "zero width joiner": "go\u200dre",
    "zero width non-joiner": "g\u200core",
    "zero width space": "gor\u200be",
    "word joiner": "go\u2060re",
    "soft hyphen": "go\u00adre",
    "tag characters": "go\U000e0067re",
    "hangul filler": "go\u3164re",
    "bidi controls": "\u202ego\u202cre",
    "fullwidth": "\uff47\uff4f\uff52\uff45",
    "mathematical bold": "\U0001d420\U0001d428\U0001d42b\U0001d41e",
}


@pytest.mark.parametrize("variant", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_a_deny_term_catches_its_lookalikes(variant):
    policy = PromptPolicy.build(2048, ["gore"], [])
    assert reason_of(policy, f"a {variant} scene") == "denied_term"
    assert skeleton(unicodedata.normalize("NFKC", variant)) == "gore"


@pytest.mark.parametrize("variant", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_a_deny_pattern_catches_lookalikes_too(variant):
    policy = PromptPolicy.build(2048, [], [r"\bgore\s+scene"])
    assert reason_of(policy, f"a {variant}  scene") == "denied_pattern"


def test_a_deny_term_written_with_lookalikes_catches_the_plain_word():
    policy = PromptPolicy.build(2048, ["g\u043er\u0435"], [])
    assert reason_of(policy, "some GORE here") == "denied_term"


@pytest.mark.parametrize(
    ("terms", "prompt"),
    [
        (["gore"], "a gorgeous sunset"),
        (["gore"], "gores of fabric and a gorge"),
        (["burn"], "a bum on a bench"),  # UTS #39 maps m to rn: not for ASCII
        (["clip"], "a dip in the lake"),  # nor d to cl
        (["lol"], "l0l and 1o1"),  # nor digits to letters
        (["gore", "blood"], "Кошка сидит на окне и смотрит на снег"),
        (["gore", "blood"], "Η γάτα κάθεται στο παράθυρο"),
        (["gore", "blood"], "猫が窓辺に座って雪を見ている"),
        (["кровь"], "кровать у окна"),  # a Cyrillic term stays a whole word
        (["кровь"], "Кошка сидит на окне"),
        (["\u200b"], "a cat"),  # a term of invisible characters matches nothing
    ],
)
def test_no_false_positives(terms, prompt):
    policy = PromptPolicy.build(2048, terms, [])
    assert reason_of(policy, prompt) is None


@pytest.mark.parametrize("prompt", ["кровь на снегу", "КРОВЬ", "кро\u0301вь", "кр\u200dовь"])
def test_a_cyrillic_deny_term_matches_cyrillic_text(prompt):
    policy = PromptPolicy.build(2048, ["кровь"], [])
    assert reason_of(policy, prompt) == "denied_term"


def test_the_canonical_prompt_is_unchanged_by_skeletons():
    policy = PromptPolicy.build(2048, ["gore"], [])
    assert policy.apply("Ｋошка  on a ﬁeld") == "Kошка on a field"


@pytest.mark.parametrize("variant", ["g\u043er\u0435", "go\u00adre", "\u0262\u1d0f\u0280\u1d07"])
def test_lookalikes_are_refused_through_the_api(client, auth, ai, variant):
    put_policy(client, deny_terms=["gore"], deny_patterns=[r"celebrity\s+\w+"])
    for prompt, reason in (
        (f"a {variant} scene", "denied_term"),
        ("\u0441\u0435lebrity smith", "denied_pattern"),
    ):
        r = _post_raw(client, auth, {"prompt": prompt})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["reason"] == reason
    assert ai.calls == 0


def test_ordinary_and_non_latin_prompts_pass_through_the_api(client, auth):
    put_policy(client, deny_terms=["gore", "кровь"])
    for prompt in ("a gorgeous sunset", "Кошка сидит на окне", "猫が窓辺に座っている"):
        r = _post_raw(client, auth, {"prompt": prompt})
        assert r.status_code == 200, r.text
