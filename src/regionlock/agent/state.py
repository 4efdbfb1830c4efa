"""What a device keeps between check-ins, and how it is stored (atomically, as one JSON file).

On a real phone this lives in protected storage (the key in a secure element). Here it is a
small JSON file, written to a temporary file, flushed and renamed over the old one, so a crash
leaves either the old state or the new one, never half of each. The counter is stored before a
check-in is sent (docs/protocol.md, replay rule 2).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
    pending_sent_at: int | None = None  # trusted time when it was sent
    token: str | None = None  # the last verified verdict token
    trusted_time: int = 0  # enforcement time: the last signed time + forward clock steps
    clock_raw: int | None = None  # the device clock's reading when trusted_time last moved
    sign_offset: int = 0  # server time minus the device clock, for signing check-ins only
    challenge: str | None = None  # the unlock challenge on the lock screen
    attempts: int = 0  # wrong unlock codes entered for this challenge
    lockouts: int = 0  # challenges exhausted by wrong codes (the delay doubles each time)
    lockout_until: int = 0
    support_unlock_at: int | None = None  # when a valid unlock code was entered
    support_unlock_counter: int | None = None  # ... for the verdict with this counter
    rejected: list[str] = field(default_factory=list)  # recent refusals, newest last
    retry_not_before: int = 0  # trusted time before which the service asked not to check in

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seed"] = b64url_encode(self.seed)
        data["unlock_key"] = b64url_encode(self.unlock_key) if self.unlock_key else None
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentState:
        """The state from its stored form; InvalidInput names what is damaged.

        Types are checked field by field: a damaged file is refused, never half-read. Its
        integrity beyond that rests on the storage (a phone keeps it in protected storage):
        whoever can rewrite this file can also read the device's private key.
        """
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise InvalidInput("the agent state is damaged or of an unsupported version")
        values = {k: v for k, v in data.items() if k != "version"}
        try:
            values["seed"] = b64url_decode(values["seed"])
            if values.get("unlock_key"):
                values["unlock_key"] = b64url_decode(values["unlock_key"])
            state = cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the agent state is damaged: {exc}") from None
        for name, kinds in _TYPES.items():
            value = getattr(state, name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise InvalidInput(f"the agent state is damaged: {name} is {value!r}")
        if len(state.seed) != 32 or (state.unlock_key is not None and len(state.unlock_key) != 32):
            raise InvalidInput("the agent state is damaged: a key has the wrong length")
        if not isinstance(state.jwks.get("keys"), list):
            raise InvalidInput("the agent state is damaged: jwks has no key list")
        return state


_NONE = type(None)
_TYPES: dict[str, tuple[type, ...]] = {
    "kid": (str,),
    "jwks": (dict,),
    "issuer": (str, _NONE),
    "service_url": (str, _NONE),
    "device_id": (str, _NONE),
    "counter": (int,),
    "pending_nonce": (str, _NONE),
    "pending_counter": (int, _NONE),
    "pending_sent_at": (int, _NONE),
    "token": (str, _NONE),
    "trusted_time": (int,),
    "clock_raw": (int, _NONE),
    "sign_offset": (int,),
    "challenge": (str, _NONE),
    "attempts": (int,),
    "lockouts": (int,),
    "lockout_until": (int,),
    "support_unlock_at": (int, _NONE),
    "support_unlock_counter": (int, _NONE),
    "rejected": (list,),
    "retry_not_before": (int,),
}


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
        # The rename is durable only once the directory is: otherwise a power cut could bring
        # back an older counter or an older count of wrong unlock codes.
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the state for one load-change-save (an advisory lock on a sidecar file), so
        two processes never both read the same count of unlock attempts."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
