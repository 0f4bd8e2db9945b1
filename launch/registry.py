"""Every service of the platform, in start order (each may call the ones before it). Adding a
service is its own package with a `spec.py`, plus one line here."""

from __future__ import annotations

from gateway.spec import SPEC as GATEWAY
from nexus.kit.spec import Scope, ServiceSpec
from services.ontology.spec import SPEC as ONTOLOGY
from services.runtime.spec import SPEC as RUNTIME
from services.user.spec import SPEC as USER

__all__ = ["BY_NAME", "GATEWAY", "ONTOLOGY", "OWNING", "RUNTIME", "SCOPES", "SERVICES", "USER"]

SERVICES: tuple[ServiceSpec, ...] = (USER, ONTOLOGY, RUNTIME, GATEWAY)
BY_NAME = {spec.name: spec for spec in SERVICES}
# The services that own a schema: what bootstrap, migrations and `nexus migrate --service` cover.
OWNING = tuple(spec for spec in SERVICES if spec.schema)
# Every scope a service token can carry: what the services declare they honour, by name.
SCOPES: dict[str, Scope] = {scope.name: scope for spec in SERVICES for scope in spec.scopes}
