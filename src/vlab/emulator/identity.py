"""The emulator's own Entra ID: it issues bearer tokens and checks them as the service does.

An :class:`Identity` signs its tokens (JWT, HS256, with a key that never leaves the process) and keeps
the role assignments of its principals. The emulator checks each bearer token it is sent:

- not one of its tokens, or the wrong audience → HTTP 401;
- expired on the identity's clock (inject a :class:`~vlab.clock.VirtualClock` to step through a
  token's lifetime) → HTTP 401;
- a principal without the *Cognitive Services User* role → HTTP 403 ``PermissionDenied``.

It also serves the two OAuth endpoints ``azure-identity`` needs for a client-secret sign-in, so the
real ``ClientSecretCredential``/``EnvironmentCredential`` can sign in against it
(``AZURE_AUTHORITY_HOST`` = the emulator, over TLS with a throwaway CA, see :mod:`vlab.emulator.tls`):
``GET /<tenant>/v2.0/.well-known/openid-configuration`` and ``POST /<tenant>/oauth2/v2.0/token``
(``grant_type=client_credentials``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from aiohttp import web

from vlab.clock import NS_PER_S, Clock, SystemClock

AUDIENCE: Final = "https://ai.azure.com"
"""The audience of Voice Live tokens (the SDK asks for the scope ``https://ai.azure.com/.default``)."""
ROLE: Final = "Cognitive Services User"
"""The role a principal needs to open a session."""
TENANT: Final = "00000000-0000-4000-8000-00000000e1ab"
"""The emulator's tenant id (any tenant name in a token-endpoint path is accepted)."""


class IssuedToken(NamedTuple):
    """A bearer token and when it expires (the shape of ``azure.core.credentials.AccessToken``)."""

    token: str
    """The bearer token."""
    expires_on: int
    """Expiry in Unix seconds, on the identity's clock."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a bearer token is refused: the HTTP status and the service's error body."""

    status: int
    """401 (not a valid token) or 403 (valid, but the principal lacks the role)."""
    code: str
    """The error code of the body."""
    message: str
    """The error message of the body."""

    def response(self) -> web.Response:
        """The HTTP response that refuses the upgrade."""
        return web.json_response({"error": {"code": self.code, "message": self.message}}, status=self.status)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Identity:
    """Issues and checks the emulator's bearer tokens; keeps role assignments and app registrations.

    Args:
        clock: Whose wall time stamps and expires tokens (default: the system clock).
        lifetime_s: How long an issued token is valid.
    """

    def __init__(self, *, clock: Clock | None = None, lifetime_s: float = 3600.0) -> None:
        self.clock = clock or SystemClock()
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)
        self._granted: set[str] = set()
        self._clients: dict[str, tuple[bytes, str]] = {}
        self.issued = 0
        """How many tokens have been issued (a test sees a refresh as a new one)."""

    def __repr__(self) -> str:
        return f"Identity({len(self._granted)} principal(s) with the role, {self.issued} token(s) issued)"

    # --- principals ------------------------------------------------------------------------------------

    def grant(self, principal: str) -> None:
        """Give ``principal`` the *Cognitive Services User* role on the emulated resource."""
        self._granted.add(principal)

    def revoke(self, principal: str) -> None:
        """Take the role away from ``principal`` (its tokens are then refused with 403)."""
        self._granted.discard(principal)

    def register_app(self, client_id: str, client_secret: str, *, role: bool = True) -> None:
        """Register an app (service principal) that signs in with a client secret at the token endpoint.

        Args:
            client_id: The app's client id (also its principal).
            client_secret: Its secret.
            role: Grant it the role.
        """
        self._clients[client_id] = (hashlib.sha256(client_secret.encode()).digest(), client_id)
        if role:
            self.grant(client_id)

    # --- tokens ------------------------------------------------------------------------------------------

    def now_s(self) -> float:
        """The identity's wall time in Unix seconds."""
        return self.clock.wall_ns() / NS_PER_S

    def issue(
        self, principal: str, *, lifetime_s: float | None = None, audience: str = AUDIENCE
    ) -> IssuedToken:
        """A signed token for ``principal`` (it is accepted only while the principal has the role).

        Args:
            principal: The object id the token is for.
            lifetime_s: Validity (default: :attr:`lifetime_s`).
            audience: The token's audience (Voice Live accepts only :data:`AUDIENCE`).
        """
        now = self.now_s()
        expires = int(now + (self.lifetime_s if lifetime_s is None else lifetime_s))
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://vlab.emulator/{TENANT}/v2.0",
            "tid": TENANT,
        }
        claims.update(oid=principal, iat=int(now), nbf=int(now), exp=expires, jti=secrets.token_hex(8))
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        self.issued += 1
        return IssuedToken(f"{head}.{body}.{signature}", expires)

    def check(self, token: str) -> Refusal | None:
        """None when ``token`` opens a session; else why it is refused (401 or 403)."""
        claims = self._claims(token)
        if claims is None:
            return Refusal(401, "401", "Access denied: the bearer token is not valid for this resource.")
        if claims.get("aud") != AUDIENCE:
            return Refusal(401, "401", f"Access denied: the token's audience is not {AUDIENCE}.")
        if float(claims.get("exp", 0)) <= self.now_s():
            return Refusal(401, "401", "Access denied: the bearer token has expired.")
        principal = str(claims.get("oid"))
        if principal not in self._granted:
            return Refusal(
                403,
                "PermissionDenied",
                f"The principal `{principal}` lacks the required data action "
                "`Microsoft.CognitiveServices/accounts/AIServices/*` (role 'Cognitive Services User') "
                "to perform this operation.",
            )
        return None

    def _claims(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        head, body, signature = parts
        expected = _b64(hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode()):
            return None
        try:
            claims = json.loads(_unb64(body))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None

    # --- the OAuth endpoints -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve the OpenID configuration and the client-credentials token endpoint on ``app``."""
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}/{request.match_info['tenant']}"
        return web.json_response(
            {
                "issuer": f"{base}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "tenant_region_scope": None,
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        secret = str(form.get("client_secret", ""))
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is emulated.")
        registered = self._clients.get(client_id)
        if registered is None or not hmac.compare_digest(
            hashlib.sha256(secret.encode()).digest(), registered[0]
        ):
            return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        scope = str(form.get("scope", ""))
        audience = scope.split(" ")[0].removesuffix("/.default") or AUDIENCE
        issued = self.issue(registered[1], audience=audience)
        expires_in = max(0, issued.expires_on - int(self.now_s()))
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": issued.token,
            }
        )


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
