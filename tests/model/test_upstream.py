import pytest

from fluxgate.model.upstream import error_from_upstream, parse_upstream_message


@pytest.mark.parametrize(
    ("message", "status", "code", "retry_after"),
    [
        (
            "5006: Error: required properties at '/' are 'prompt'",
            400,
            "upstream_invalid_input",
            None,
        ),
        ("3003: Bad input", 400, "upstream_invalid_input", None),
        ("3006: Request is too large", 413, "upstream_payload_too_large", None),
        ("3007: Request timeout", 504, "upstream_timeout", None),
        ("3036: Account limited", 429, "upstream_rate_limited", "10"),
        ("429: Too many requests", 429, "upstream_rate_limited", "10"),
        ("3040: Capacity temporarily exceeded", 503, "upstream_capacity", "30"),
        ("3043: Internal server error", 502, "upstream_error", None),
        ("something exploded", 502, "upstream_error", None),
        ("InferenceUpstreamError: 3040: out of capacity", 503, "upstream_capacity", "30"),
        ("Error: 3007: timed out", 504, "upstream_timeout", None),
    ],
)
def test_workers_ai_codes_map_to_client_errors(message, status, code, retry_after):
    error = error_from_upstream(parse_upstream_message(message))
    assert (error.status, error.code) == (status, code)
    assert error.headers.get("Retry-After") == retry_after
    assert "Traceback" not in error.message
