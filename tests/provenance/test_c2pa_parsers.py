"""The C2PA building blocks: CBOR, JUMBF and COSE_Sign1, written as ``c2pa-rs`` writes them
and read back strictly. Fed anything, each reader answers or raises its own ``ValueError``
subclass: never another exception, never unbounded work.
"""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxgate.provenance import cbor, cose, jumbf

# -- CBOR -----------------------------------------------------------------------------------

ENCODINGS = [  # RFC 8949 appendix A
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (255, "18ff"),
    (256, "190100"),
    (65536, "1a00010000"),
    (1 << 32, "1b0000000100000000"),
    (-1, "20"),
    (-1000, "3903e7"),
    (b"\x01\x02", "420102"),
    ("a", "6161"),
    ([1, [2, 3]], "8201820203"),
    ({"a": 1, 2: b""}, "a261610102" + "40"),
    (cbor.Tag(18, []), "d280"),
    (None, "f6"),
    (True, "f5"),
    (False, "f4"),
    (1.5, "fb3ff8000000000000"),
]


@pytest.mark.parametrize(("value", "hex_"), ENCODINGS)
def test_cbor_writes_the_shortest_heads_and_reads_them_back(value, hex_):
    assert cbor.encode(value).hex() == hex_
    assert cbor.decode(bytes.fromhex(hex_)) == value


def test_cbor_reads_half_and_single_precision_floats():
    assert cbor.decode(bytes.fromhex("f93e00")) == 1.5
    assert cbor.decode(bytes.fromhex("fa3fc00000")) == 1.5


@pytest.mark.parametrize(
    ("hex_", "why"),
    [
        ("9f01ff", "an indefinite-length array"),
        ("5f4101ff", "an indefinite-length byte string"),
        ("0000", "bytes after the item"),
        ("a2616101616102", "a duplicate map key"),
        ("a1f601", "a null map key"),
        ("5affffffff00", "a length beyond the data"),
        ("9bffffffffffffffff", "an array count beyond the data"),
        ("62c328", "text that is not UTF-8"),
        ("1c", "a reserved additional information"),
        ("f7", "undefined"),
        ("19ff", "a head cut short"),
        ("", "nothing"),
    ],
)
def test_cbor_refuses_what_a_manifest_never_holds(hex_, why):
    with pytest.raises(cbor.CborError):
        cbor.decode(bytes.fromhex(hex_))


def test_cbor_refuses_nesting_beyond_its_bound():
    deep = b"\x81" * (cbor.MAX_DEPTH + 5) + b"\x00"
    with pytest.raises(cbor.CborError):
        cbor.decode(deep)
    fine = b"\x81" * 10 + b"\x00"
    assert cbor.decode(fine) == [[[[[[[[[[0]]]]]]]]]]


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 64), (1 << 64) - 1)
    | st.binary(max_size=40)
    | st.text(max_size=40)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=5)
        | st.builds(cbor.Tag, st.integers(0, 1 << 20), inner)
    ),
    max_leaves=30,
)


@given(values)
def test_cbor_round_trips(value):
    assert cbor.decode(cbor.encode(value)) == value


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_cbor_answers_any_bytes_or_raises_its_error(data):
    with contextlib.suppress(cbor.CborError):
        cbor.decode(data)


# -- JUMBF ----------------------------------------------------------------------------------


def test_a_superbox_is_laid_out_as_c2pa_rs_writes_it():
    content = jumbf.box(b"cbor", b"\xa0")
    built = jumbf.superbox(jumbf.CBOR, "c2pa.actions.v2", content)
    description = jumbf.CBOR + b"\x03" + b"c2pa.actions.v2\x00"  # requestable, labelled
    assert built == (
        (8 + 8 + len(description) + len(content)).to_bytes(4, "big")
        + b"jumb"
        + (8 + len(description)).to_bytes(4, "big")
        + b"jumd"
        + description
        + content
    )
    parsed = jumbf.parse(built)
    assert (parsed.uuid, parsed.label, parsed.content(b"cbor")) == (
        jumbf.CBOR,
        "c2pa.actions.v2",
        b"\xa0",
    )
    assert parsed.payload == built[8:]  # what a hashed URI hashes


