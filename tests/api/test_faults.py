"""A fault no handler takes: the one ``500 internal_error`` and the one log line.

Each runtime has one catch-all, its outermost layer (``api/asgi_envelope.py`` locally,
``edge/front/js_envelope.py`` on the Worker), and both go through
:func:`fluxgate.errors.unhandled`. The Worker's side is the Pyodide case
``case_a_fault_on_any_path_is_the_one_json_500_logged_once``, which checks the same body
and line through the Worker's entry; a fault cannot be caused from outside a Worker.
"""

import logging

import pytest
from fastapi.testclient import TestClient

from fluxgate.api.app import create_app

from ..support.admin import new_key


class Broken:
    """An image model with a bug."""

    def served_name(self, spec):
        return spec.id

    async def generate(self, request):
        raise RuntimeError("secret internal detail")


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "route"])
def test_a_fault_is_the_one_json_500_logged_once(make_runtime, caplog, fast_path):
    gateway = make_runtime(model=Broken()).gateway
    app = create_app(lambda _r: gateway, fast_path_in_front=fast_path)
    caplog.set_level(logging.ERROR, logger="fluxgate")
    with TestClient(app) as client:  # nothing escapes the envelope to the server
        auth = new_key(client)
        caplog.clear()
        r = client.post("/v1/images/generations", json={"prompt": "x"}, headers=auth)
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "Internal error.",
            "type": "api_error",
            "param": None,
            "request_id": r.headers["x-request-id"],
        }
    }
    lines = [(rec.name, rec.getMessage(), rec.exc_info is not None) for rec in caplog.records]
    assert lines == [("fluxgate.app", "unhandled error", True)]
