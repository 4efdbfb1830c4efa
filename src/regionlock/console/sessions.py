"""Console sessions: a signed cookie, no table.

Logging in with an API key gives a cookie holding the key's id, an expiry and a random nonce,
signed with HMAC-SHA256 under a key derived (HKDF) from the installation's secret. Each request
checks the signature, the expiry, and that the key still exists and is not revoked: revoking
the key ends its sessions at once. Logging out deletes the cookie. The CSRF token of a session
is an HMAC of its nonce: forms carry it, and a POST without the right one is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE = "rl_console"
LIFETIME = timedelta(hours=8)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int  # seconds since the epoch
    nonce: str


class SessionCodec:
    def __init__(self, installation_secret: bytes) -> None:
        self.key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"regionlock console v1"
        ).derive(installation_secret)

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self.key, data, hashlib.sha256).digest()

    def issue(self, key_id: str, now: datetime) -> tuple[str, Session]:
        session = Session(key_id, int((now + LIFETIME).timestamp()), secrets.token_urlsafe(12))
        body = json.dumps(
            {"k": session.key_id, "e": session.expires, "n": session.nonce},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}", session

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        """The session a cookie holds, if it is ours, intact and not expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1000:
            return None
        body_text, mac_text = cookie.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
            if not hmac.compare_digest(mac, self._mac(body)):
                return None
            doc = json.loads(body)
            session = Session(str(doc["k"]), int(doc["e"]), str(doc["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if now.timestamp() < session.expires else None

    def csrf(self, session: Session) -> str:
        return _b64(self._mac(b"csrf:" + session.nonce.encode()))[:32]

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf(session))