def test_jumbf_nests_and_finds_by_label():
    inner = jumbf.superbox(jumbf.CLAIM, "c2pa.claim.v2", jumbf.box(b"cbor", b"\x01"))
    outer = jumbf.superbox(jumbf.MANIFEST, "urn:c2pa:x", inner)
    found = jumbf.parse(outer).find("c2pa.claim.v2")
    assert found is not None and found.raw == inner
    assert jumbf.parse(outer).find("c2pa.signature") is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        jumbf.box(b"free", b""),  # not a superbox
        jumbf.box(b"jumb", jumbf.box(b"cbor", b"")),  # no description first
        jumbf.box(b"jumb", jumbf.box(b"jumd", b"\x00" * 16 + b"\x02label")),  # unterminated
        jumbf.box(b"jumb", jumbf.box(b"jumd", b"\x00" * 10)),  # description too short
        b"\x00\x00\x00\x40jumb" + b"\x00" * 8,  # a size beyond the data
        jumbf.superbox(jumbf.CBOR, "x") + b"\x00",  # bytes after it
    ],
)
def test_jumbf_refuses_malformed_boxes(data):
    with pytest.raises(jumbf.JumbfError):
        jumbf.parse(data)


def test_jumbf_refuses_nesting_beyond_its_bound():
    box = jumbf.superbox(jumbf.CBOR, "leaf")
    for _ in range(jumbf.MAX_DEPTH + 2):
        box = jumbf.superbox(jumbf.CBOR, "level", box)
    with pytest.raises(jumbf.JumbfError):
        jumbf.parse(box)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_jumbf_answers_any_bytes_or_raises_its_error(data):
    with contextlib.suppress(jumbf.JumbfError):
        jumbf.parse(data)


@given(st.data())
def test_jumbf_answers_any_damaged_superbox_or_raises_its_error(data):
    good = jumbf.superbox(
        jumbf.MANIFEST,
        "urn:c2pa:1",
        jumbf.superbox(jumbf.CLAIM, "c2pa.claim.v2", jumbf.box(b"cbor", b"\xa1\x61a\x01")),
    )
    where = data.draw(st.integers(0, len(good) - 1))
    damaged = good[:where] + data.draw(st.binary(min_size=1, max_size=4)) + good[where + 1 :]
    with contextlib.suppress(jumbf.JumbfError):
        jumbf.parse(damaged)


# -- COSE_Sign1 -----------------------------------------------------------------------------

LEAF = b"0\x82\x01\x00leaf certificate (DER)"
INTERMEDIATE = b"0\x82\x01\x00intermediate (DER)"


def test_the_protected_header_is_es256_and_the_chain():
    assert cbor.decode(cose.protected_header([LEAF])) == {1: -7, 33: LEAF}
    assert cbor.decode(cose.protected_header([LEAF, INTERMEDIATE])) == {
        1: -7,
        33: [LEAF, INTERMEDIATE],
    }
    with pytest.raises(cose.CoseError):
        cose.protected_header([])


def test_the_signature_covers_the_rfc_9052_sig_structure():
    protected = cose.protected_header([LEAF])
    assert cbor.decode(cose.sig_structure(protected, b"claim")) == [
        "Signature1",
        protected,
        b"",
        b"claim",
    ]


def test_a_detached_cose_sign1_round_trips():
    protected = cose.protected_header([LEAF, INTERMEDIATE])
    signature = hashlib.sha512(b"not a real signature").digest()
    encoded = cose.sign1(protected, signature)
    assert cbor.decode(encoded) == cbor.Tag(18, [protected, {}, None, signature])
    parsed = cose.parse_sign1(encoded)
    assert parsed == cose.Sign1(protected, -7, (LEAF, INTERMEDIATE), signature)


def test_an_es256_signature_is_64_bytes():
    with pytest.raises(cose.CoseError):
        cose.sign1(cose.protected_header([LEAF]), b"\x00" * 70)


@pytest.mark.parametrize(
    "value",
    [
        cbor.Tag(98, [b"", {}, None, b""]),  # COSE_Sign, not COSE_Sign1
        cbor.Tag(18, [cose.protected_header([LEAF]), {}, b"attached", b"\x00" * 64]),
        cbor.Tag(18, [cbor.encode({1: -7}), {}, None, b"\x00" * 64]),  # no x5chain
        cbor.Tag(18, [cbor.encode({33: LEAF}), {}, None, b"\x00" * 64]),  # no algorithm
        cbor.Tag(18, [b"\xff", {}, None, b"\x00" * 64]),  # protected header not CBOR
        [1, 2, 3],
    ],
)
def test_cose_refuses_what_is_not_a_detached_sign1_with_a_chain(value):
    with pytest.raises(cose.CoseError):
        cose.parse_sign1(cbor.encode(value))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_cose_answers_any_bytes_or_raises_its_error(data):
    with contextlib.suppress(cose.CoseError):
        cose.parse_sign1(data)
