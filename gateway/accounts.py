"""Accounts and the caller's own data: sign-up, sign-in, refresh, sign-out (public, so they call
the user service without a token) and GetMe (three concurrent reads as the caller)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import empty_pb2

from gateway import convert
from gateway.downstream import Peers, Scope, together
from gateway.pages import same, token_after
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.kit import paging
from nexus.kit.config import Settings
from nexus.kit.ratelimit import AttemptLimiter, ClientAddresses
from nexus.user.v1 import user_pb2

# GetMe returns at most this many settings (the user service's largest page); a user keeps a
# handful, and settings_next_page_token continues past them.
MAX_SETTINGS = 1000


class EdgeLimits:
    """The gateway is where clients arrive, so it limits sign-in and sign-up attempts per client
    address before any downstream call; a flood from one client never reaches the user service.
    Per account is the user service's limit, which covers every caller. The gateway's peers
    are the clients themselves: no forwarded address is believed here."""

    def __init__(self, settings: Settings) -> None:
        self.sign_up = AttemptLimiter(settings)
        self.sign_in = AttemptLimiter(settings)
        self._clients = ClientAddresses(())

    def client(self, context: Any) -> str | None:
        return self._clients.of(context)


async def sign_up(
    peers: Peers, scope: Scope, limits: EdgeLimits, client: str | None, request: pb.SignUpRequest
) -> user_pb2.SignUpResponse:
    limits.sign_up.admit(address=client, account=None)
    downstream = user_pb2.SignUpRequest(email=request.email, password=request.password, nickname=request.nickname)
    return await peers.user.SignUp(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def sign_in(
    peers: Peers, scope: Scope, limits: EdgeLimits, client: str | None, request: pb.SignInRequest
) -> user_pb2.AuthTokens:
    admission = limits.sign_in.admit(address=client, account=None)
    downstream = user_pb2.SignInRequest(email=request.email, password=request.password)
    tokens = await peers.user.SignIn(downstream, metadata=scope.metadata, timeout=scope.timeout)
    admission.refund()  # as the user service does: successes do not use up a client's attempts
    return tokens


async def refresh(peers: Peers, scope: Scope, refresh_token: str) -> user_pb2.AuthTokens:
    downstream = user_pb2.RefreshRequest(refresh_token=refresh_token)
    return await peers.user.Refresh(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def sign_out(peers: Peers, scope: Scope, refresh_token: str) -> empty_pb2.Empty:
    downstream = user_pb2.SignOutRequest(refresh_token=refresh_token)
    return await peers.user.SignOut(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def get_me(peers: Peers, scope: Scope, after: str, budget: paging.Budget) -> tuple[pb.GetMeResponse, str]:
    """The account, the profile and the settings from the user service's token `after`, as many
    as fit beside the other two; and the user service's token for the settings that follow."""
    md, timeout = scope.metadata, scope.timeout

    async def list_settings(token: str, size: int) -> tuple[Sequence[user_pb2.Setting], str]:
        request = user_pb2.ListSettingsRequest(page_size=size, page_token=token)
        page = await peers.user.ListSettings(request, metadata=md, timeout=timeout)
        return page.settings, page.next_page_token

    async with together() as calls:
        user = calls.start(peers.user.GetUser(user_pb2.GetUserRequest(), metadata=md, timeout=timeout))
        profile = calls.start(peers.user.GetProfile(user_pb2.GetProfileRequest(), metadata=md, timeout=timeout))
        first = calls.start(list_settings(after, MAX_SETTINGS))
    budget.spend(user.result())
    budget.spend(profile.result())
    items, next_token = first.result()
    settings = budget.fill(items, same)
    if len(settings) < len(items):
        next_token = await token_after(list_settings, after, len(settings))
    return pb.GetMeResponse(user=user.result(), profile=profile.result(), settings=settings), next_token


async def update_profile(peers: Peers, scope: Scope, update: convert.ProfileUpdate) -> user_pb2.Profile:
    """The caller's own profile: the user id stays empty ("me"), so the user service takes it from
    the token."""
    return await peers.user.UpdateProfile(
        user_pb2.UpdateProfileRequest(profile=update.profile, update_mask=update.mask),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )
