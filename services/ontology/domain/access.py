"""Who may see and change what (DESIGN §2 and issue 3).

- Agents are system-level: everyone signed in reads them; writes need `ontology.admin`.
- Skills: system skills (no creator) are visible to everyone; a user's skill to its creator, and
  to everyone when public. Its creator or `ontology.admin` changes it.
- Commands: system commands are global and written with `ontology.admin`; a user's commands are
  private to that user. A service token addresses system commands only.
- Teams: system teams are visible to everyone and written with `ontology.admin`; a user's teams
  are private to that user.
- `ontology.admin` and `ontology.read` service tokens read every skill and team (operators and
  workers that run a user's private skill).

Something a caller may not see answers NOT_FOUND, like a missing one; something they may see but
not change answers PERMISSION_DENIED.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus.kit.errors import PermissionDenied
from services.ontology.domain.models import Command, Skill, Team
from services.ontology.domain.scopes import ADMIN_SCOPE as ADMIN_SCOPE
from services.ontology.domain.scopes import READ_SCOPE as READ_SCOPE


@dataclass(frozen=True)
class Viewer:
    """The verified caller, reduced to what the ontology's rules need."""

    subject: str
    # The user's id for a user token; None for a service token.
    user_id: str | None
    scopes: frozenset[str] = frozenset()

    @property
    def admin(self) -> bool:
        """Only service tokens administer; a user token never does, whatever it carries."""
        return self.user_id is None and ADMIN_SCOPE in self.scopes

    @property
    def reads_all(self) -> bool:
        return self.user_id is None and (ADMIN_SCOPE in self.scopes or READ_SCOPE in self.scopes)

    def require_admin(self) -> None:
        if not self.admin:
            raise PermissionDenied(
                f"this call needs a service token with scope {ADMIN_SCOPE!r}",
                reason="MISSING_SCOPE",
                metadata={"scope": ADMIN_SCOPE},
            )

    def require_user(self) -> str:
        if self.user_id is None:
            raise PermissionDenied("this call needs a user's access token", reason="USER_TOKEN_REQUIRED")
        return self.user_id

    def owner_for_new(self) -> str | None:
        """Who owns an object this caller creates: the user, or None (system) for an admin."""
        if self.user_id is not None:
            return self.user_id
        if not self.admin:
            raise PermissionDenied(
                f"this call needs a user's access token or a service token with scope {ADMIN_SCOPE!r}",
                reason="MISSING_SCOPE",
                metadata={"scope": ADMIN_SCOPE},
            )
        return None


def can_see_skill(viewer: Viewer, skill: Skill) -> bool:
    return (
        viewer.reads_all
        or skill.created_by_user_id is None
        or skill.is_public
        or skill.created_by_user_id == viewer.user_id
    )


def can_change_skill(viewer: Viewer, skill: Skill) -> bool:
    return viewer.admin or (skill.created_by_user_id is not None and skill.created_by_user_id == viewer.user_id)


def can_see_command(viewer: Viewer, command: Command) -> bool:
    return command.owner_user_id is None or command.owner_user_id == viewer.user_id


def can_change_command(viewer: Viewer, command: Command) -> bool:
    if command.owner_user_id is None:
        return viewer.admin
    return command.owner_user_id == viewer.user_id


def can_target(owner_user_id: str | None, skill: Skill) -> bool:
    """A command may start a skill of its owner's: any visible one for a user command, a system
    skill for a system command (so a user deleting their skill never removes a global command)."""
    if owner_user_id is None:
        return skill.created_by_user_id is None
    return skill.created_by_user_id is None or skill.is_public or skill.created_by_user_id == owner_user_id


def can_see_team(viewer: Viewer, team: Team) -> bool:
    return viewer.reads_all or team.owner_user_id is None or team.owner_user_id == viewer.user_id


def can_change_team(viewer: Viewer, team: Team) -> bool:
    if team.owner_user_id is None:
        return viewer.admin
    return viewer.admin or team.owner_user_id == viewer.user_id
