import pytest

from fluxgate.imaging.formats import ImageFormatError, inspect_image
from fluxgate.local.placeholder import render_png

from ..support.image_files import image_bytes


@pytest.mark.parametrize(
    ("fmt", "save", "expected"),
    [
        ("PNG", {}, "png"),
        ("JPEG", {"quality": 80}, "jpeg"),
        ("JPEG", {"progressive": True}, "jpeg"),
        ("WEBP", {"lossless": False}, "webp"),
        ("WEBP", {"lossless": True}, "webp"),
    ],
)
def test_reads_format_and_size_from_the_header(fmt, save, expected):
    info = inspect_image(image_bytes(fmt, 321, 123, **save))
    assert (info.format, info.width, info.height) == (expected, 321, 123)


def test_extended_webp_with_alpha_is_read():
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGBA", (300, 200), (1, 2, 3, 100)).save(buffer, format="WEBP", lossless=False)
    info = inspect_image(buffer.getvalue())
    assert (info.width, info.height) == (300, 200)


def test_gif_is_recognised_and_refused():
    with pytest.raises(ImageFormatError) as exc:
        inspect_image(image_bytes("GIF", 10, 10))
    assert exc.value.reason == "unsupported_format"
    assert "GIF" in str(exc.value)


@pytest.mark.parametrize("data", [b"", b"hello world", b"<svg></svg>"])
def test_unknown_bytes_are_refused(data):
    with pytest.raises(ImageFormatError) as exc:
        inspect_image(data)
    assert exc.value.reason == "unsupported_format"


def test_truncated_header_is_corrupt_not_a_crash():
    png = image_bytes("PNG", 10, 10)
    with pytest.raises(ImageFormatError) as exc:
        inspect_image(png[:14])
    assert exc.value.reason == "corrupt"
    with pytest.raises(ImageFormatError):
        inspect_image(b"\xff\xd8\xff\xe0\x00\x10JFIF")


def test_placeholder_png_is_a_real_image():
    from io import BytesIO

    from PIL import Image

    data = render_png(640, 480, bytes(range(32)))
    with Image.open(BytesIO(data)) as img:
        img.load()
        assert img.size == (640, 480)
