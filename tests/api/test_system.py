"""Health, the OpenAPI document, and the error shape for routes and methods that do not exist."""

from tests.helpers import assert_problem


def test_health_reports_the_version(client):
    from shared import __version__

    response = client.get("/cloud-agent/_system/health")
    assert response.status_code == 200
    assert response.json == {"version": __version__}


def test_health_answers_503_when_the_database_is_unreachable(monkeypatch):
    from app import create_app
    from shared.settings import load_settings
    from tests.helpers import SECRET_KEY

    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "ADMIN_TOKEN": "x",
            "SECRET_KEY": SECRET_KEY,
        }
    )
    client = create_app(settings, dispatch=lambda ids: None).test_client()
    assert_problem(client.get("/cloud-agent/_system/health"), 503, "ServiceUnavailable")
    # Any route that needs the database answers 503 too, in the same shape.
    wallets = client.get("/cloud-agent/wallets", headers={"x-admin-api-key": "x"})
    assert_problem(wallets, 503, "ServiceUnavailable")


def test_openapi_document_and_swagger_ui(client):
    spec = client.get("/cloud-agent/openapi.json")
    assert spec.status_code == 200
    assert spec.json["openapi"].startswith("3.")
    paths = spec.json["paths"]
    for path in (
        "/cloud-agent/events/webhooks",
        "/cloud-agent/events/webhooks/{webhook_id}",
        "/cloud-agent/events",
        "/cloud-agent/wallets",
        "/cloud-agent/iam/entities",
        "/cloud-agent/iam/apikey-authentication",
        "/cloud-agent/_system/health",
    ):
        assert path in paths
    schemes = spec.json["components"]["securitySchemes"]
    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "apikey"}
    assert paths["/cloud-agent/events/webhooks"]["post"]["security"] == [{"apiKeyAuth": []}]
    docs = client.get("/cloud-agent/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.data.lower()


def test_unknown_route_is_a_problem_document(client):
    body = assert_problem(client.get("/cloud-agent/nope"), 404, "error:ResourcePathNotFound")
    assert "doesn't exist" in body["detail"]


def test_wrong_method_on_a_known_route_is_405(client):
    response = client.put("/cloud-agent/events/webhooks")
    assert_problem(response, 405, "MethodNotAllowed")
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]


def test_a_body_over_one_mebibyte_is_refused_with_413(client, tenant):
    big = b'{"url": "http://example.com/' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        "/cloud-agent/events/webhooks",
        data=big,
        content_type="application/json",
        headers=tenant.headers,
    )
    assert_problem(response, 413, "PayloadTooLarge")
    listed = client.get("/cloud-agent/events/webhooks", headers=tenant.headers)
    assert listed.json["contents"] == []


def test_malformed_json_is_a_decoding_failure(client, tenant):
    response = client.post(
        "/cloud-agent/events/webhooks",
        data="{not json",
        content_type="application/json",
        headers=tenant.headers,
    )
    assert_problem(response, 400, "error:RequestBodyDecodingFailure")
