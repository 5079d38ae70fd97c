"""Abusive input gets a 4xx with a stable code, never a 5xx.

Each test names the class of input it covers; the fuzz tests (``test_fuzz.py``) explore
the same parsers at random.
"""

import base64
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from fluxgate.api.json_text import MAX_JSON_DEPTH, json_depth, parse_json
from fluxgate.delivery.files import parse_range
from fluxgate.errors import ApiError, error_type
from fluxgate.imaging.formats import ImageFormatError, check_complete, inspect_image

from ..support.bodies import generate, generation
from ..support.image_files import image_bytes

pytestmark = pytest.mark.runtimes("local", "worker")

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
JSON = {"content-type": "application/json"}


def error_of(response):
    assert response.status_code < 500, response.text
    return response.json()["error"]


def raw_json(client, auth, text, path="/v1/images/generations"):
    return client.post(path, content=text.encode(), headers={**auth, **JSON})


@pytest.fixture
def image(client, auth):
    r = generate(client, auth, generation("a teapot", square=256))
    assert r.status_code == 200, r.text
    return r.json()


def requery(url, **changes):
    parts = urlsplit(url)
    return f"{parts.path}?{urlencode({**dict(parse_qsl(parts.query)), **changes})}"


# -- signed-URL parameters -----------------------------------------------------------------


def test_signed_url_parameters_in_any_spelling_are_403_not_500(client, image):
    url = image["data"][0]["url"]
    exp = dict(parse_qsl(urlsplit(url).query))["exp"]
    spellings = [
        "²",  # isdigit() but int() refuses it
        "1" * 5000,  # over the int-string limit
        exp.translate(ARABIC_INDIC),  # int() reads it as the signed value
        "0" + exp,  # leading zero: not what was signed
        f" {exp}",
        f"+{exp}",
        "-1",
        "",
    ]
    for value in spellings:
        r = client.get(requery(url, exp=value))
        assert r.status_code == 403, (value[:20], r.text)
        assert error_of(r)["code"] == "invalid_signature"
    for name, value in [("kid", "k²"), ("kid", "é" * 500), ("sig", "é"), ("c", "9" * 2000)]:
        r = client.get(requery(url, **{name: value}))
        assert r.status_code == 403 and error_of(r)["code"] == "invalid_signature"


# -- Range ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"bytes=\xb2-", 200),  # superscript two as Latin-1: not a digit, header ignored
        (b"bytes=-\xb2", 200),
        (b"bytes=0-\xb9\xb2", 200),
        ("bytes=٣-".encode(), 200),  # Arabic-Indic three, as UTF-8 bytes
        (b"bytes=0-" + b"9" * 5000, 206),  # a last position past the end is clipped
        (b"bytes=-" + b"9" * 5000, 206),  # a suffix longer than the file is the file
        (b"bytes=" + b"9" * 5000 + b"-", 416),  # a first position past the end
        (b"bytes=" + b"0" * 5000 + b"1-2", 206),  # leading zeros are still one number
    ],
)
def test_range_numbers_in_any_spelling_are_never_a_500(client, image, header, status):
    r = client.get(image["data"][0]["url"], headers={"Range": header})
    assert r.status_code == status, r.text[:200]
    if status == 416:
        assert error_of(r)["code"] == "range_not_satisfiable"


def test_range_positions_are_read_without_int_overflow():
    assert parse_range("bytes=" + "0" * 5000 + "1-2", 10) == parse_range("bytes=1-2", 10)
    assert parse_range("bytes=-" + "9" * 5000, 10) == parse_range("bytes=0-", 10)
    assert parse_range("bytes=²-", 10) is None
    with pytest.raises(ApiError) as exc:
        parse_range("bytes=-5", 0)
    assert exc.value.status == 416


# -- JSON bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt": ' + "[" * 2000 + "]" * 2000 + "}",
        "[" * 100_000 + "]" * 100_000,  # overflowed the Pyodide stack: the isolate died
        '{"prompt": "x", "a": ' + '{"b": ' * 5000 + "1" + "}" * 5000 + "}",
    ],
    ids=["in-a-field", "top-level", "objects"],
)
def test_deep_json_is_400_invalid_json(client, auth, text, ai):
    r = raw_json(client, auth, text)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    assert ai.calls == 0


