"""The four event types of the Identus agent and what their `data` must carry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.errors import InvalidInput


@dataclass(frozen=True)
class EventType:
    name: str
    id_field: str
    id_is_uuid: bool
    roles: tuple[str, ...]
    state_field: str
    states: tuple[str, ...]
    notified_states: tuple[str, ...] | None = None  # None: every state is notified


EVENT_TYPES = {
    t.name: t
    for t in (
        EventType(
            "ConnectionUpdated",
            "connectionId",
            True,
            ("Inviter", "Invitee"),
            "state",
            (
                "InvitationGenerated",
                "InvitationReceived",
                "InvitationExpired",
                "ConnectionRequestPending",
                "ConnectionRequestSent",
                "ConnectionRequestReceived",
                "ConnectionResponsePending",
                "ConnectionResponseSent",
                "ConnectionResponseReceived",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
            ),
        ),
        EventType(
            "IssueCredentialRecordUpdated",
            "recordId",
            False,
            ("Issuer", "Holder"),
            "protocolState",
            (
                "OfferPending",
                "OfferSent",
                "OfferReceived",
                "RequestPending",
                "RequestGenerated",
                "RequestSent",
                "RequestReceived",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
                "CredentialPending",
                "CredentialGenerated",
                "CredentialSent",
                "CredentialReceived",
                "InvitationGenerated",
                "InvitationExpired",
            ),
        ),
        EventType(
            "PresentationUpdated",
            "presentationId",
            False,
            ("Verifier", "Prover"),
            "status",
            (
                "ProposalPending",
                "ProposalSent",
                "ProposalReceived",
                "ProposalRejected",
                "RequestPending",
                "RequestSent",
                "RequestReceived",
                "RequestRejected",
                "ProblemReportPending",
                "ProblemReportSent",
                "ProblemReportReceived",
                "PresentationPending",
                "PresentationGenerated",
                "PresentationSent",
                "PresentationReceived",
                "PresentationVerified",
                "PresentationVerificationFailed",
                "PresentationAccepted",
                "PresentationRejected",
                "InvitationGenerated",
                "InvitationExpired",
            ),
        ),
        EventType(
            "DIDStatusUpdated",
            "did",
            False,
            (),
            "status",
            ("CREATED", "PUBLICATION_PENDING", "PUBLISHED"),
            notified_states=("PUBLISHED",),
        ),
    )
}


def check_event(type_name: str, data: dict) -> EventType:
    """The event type, once `data` carries its id, role and a known state; else InvalidInput."""
    event_type = EVENT_TYPES.get(type_name)
    if event_type is None:
        raise InvalidInput(f"type: must be one of {', '.join(EVENT_TYPES)}, got {type_name!r}")
    if not isinstance(data, dict):
        raise InvalidInput("data: must be a JSON object")
    _check_id(event_type, data.get(event_type.id_field))
    if event_type.roles:
        role = data.get("role")
        if role not in event_type.roles:
            raise InvalidInput(
                f"data.role: must be one of {', '.join(event_type.roles)}, got {role!r}"
            )
    state = data.get(event_type.state_field)
    if state not in event_type.states:
        raise InvalidInput(f"data.{event_type.state_field}: not a {type_name} state: {state!r}")
    return event_type


def _check_id(event_type: EventType, value) -> None:
    field = f"data.{event_type.id_field}"
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field}: required, a non-empty string")
    if event_type.id_is_uuid:
        try:
            uuid.UUID(value)
        except ValueError:
            raise InvalidInput(f"{field}: must be a UUID, got {value!r}") from None
    if event_type.name == "DIDStatusUpdated" and not value.startswith("did:"):
        raise InvalidInput(f"{field}: must start with 'did:', got {value!r}")


def is_notified(event_type: EventType, data: dict) -> bool:
    if event_type.notified_states is None:
        return True
    return data.get(event_type.state_field) in event_type.notified_states


def record_key(event_type: EventType, data: dict) -> str:
    """The record an event is about: its type and its id (a connection, a credential record,
    a presentation, a DID). Per-record ordering keeps the order of events with the same key."""
    return f"{event_type.name}:{data[event_type.id_field]}"
