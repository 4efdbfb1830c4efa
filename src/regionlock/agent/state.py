"""What a device keeps between check-ins, and how it is stored (atomically, as one JSON file).

On a real phone this lives in protected storage (the key in a secure element). Here it is a
small JSON file, written to a temporary file, flushed and renamed over the old one, so a crash
leaves either the old state or the new one, never half of each. The counter is stored before a
check-in is sent (docs/protocol.md, replay rule 2).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from regionlock.domain.errors import InvalidInput
from regionlock.signing.jws import b64url_decode, b64url_encode

STATE_VERSION = 1


@dataclass
class AgentState:
    """The device's durable state. Times are integer seconds since the epoch."""

    kid: str  # what the device names itself with in a check-in: its IMEI until it learns its id
    seed: bytes  # the Ed25519 private seed (32 bytes)
    jwks: dict[str, Any]  # the service's verdict keys, pinned at provisioning
    issuer: str | None = None  # the provisioned service id (`iss`), checked when set
    service_url: str | None = None  # where it checks in
    unlock_key: bytes | None = None  # the service's X25519 unlock public key
    device_id: str | None = None  # learnt from the first verified verdict, then required
    counter: int = 0  # the last counter signed (stored before sending)
    pending_nonce: str | None = None  # the check-in awaiting its verdict
    pending_counter: int | None = None
    pending_sent_at: int | None = None  # the iat it was signed with
    token: str | None = None  # the last verified verdict token
    max_seen: int = 0  # the latest time seen: the device's clock going back does not count
    clock_offset: int = 0  # server time minus the device clock, learnt from signed verdicts
    challenge: str | None = None  # the unlock challenge on the lock screen
    attempts: int = 0  # wrong unlock codes entered for this challenge
    lockouts: int = 0  # challenges exhausted by wrong codes (the delay doubles each time)
    lockout_until: int = 0
    support_unlock_at: int | None = None  # when a valid unlock code was entered
    support_unlock_counter: int | None = None  # ... for the verdict with this counter
    rejected: list[str] = field(default_factory=list)  # recent refusals, newest last

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seed"] = b64url_encode(self.seed)
        data["unlock_key"] = b64url_encode(self.unlock_key) if self.unlock_key else None
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentState:
        if data.get("version") != STATE_VERSION:
            raise InvalidInput(f"agent state version {data.get('version')!r} is not supported")
        values = {k: v for k, v in data.items() if k != "version"}
        try:
            values["seed"] = b64url_decode(values["seed"])
            if values.get("unlock_key"):
                values["unlock_key"] = b64url_decode(values["unlock_key"])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the agent state is damaged: {exc}") from None


class StateStore(Protocol):
    """Where an agent keeps its state. `save` is atomic: all of the new state or none of it."""

    def save(self, state: AgentState) -> None: ...


class MemoryStore:
    """No persistence (simulated fleets keep agents in memory)."""

    def save(self, state: AgentState) -> None:
        return None


class FileStore:
    """One JSON file, replaced atomically on every save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> AgentState:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(
                f"no agent state at {self.path}; create one with `regionlock agent init`"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{self.path} is not valid JSON: {exc}") from None
        return AgentState.from_json(data)

    def save(self, state: AgentState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".agent-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state.to_json(), out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)  # it holds the device's private key
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