@pytest.mark.settings(max_prompt_length=10_000)
def test_brackets_inside_strings_do_not_count_as_depth(client, auth):
    r = raw_json(client, auth, '{"prompt": "' + "[{" * 3000 + '\\" ]"}')
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt": "x", "width": ' + "1" * 5000 + "}",
        '{"prompt": "x", "seed": -' + "9" * 5000 + "}",
        '{"prompt": "x", "guidance": 1e400}',
        '{"prompt": "x", "guidance": NaN}',
        '{"prompt": "x", "guidance": -Infinity}',
    ],
)
def test_numbers_json_cannot_hold_are_400_invalid_json(client, auth, text):
    r = raw_json(client, auth, text)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


def test_a_reference_field_named_with_5000_digits_is_too_many_in_both_encodings(client, auth):
    name = "input_image_" + "1" * 5000
    r = raw_json(client, auth, json.dumps({"prompt": "x", name: "AAAA"}))
    assert error_of(r)["code"] == "too_many_reference_images"
    r = raw_json(client, auth, json.dumps({"prompt": "x", "1" * 5000: 1}))
    assert error_of(r)["code"] == "unknown_parameter"  # a name of digits is just a name
    name = "input_image_" + "1" * 500  # a multipart header line of 5000 is refused as such
    r = generate(client, auth, files={"prompt": (None, "x"), name: (None, "AAAA")})
    assert error_of(r)["code"] == "too_many_reference_images"


def test_a_multipart_integer_over_the_int_string_limit_names_its_field(client, auth):
    r = generate(client, auth, files={"prompt": (None, "x"), "width": (None, "1" * 5000)})
    error = error_of(r)
    assert (r.status_code, error["code"], error["param"]) == (400, "invalid_request", "width")


def test_json_depth_is_measured_without_parsing():
    assert json_depth('{"a": [1, {"b": "[[[["}]}') == 3
    assert json_depth('"\\"[[[" [[]]') == 2
    assert json_depth("[" * 10 + '"unclosed [[[[') == 10
    with pytest.raises(ApiError) as exc:
        parse_json(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert exc.value.code == "invalid_json"
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/tokens", "subject"), ("/v1/admin/keys", "name"), ("/v1/admin/keys", "expires_at")],
)
def test_every_fastapi_parsed_json_body_refuses_depth_and_huge_ints(
    client, auth, admin, path, field
):
    headers = admin if "admin" in path else auth
    for value in ["[" * 100_000 + "]" * 100_000, "1" * 5000, "NaN"]:
        r = raw_json(client, headers, f'{{"name": "n", "{field}": {value}}}', path=path)
        assert r.status_code == 400 and error_of(r)["code"] == "invalid_json", r.text


def test_a_client_token_whose_payload_nests_deeply_is_401(client):
    payload = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    r = client.get("/v1/usage", headers={"Authorization": f"Bearer fgt_{payload}.AAAA"})
    assert r.status_code == 401 and error_of(r)["code"] == "invalid_token"


# -- reference images ----------------------------------------------------------------------


