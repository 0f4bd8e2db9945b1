"""The service-token scopes the User service honours. Its spec declares them, so `nexus token
mint` offers exactly these; `access` checks them."""

from __future__ import annotations

from nexus.kit.spec import Scope

SCOPE_ADMIN = "user.admin"
SCOPE_PROFILES_READ = "user.profiles.read"
SCOPE_CONNECTIONS_REVEAL = "user.connections.reveal"
SCOPE_CONNECTIONS_VERIFY = "user.connections.verify"
SCOPE_AUDIT_READ = "user.audit.read"

SCOPES = (
    Scope(SCOPE_ADMIN, "read, deactivate and reactivate any user's account"),
    Scope(SCOPE_PROFILES_READ, "read any user's profile (preferences and principles)"),
    Scope(SCOPE_CONNECTIONS_REVEAL, "read a connection's decrypted credentials (every read is audited)"),
    Scope(SCOPE_CONNECTIONS_VERIFY, "mark any user's connection verified"),
    Scope(SCOPE_AUDIT_READ, "list the credential reveals of every user"),
)
