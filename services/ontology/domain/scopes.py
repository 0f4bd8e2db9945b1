"""The service-token scopes the Ontology service honours. Its spec declares them, so `nexus token
mint` offers exactly these; `access` checks them."""

from __future__ import annotations

from nexus.kit.spec import Scope

ADMIN_SCOPE = "ontology.admin"
READ_SCOPE = "ontology.read"

SCOPES = (
    Scope(ADMIN_SCOPE, "create and change agents and the system skills, commands and teams; read every skill and team"),
    Scope(READ_SCOPE, "read every skill and team, private ones included; changes nothing"),
)