def truncations(data: bytes) -> list[bytes]:
    return [data[:24], data[: len(data) // 2], data[:-1], data[:-12]]


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_a_reference_must_be_a_whole_image_not_a_header(fmt, save):
    whole = image_bytes(fmt, 120, 80, **save)
    check_complete(whole, inspect_image(whole))
    for cut in truncations(whole):
        with pytest.raises(ImageFormatError) as exc:
            check_complete(cut, inspect_image(cut))
        assert exc.value.reason == "corrupt"


def test_a_png_with_a_bad_crc_or_a_compression_bomb_is_refused():
    png = bytearray(image_bytes("PNG", 64, 64))
    png[40] ^= 0xFF  # inside a chunk: its CRC no longer matches
    with pytest.raises(ImageFormatError):
        check_complete(bytes(png), inspect_image(bytes(png)))


def test_a_bare_png_header_is_not_accepted_or_billed(client, auth, ai):
    header = image_bytes("PNG", 16, 16)[:24]  # signature + IHDR's start: 16x16 "image"
    r = generate(
        client, auth, files={"input_image_0": ("a.png", header, "image/png")}, data={"prompt": "x"}
    )
    error = error_of(r)
    assert (r.status_code, error["code"], error["param"]) == (400, "invalid_image", "input_image_0")
    as_json = {"prompt": "x", "input_image_0": base64.b64encode(header).decode()}
    assert error_of(generate(client, auth, json=as_json))["code"] == "invalid_image"
    assert ai.calls == 0
    assert client.get("/v1/usage", headers=auth).json()["spent_usd"] == 0


@pytest.mark.parametrize("name", ["input_image_00", "input_image_01", "input_image_٣"])
def test_non_canonical_reference_names_are_unknown_in_both_encodings(client, auth, ai, name):
    png = image_bytes("PNG", 16, 16)
    b64 = base64.b64encode(png).decode()
    as_json = generate(client, auth, json={"prompt": "x", "input_image_0": b64, name: b64})
    as_file = generate(
        client,
        auth,
        data={"prompt": "x"},
        files={"input_image_0": ("a.png", png, "image/png"), name: ("b.png", png, "image/png")},
    )
    as_text = generate(client, auth, files={"prompt": (None, "x"), name: (None, b64)})
    for r in (as_json, as_file, as_text):
        error = error_of(r)
        assert (r.status_code, error["code"], error["param"]) == (400, "unknown_parameter", name)
    assert ai.calls == 0


# -- the error contract --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": "x", "size": "2048x2048"}, "size", "size must be 'auto' or 'WIDTHxHEIGHT'"),
        ({"prompt": "x", "size": "big"}, "size", "size must be"),
        ({"prompt": "x", "size": "512x512", "width": 512}, "size", "size cannot be combined"),
        ({"prompt": "x", "width": 5}, "width", "width must be at least 256"),
        ({"prompt": "x", "steps": "2"}, "steps", "steps must be an integer"),
        ({"prompt": ""}, "prompt", "prompt must not be empty"),
        ({}, "prompt", "prompt is required"),
        ({"prompt": "x", "response_format": "png"}, "response_format", "response_format must"),
        ({"prompt": "x", "guidance": 31}, "guidance", "guidance must be at most 30"),
        ({"prompt": "x", "async": "yes"}, "async", "async must be true or false"),
    ],
)
def test_validation_errors_name_their_param_in_the_apis_words(client, auth, body, param, words):
    r = generate(client, auth, json=body)
    error = error_of(r)
    assert (r.status_code, error["code"], error["param"]) == (400, "invalid_request", param)
    assert words in error["message"]
    for pydantic_wording in ("Input should", "Value error", "String should", "Field required"):
        assert pydantic_wording not in error["message"]


def test_nested_and_admin_validation_errors_name_their_param(client, admin):
    r = client.post("/v1/admin/keys", headers=admin, json={"name": "n", "scopes": ["bogus"]})
    error = error_of(r)
    assert error["param"] == "scopes[0]" and "Input should" not in error["message"]
    r = client.post("/v1/admin/keys", headers=admin, json={"name": ""})
    assert error_of(r)["param"] == "name"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (410, "invalid_request_error"),
        (416, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "api_error"),
    ],
)
def test_each_status_has_its_openai_style_type(status, kind):
    assert error_type(status) == kind


def test_416_is_a_client_error_type(client, image):
    r = client.get(image["data"][0]["url"], headers={"Range": "bytes=999999-"})
    assert r.status_code == 416
    assert error_of(r)["type"] == "invalid_request_error"


def test_409_is_a_client_error_type(client, admin):
    current = client.get("/v1/admin/policy", headers=admin).json()
    r = client.put("/v1/admin/policy", headers=admin, json={"version": current["version"]})
    assert r.status_code == 409
    assert error_of(r)["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        b'--zzz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello',
        b'--zzz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello\r\n--zzz\r\n',
        b'--zzz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello\r\n--zz',
        b"",
    ],
    ids=["mid-part", "after-a-part", "mid-boundary", "empty"],
)
def test_a_truncated_multipart_body_is_invalid_multipart(client, auth, ai, body):
    headers = {**auth, "content-type": "multipart/form-data; boundary=zzz"}
    r = client.post("/v1/images/generations", content=body, headers=headers)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_multipart"
    assert ai.calls == 0
