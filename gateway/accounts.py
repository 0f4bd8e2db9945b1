"""Accounts and the caller's own data: sign-up, sign-in, refresh, sign-out (public, so they call
the user service without a token) and GetMe (three concurrent reads as the caller)."""

from __future__ import annotations

from google.protobuf import empty_pb2

from gateway import convert
from gateway.downstream import Peers, Scope, together
from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.user.v1 import user_pb2

# GetMe returns one page of settings: a user keeps a handful, and the user service's maximum page
# is this size.
MAX_SETTINGS = 1000


async def sign_up(peers: Peers, scope: Scope, request: pb.SignUpRequest) -> user_pb2.SignUpResponse:
    downstream = user_pb2.SignUpRequest(email=request.email, password=request.password, nickname=request.nickname)
    return await peers.user.SignUp(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def sign_in(peers: Peers, scope: Scope, request: pb.SignInRequest) -> user_pb2.AuthTokens:
    downstream = user_pb2.SignInRequest(email=request.email, password=request.password)
    return await peers.user.SignIn(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def refresh(peers: Peers, scope: Scope, refresh_token: str) -> user_pb2.AuthTokens:
    downstream = user_pb2.RefreshRequest(refresh_token=refresh_token)
    return await peers.user.Refresh(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def sign_out(peers: Peers, scope: Scope, refresh_token: str) -> empty_pb2.Empty:
    downstream = user_pb2.SignOutRequest(refresh_token=refresh_token)
    return await peers.user.SignOut(downstream, metadata=scope.metadata, timeout=scope.timeout)


async def get_me(peers: Peers, scope: Scope) -> pb.GetMeResponse:
    md, timeout = scope.metadata, scope.timeout
    async with together() as calls:
        user = calls.start(peers.user.GetUser(user_pb2.GetUserRequest(), metadata=md, timeout=timeout))
        profile = calls.start(peers.user.GetProfile(user_pb2.GetProfileRequest(), metadata=md, timeout=timeout))
        settings = calls.start(
            peers.user.ListSettings(user_pb2.ListSettingsRequest(page_size=MAX_SETTINGS), metadata=md, timeout=timeout)
        )
    return pb.GetMeResponse(user=user.result(), profile=profile.result(), settings=settings.result().settings)


async def update_profile(peers: Peers, scope: Scope, update: convert.ProfileUpdate) -> user_pb2.Profile:
    """The caller's own profile: the user id stays empty ("me"), so the user service takes it from
    the token."""
    return await peers.user.UpdateProfile(
        user_pb2.UpdateProfileRequest(profile=update.profile, update_mask=update.mask),
        metadata=scope.metadata,
        timeout=scope.timeout,
    )
