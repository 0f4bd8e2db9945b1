"""Sign-up, sign-in, refresh and sign-out: passwords, access tokens and refresh-token families.

No SQL and no protos here; it composes the store, the bounded password hasher, the signer and the
attempt limits. The limits come first, before any hashing: a flood is turned away for the price
of a dict lookup and cannot fill the hashing slots that everyone's sign-in needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jwt

from nexus.kit.config import Settings
from nexus.kit.ratelimit import AttemptLimiter
from services.user.domain import passwords, signins
from services.user.domain.emails import Email
from services.user.domain.records import IssuedRefresh, IssuedTokens, UserRecord
from services.user.hashing import PasswordHasher
from services.user.keys import SigningKeys
from services.user.store.accounts import AccountStore


class Accounts:
    def __init__(self, store: AccountStore, hasher: PasswordHasher, signing: SigningKeys, settings: Settings) -> None:
        self.store = store
        self.hasher = hasher
        self.signing = signing
        self.access_ttl_s = settings.access_token_ttl_s
        self.refresh_ttl_s = settings.refresh_token_ttl_s
        self.sign_up_limits = AttemptLimiter(settings)
        self.sign_in_limits = AttemptLimiter(settings)

    async def sign_up(
        self, email: Email, password: str, nickname: str, client: str | None
    ) -> tuple[UserRecord, IssuedTokens]:
        """`client` is the caller's address (None: a relay's own traffic, limited upstream).
        Every attempt counts, successful or not: each answer tells whether an email is taken."""
        self.sign_up_limits.admit(address=client, account=email.key)
        password_hash = await self.hasher.hash(password)
        record = await self.store.create_user(
            email=email.address, email_key=email.key, password_hash=password_hash, nickname=nickname
        )
        return record, await self._start(record.id)

    async def sign_in(self, email: Email, password: str, client: str | None) -> IssuedTokens:
        """The same limits apply to an unknown email as to a known one, so a refusal tells
        nothing either; a sign-in that succeeds gives its tokens back."""
        admission = self.sign_in_limits.admit(address=client, account=email.key)
        candidate = await self.store.sign_in_candidate(email.key)
        if candidate is None:
            await self.hasher.verify_unknown(password)
            raise signins.invalid_credentials()
        if not await self.hasher.verify(password, candidate.password_hash):
            raise signins.invalid_credentials()
        # Only a caller who knows the password learns that the account is deactivated.
        admission.refund()
        if not candidate.active:
            raise signins.user_deactivated()
        if passwords.needs_rehash(candidate.password_hash):
            upgraded = await self.hasher.hash(password)
            await self.store.replace_password_hash(candidate.user_id, candidate.password_hash, upgraded)
        return await self._start(candidate.user_id)

    async def refresh(self, token: str) -> IssuedTokens:
        following = signins.new_refresh_token()
        result = await self.store.refresh(
            signins.token_hash(token),
            lambda state: signins.decide_refresh(state) is signins.Decision.ROTATE,
            signins.token_hash(following),
            self.refresh_ttl_s,
        )
        if result is None:
            raise signins.reused_refresh_token()
        user_id, family_id, expires_at = result
        return self._tokens(user_id, IssuedRefresh(following, expires_at, family_id))

    async def sign_out(self, token: str) -> None:
        await self.store.sign_out(signins.token_hash(token))

    async def _start(self, user_id: str) -> IssuedTokens:
        token = signins.new_refresh_token()
        started = await self.store.start_family(user_id, signins.token_hash(token), self.refresh_ttl_s)
        if started is None:
            # Deactivated while the password was being checked.
            raise signins.user_deactivated()
        family_id, expires_at = started
        return self._tokens(user_id, IssuedRefresh(token, expires_at, family_id))

    def _tokens(self, user_id: str, refresh: IssuedRefresh) -> IssuedTokens:
        # `sid` ties the access token to its sign-in, so ending the sign-in revokes it everywhere.
        access = self.signing.signer.mint(
            user_id, kind="user", scopes=(), ttl_s=self.access_ttl_s, extra={"sid": refresh.family_id}
        )
        expires = jwt.decode(access, options={"verify_signature": False})["exp"]
        return IssuedTokens(user_id, access, datetime.fromtimestamp(expires, UTC), refresh)
