"""The shapes of a webhook's `auth` and `tls`, for the OpenAPI document. The core checks them
(`shared.receiver_auth`, `shared.tls_material`); these say the same to schema-driven clients.
"""

import marshmallow as ma

from app.base import Schema
from app.openapi_patterns import URL_PATTERN, VISIBLE_ASCII_PATTERN
from shared.receiver_auth import CLIENT_AUTH_METHODS, MAX_FIELD_LENGTH

AUTH_DESCRIPTION = (
    "How each request authenticates to the receiver: basic (Authorization: Basic) or oauth2 "
    "(a client-credentials grant; the token is fetched once per worker process and renewed "
    "before it expires or after a 401). Answers show the type and the non-secret fields."
)
TLS_DESCRIPTION = (
    "Mutual TLS (a client certificate and its unencrypted PEM key) and/or a private CA that "
    "alone is trusted for this receiver's certificate; the url must be https. Answers show the "
    "certificates, never the key."
)
SIGNATURE_DESCRIPTION = (
    "v1 (default): webhook-signature v1,<HMAC-SHA256> with the whsec_ secret of the answer. "
    "v1a: v1a,<Ed25519 signature>; the answer carries the whpk_ publicKey to verify with, and "
    "no secret. Fixed for the webhook's life."
)


def _type(name: str):
    return ma.fields.String(required=True, metadata={"enum": [name]})


def _text(pattern: str = VISIBLE_ASCII_PATTERN, required: bool = True, **metadata):
    """A string as `shared.receiver_auth` accepts it: visible ASCII with inner spaces; an
    optional one may be null."""
    limits = {"minLength": 1, "maxLength": MAX_FIELD_LENGTH, "pattern": pattern}
    return ma.fields.String(
        required=required, allow_none=not required, metadata={**limits, **metadata}
    )


# Visible ASCII without ':' (RFC 7617: the user-id cannot hold one).
USERNAME_PATTERN = r"^([!-9;-~]([ -9;-~]*[!-9;-~])?)?$"


class BasicAuthShownSchema(Schema):
    type = _type("basic")
    username = _text(USERNAME_PATTERN)


class BasicAuthSchema(BasicAuthShownSchema):
    password = _text()


class OAuth2AuthShownSchema(Schema):
    type = _type("oauth2")
    tokenUrl = _text(URL_PATTERN, description="An absolute http(s) URL.")
    clientId = _text()
    scope = _text(required=False, description="Space-separated scopes.")
    audience = _text(required=False, description="Sent as `audience` (Auth0 and others).")
    clientAuthentication = ma.fields.String(
        allow_none=True,
        metadata={
            "enum": [*CLIENT_AUTH_METHODS, None],  # OpenAPI 3.0: null must be listed too
            "description": "How the client authenticates to the token endpoint: HTTP Basic "
            "(default) or client_id and client_secret in the form.",
        },
    )


class OAuth2AuthSchema(OAuth2AuthShownSchema):
    clientSecret = _text()


class TLSShownSchema(Schema):
    clientCertificate = ma.fields.String(
        metadata={"description": "PEM; intermediates may follow the certificate."}
    )
    caCertificate = ma.fields.String(
        metadata={"description": "PEM; only this CA is trusted for the receiver."}
    )
    clientCertificateExpiresAt = ma.fields.String(
        metadata={"example": "2027-09-12T08:39:03.000000Z"}
    )


class TLSSchema(Schema):
    clientCertificate = TLSShownSchema._declared_fields["clientCertificate"]
    clientKey = ma.fields.String(
        metadata={"description": "Unencrypted PEM private key of clientCertificate."}
    )
    caCertificate = TLSShownSchema._declared_fields["caCertificate"]


def _one_of(spec, schemas: dict[str, type[ma.Schema]], suffix: str) -> dict:
    refs = {}
    for kind, schema in schemas.items():
        component = {"basic": "BasicAuth", "oauth2": "OAuth2Auth"}[kind] + suffix
        spec.components.schema(component, schema=schema)
        refs[kind] = f"#/components/schemas/{component}"
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


def document_receiver_security(spec) -> None:
    """`auth` as a oneOf keyed on `type` and `tls` as its object, in requests (with their
    secrets) and in answers (without)."""
    asked = _one_of(spec, {"basic": BasicAuthSchema, "oauth2": OAuth2AuthSchema}, "")
    shown = _one_of(spec, {"basic": BasicAuthShownSchema, "oauth2": OAuth2AuthShownSchema}, "Shown")
    spec.components.schema("WebhookTLS", schema=TLSSchema)
    spec.components.schema("WebhookTLSShown", schema=TLSShownSchema)
    schemas = spec.components.schemas
    for component, auth, tls in (
        ("WebhookCreate", asked, "WebhookTLS"),
        ("WebhookChange", asked, "WebhookTLS"),
        ("Webhook", shown, "WebhookTLSShown"),
        ("CreatedWebhook", shown, "WebhookTLSShown"),
    ):
        properties = schemas[component]["properties"]
        properties["auth"] = {
            **auth,
            "nullable": True,
            "description": properties["auth"].get("description", AUTH_DESCRIPTION),
        }
        properties["tls"] = {
            "allOf": [{"$ref": f"#/components/schemas/{tls}"}],
            "nullable": True,
            "description": properties["tls"].get("description", TLS_DESCRIPTION),
        }
