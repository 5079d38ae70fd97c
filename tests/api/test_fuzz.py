"""Property-based fuzzing of every request parser: no input is a 5xx.

Each property sends Hypothesis-made requests to the runtime under test, over HTTP on the
Worker on workerd, and asserts that the answer is never a server error, and that every refusal
is the API's JSON error with a stable code. ``derandomize=True`` makes every run (and CI)
explore the same examples; the example counts keep this file within about a minute per
runtime. The admin bodies are fuzzed with the admin API's own tests.
"""

from __future__ import annotations

import contextlib
import json
import string
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxgate.jobs.webhooks import WebhookVerificationError, sign, verify

from ..support.bodies import generate, generation
from ..support.image_files import image_bytes

pytestmark = pytest.mark.runtimes("local", "worker")

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

FIELDS = [
    "prompt", "model", "n", "size", "width", "height", "steps", "guidance", "seed",
    "response_format", "url_ttl_seconds", "user", "safety_identifier", "async",
    "webhook_url", "input_image_0", "input_image_1", "input_image_3", "input_image_4",
    "input_image_00", "input_image_٣", "input_image_" + "9" * 5000,
]  # fmt: skip
PNG = image_bytes("PNG", 16, 16)

# Digits that are not ASCII: str.isdigit() accepts them, int() refuses or reinterprets.
ODD_DIGITS = st.text(alphabet="²³¹٠١٢٣٤٥٦٧٨٩۰۱۲߀०१२৩੧௧๑໑༡၁០᠑１２３⁰₀", min_size=1, max_size=5)
HUGE_INT = st.integers(min_value=4000, max_value=6000).map(lambda n: "1" * n)
NUMBERISH = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    HUGE_INT,
    ODD_DIGITS,
    st.floats().map(repr),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0", "1e-400", "0x10", ""]),
)
NAMES = st.one_of(st.sampled_from(FIELDS), st.text(max_size=30))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["1024x768", "2048x2048", "auto", "url", "b64_json", "flux-2-dev"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def assert_handled(response) -> None:
    """Never a server error; a refusal is ``{"error": {"code": ...}}``."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400 and response.status_code != 431:  # 431: the HTTP server
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str)


def post(client, auth, content: bytes, content_type: str):
    return client.post(
        "/v1/images/generations",
        content=content,
        headers={**auth, "content-type": content_type},
    )


@st.composite
def json_bodies(draw) -> bytes:
    """A JSON object of generation fields (real and not) holding any JSON value, and
    sometimes a raw number token JSON's encoder would never write (huge, NaN, ²)."""
    body = draw(st.dictionaries(NAMES, JSON_VALUES, max_size=6))
    text = json.dumps(body, allow_nan=True)
    if draw(st.booleans()):
        name = draw(st.sampled_from(FIELDS[:13]))
        number = draw(NUMBERISH)
        text = text[:-1] + ("," if body else "") + f'"{name}": {number}}}'
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(50, 5000))
        text = '{"prompt": ' + "[" * depth + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass")


def test_json_generation_bodies_are_never_a_5xx(client, auth):
    @FUZZ
    @given(body=json_bodies())
    def check(body):
        assert_handled(post(client, auth, body, "application/json"))

    check()


def test_raw_json_bytes_are_never_a_5xx(client, auth):
    alphabet = st.sampled_from([*'[]{}",:0123456789eE.-+\\ \t\nnulltruefalse²٣', "\ud800"])
    raw = st.one_of(
        st.binary(max_size=200),
        st.text(alphabet=alphabet, max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )

    @FUZZ
    @given(body=raw)
    def check(body):
        assert_handled(post(client, auth, body, "application/json"))

    check()


@st.composite
def multipart_bodies(draw) -> tuple[bytes, str]:
    """A multipart body of text and file parts under any names, perhaps cut short."""
    boundary = draw(st.text(alphabet=string.ascii_letters + string.digits + "'()+_,-./:=?",
                            min_size=1, max_size=70))  # fmt: skip
    out = bytearray()
    for _ in range(draw(st.integers(0, 6))):
        name = draw(NAMES)
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if draw(st.booleans()):
            data = draw(st.one_of(st.just(PNG), st.just(PNG[:24]), st.binary(max_size=64)))
            out += f'Content-Disposition: {disposition}; filename="f.png"\r\n'.encode(
                "utf-8", "surrogatepass"
            )
            out += b"Content-Type: image/png\r\n\r\n" + data
        else:
            value = draw(st.one_of(NUMBERISH, st.text(max_size=40)))
            out += f"Content-Disposition: {disposition}\r\n\r\n{value}".encode(
                "utf-8", "surrogatepass"
            )
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    body = bytes(out)
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/images/edits"])
def test_multipart_bodies_are_never_a_5xx(client, auth, path):
    @FUZZ
    @given(case=multipart_bodies())
    def check(case):
        body, content_type = case
        r = client.post(path, content=body, headers={**auth, "content-type": content_type})
        assert_handled(r)

    check()


@pytest.fixture
def signed_url(client, auth):
    r = generate(client, auth, generation("a teapot", square=256))
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["url"]


def test_signed_url_queries_are_never_a_5xx(client, signed_url):
    parts = urlsplit(signed_url)
    query = dict(parse_qsl(parts.query))
    values = st.one_of(NUMBERISH, st.text(max_size=60), st.sampled_from(list(query.values())))

    @FUZZ
    @given(changes=st.dictionaries(st.sampled_from(["exp", "kid", "sig", "c", "x"]), values))
    def check(changes):
        merged = {**query, **changes}
        text = "&".join(
            f"{quote(k)}={quote(v, safe='', errors='replace')}" for k, v in merged.items()
        )
        assert_handled(client.get(f"{parts.path}?{text}"))

    check()


RANGE_NUMBERS = st.one_of(
    st.integers(0, 10**6).map(str), HUGE_INT, ODD_DIGITS, st.just(""), st.text(max_size=5)
)


@st.composite
def range_headers(draw) -> bytes:
    """``bytes=a-b`` with numbers in any spelling, or any Latin-1 header value."""
    if draw(st.booleans()):
        unit = draw(st.sampled_from(["bytes", "BYTES", " bytes ", "items", ""]))
        first, last = draw(RANGE_NUMBERS), draw(RANGE_NUMBERS)
        extra = draw(st.sampled_from(["", ", 0-1", ",", "-"]))
        text = f"{unit}={first}-{last}{extra}"
    else:
        text = draw(st.text(max_size=60))
    # A header value is bytes: keep Latin-1 (what a server decodes) and no line breaks.
    raw = text.encode("utf-8", "replace")
    return bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip(b" \t")


def test_range_headers_are_never_a_5xx(client, signed_url):
    @FUZZ
    @given(header=range_headers())
    def check(header):
        assert_handled(client.get(signed_url, headers={"Range": header}))

    check()


SECRET = "whsec_" + "A" * 32


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "Webhook-Timestamp", "webhook-timestamp", "webhook-signature", "other"]
        ),
        st.one_of(NUMBERISH, st.text(max_size=40)),
    ),
    body=st.one_of(st.binary(max_size=64), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
    signed=st.booleans(),
)
def test_webhook_verify_returns_or_raises_its_documented_error(headers, body, signed):
    """A receiver catches ``WebhookVerificationError``; nothing else may escape."""
    now = 1_800_000_000
    if signed:  # a valid signature, so the body itself is parsed too
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(SECRET, "msg_1", now, body),
        }
    with contextlib.suppress(WebhookVerificationError):
        verify(SECRET, headers, body, now=now)
