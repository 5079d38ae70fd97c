"""Health, OpenAPI, and the JSON shape of errors nobody planned for."""

import pytest
from fastapi.testclient import TestClient

from fluxgate import FLUX_MODEL_ID
from fluxgate.api.app import create_app

pytestmark = pytest.mark.runtimes("local", "worker")


def test_healthz_names_the_model(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["model"] == FLUX_MODEL_ID


def test_healthz_is_the_same_json_whichever_way_the_runtime_serves_it(client):
    """The Worker answers a bodiless ``GET /healthz`` in front of its ASGI bridge and one
    with a body through the app (which checks the body first): one answer either way."""
    plain = client.get("/healthz")
    with_body = client.request("GET", "/healthz", content=b"{}")
    assert plain.status_code == with_body.status_code == 200
    assert plain.headers["content-type"] == with_body.headers["content-type"] == "application/json"
    assert plain.json() == with_body.json()
    assert set(plain.json()) == {"status", "model", "models", "version"}


def test_openapi_documents_every_endpoint_and_both_body_encodings(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/healthz",
        "/v1/images/generations",
        "/v1/images/{image_id}",
        "/v1/files/{object_key}",
        "/v1/admin/keys",
        "/v1/admin/keys/{key_id}/revoke",
    }
    body = paths["/v1/images/generations"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "input_image_3" in body["multipart/form-data"]["schema"]["properties"]
    assert {"400", "401", "413", "503"} <= set(paths["/v1/images/generations"]["post"]["responses"])
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "AdminToken"} <= set(schemes)


def test_unknown_routes_and_methods_are_json(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.put("/v1/images/generations")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_an_unexpected_failure_is_a_json_500_without_details(make_runtime):
    class Broken:
        def served_name(self, spec):
            return spec.id

        async def generate(self, request):
            raise RuntimeError("secret internal detail")

    gateway = make_runtime(model=Broken()).gateway
    with TestClient(create_app(lambda _r: gateway), raise_server_exceptions=False) as client:
        from ..support.admin import new_key

        r = client.post("/v1/images/generations", json={"prompt": "x"}, headers=new_key(client))
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "secret internal detail" not in r.text


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
def test_meta_endpoints_need_no_key(client, path):
    assert client.get(path).status_code == 200


def test_in_placeholder_mode_the_models_say_what_will_run(make_runtime):
    """A local server without Cloudflare credentials draws placeholders: ``/v1/models``
    lists a placeholder for each model (``placeholder/<short name>``, standing in for it),
    not the models themselves, and requests naming either get the placeholder's image."""
    from fluxgate.local.placeholder import PlaceholderAI
    from fluxgate.model.family import MODELS
    from fluxgate.model.port import MultipartImageModel

    from ..support.admin import new_key

    gateway = make_runtime(model=MultipartImageModel(PlaceholderAI(), stand_in=True)).gateway
    with TestClient(create_app(lambda _r: gateway)) as client:
        auth = new_key(client)
        listed = client.get("/v1/models", headers=auth).json()["data"]
        assert [(m["id"], m["owned_by"], m["stands_in_for"]) for m in listed] == [
            (f"placeholder/{spec.short}", "fluxgate", spec.id) for spec in MODELS
        ]
        card = client.get("/v1/models/placeholder/flux-2-klein-4b", headers=auth).json()
        assert card["id"] == "placeholder/flux-2-klein-4b"
        for named in ("placeholder/flux-2-dev", FLUX_MODEL_ID, "flux-2-dev"):
            made = client.post(
                "/v1/images/generations",
                json={"prompt": "a kite", "model": named, "width": 256, "height": 256},
                headers=auth,
            )
            assert made.status_code == 200 and made.json()["model"] == "placeholder/flux-2-dev"
        assert client.get("/healthz").json()["model"] == "placeholder/flux-2-dev"
        assert client.get("/readyz").json()["checks"]["model"]["ok"] is True


def test_with_the_real_model_the_listing_names_it_without_a_stand_in(client, auth):
    card = client.get("/v1/models", headers=auth).json()["data"][0]
    assert card["id"] == FLUX_MODEL_ID and card.get("stands_in_for") is None
