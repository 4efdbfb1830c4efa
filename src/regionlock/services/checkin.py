"""The check-in pipeline: verify, locate, decide, record, sign (docs/protocol.md).

Order matters for safety and cost:
1. The header is parsed strictly and the device found by `kid` (id or IMEI); an unknown
   device or a bad signature ends here, with no state read or written and never a verdict.
2. Signature, payload contract and clock window are checked (stateless).
3. Signals are validated and located outside any transaction (CPU work, no locks held).
4. Judged and recorded: the counter must be above the last and the nonce unseen, the active
   policy decides, then state, check-in row and audit entry are written together in one
   transaction, the state over the version it was judged on. A replay changes nothing; a
   crash leaves nothing half-applied.
5. The verdict is signed with the service key.

`check_in_many` runs a group of check-ins through step 4 in one transaction (group commit:
one BEGIN/COMMIT, one read of the policy and of the audit head, one write of each table); each
check-in is still judged as if it came alone, in arrival order, and a refused one writes
nothing. A group is judged on a snapshot before its transaction (`_plan`), and judged
again inside it, its device rows locked, if anything it read has moved by then.
`services.checkin_queue` feeds it from the HTTP service.

Raw signals are dropped here: only country, subdivision, confidence, flags and the kinds of
signal present are stored (docs/privacy.md).
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from regionlock.domain.decision import Verdict, decide, languages_at
from regionlock.domain.device import (
    DeviceRecord,
    DeviceState,
    PackedRecord,
    unpack_record_unchecked,
)
from regionlock.domain.location import LocationEstimate
from regionlock.domain.messages import Message
from regionlock.domain.policy import Action, Exemption, Policy
from regionlock.domain.signals import Signals, parse_signals
from regionlock.geo.locator import Locator
from regionlock.policies import parse_policy
from regionlock.services.ratelimit import Rate, RateLimited, TokenBuckets
from regionlock.services.registry import UnknownDevice
from regionlock.settings import Settings
from regionlock.signing import (
    CheckinRequest,
    Keyring,
    OpenedCheckin,
    ReplayedNonce,
    StaleCounter,
    issue_verdict,
    open_checkin,
    verdict_response,
)
from regionlock.storage import (
    AuditStore,
    CheckinStore,
    DeviceStore,
    KeyStore,
    PolicyStore,
    Stores,
    Transactions,
)
from regionlock.storage.audit import NewEntry, PreparedEntry, prepare_entries
from regionlock.storage.checkins import CheckinRow, DuplicateNonce
from regionlock.storage.db import Pending, StoreConflict, Transaction, epoch_ms
from regionlock.storage.devices import EncodedStates, StaleState, encode_states


@dataclass(frozen=True, slots=True)
class CheckinCall:
    """One check-in as it arrived: the device's token, the peer address, the service time."""

    token: str | bytes
    peer_ip: str | None
    now: datetime


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A check-in verified and located, waiting for its transaction."""

    record: DeviceRecord
    request: CheckinRequest
    location: LocationEstimate
    kinds: tuple[str, ...]
    now: datetime
    locale: str | None = None  # the device's, which picks the message's language


@dataclass(frozen=True, slots=True)
class _Judged:
    """A group judged: an outcome per check-in, and what storing the accepted ones writes."""

    out: list[Verdict | Exception]
    rows: list[CheckinRow]
    entries: Sequence[NewEntry | PreparedEntry]
    saves: list[tuple[str, int, DeviceState]]  # (device id, version judged on, new state)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A group judged on a snapshot, ready to store (`CheckinService._plan`): `encoded` None
    when every check-in was refused; `mark` the policy activation it was judged under; `spent`
    the devices whose rate-limit allowance it took."""

    judged: _Judged
    encoded: EncodedStates | None
    mark: int
    spent: list[str]


def _kid(opened: OpenedCheckin) -> str:
    """The device key a check-in names (its id or an IMEI), as text."""
    return str(opened.header.get("kid", ""))


class _Overtaken(Exception):
    """What a group was judged on has moved before its write transaction."""


log = logging.getLogger(__name__)

# With no active policy every device is allowed: nothing restricts until an operator decides.
NO_POLICY = Policy("none", "0", "no policy is active", ())
MAX_TOKEN_LIFETIME = timedelta(days=366)
# What a manually locked device shows when the operator gave no message of its own, in the
# languages of the presets' places (data/messages.toml).
MANUAL_LOCK_NOTICE = Message.parse(
    tomllib.loads(
        resources.files("regionlock").joinpath("data", "messages.toml").read_text("utf-8")
    )["manual_lock"],
    "data/messages.toml: manual_lock",
)
MANUAL_LOCK_MESSAGE = MANUAL_LOCK_NOTICE.default  # in English


# Registry records kept in memory at most (then forgotten all at once): about 100 MB.
RECORD_CACHE = 200_000

# Beyond two clock windows, how much older a recorded copy of a check-in may be (a server
# clock stepped back, nodes whose clocks differ); see `_replay_horizon_ms`.
REPLAY_MARGIN_S = 3600


@dataclass
class CheckinService:
    """Everything a check-in needs, built once per process."""

    db: Transactions
    devices: DeviceStore
    checkins: CheckinStore
    audit: AuditStore
    policies: PolicyStore
    keys: KeyStore
    locator: Locator
    settings: Settings
    # Accepted check-ins per device (services/ratelimit.py); None: no limit.
    limiter: TokenBuckets | None = None
    # Registry records never change once imported (a conflicting re-import is refused), so
    # their keys are cached; state is always read under the row lock. The active policy and
    # the keyring are cached with the store's mark of their latest change, which every
    # group's transaction reads again: an activation or a rotation applies from the next
    # check-in on, in every process.
    # Packed (`DeviceRecord.packed`): out of the garbage collector's sight.
    _records: dict[str, PackedRecord] = field(default_factory=dict, init=False, repr=False)
    _active: tuple[int, Policy] | None = field(default=None, init=False, repr=False)
    _ring: tuple[tuple[int, int], Keyring] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def of(cls, stores: Stores, locator: Locator, settings: Settings) -> CheckinService:
        return cls(
            stores.db,
            stores.devices,
            stores.checkins,
            stores.audit,
            stores.policies,
            stores.keys,
            locator,
            settings,
            TokenBuckets(Rate(settings.device_rate_per_hour, settings.device_burst)),
        )

    @property
    def _replay_horizon_ms(self) -> int:
        """How far back a copy of an acceptable check-in can have been recorded: two clock
        windows, and an hour for clocks stepped back or nodes a little apart."""
        return (2 * self.settings.clock_skew_s + REPLAY_MARGIN_S) * 1000

    def _policy(self, tx: Transaction, latest: int | None = None) -> tuple[int, Policy]:
        """The mark of the latest activation and the active policy, re-read only when a new
        activation has been recorded (checked in the check-in's own transaction or snapshot, so
        an activation applies from the next check-in on). `latest`: the mark, read already in
        `tx`."""
        if latest is None:
            latest = self.policies.latest_activation(tx)
        cached = self._active
        if cached is not None and cached[0] == latest:
            return cached
        active = self.policies.active(tx)
        policy = (
            NO_POLICY
            if active is None
            else parse_policy(
                active.policy.document, f"{active.policy.policy_id}@{active.policy.version}"
            )
        )
        self._active = (latest, policy)
        return self._active

    def _keyring(self, generation: tuple[int, int] | None, now: datetime) -> Keyring:
        """The signing keys, re-read when the store's keyring has changed since they were
        read (`generation`, read in the check-in's transaction; None: read them now). A
        rotation, from this process or any other, signs every verdict from then on."""
        cached = self._ring
        if cached is None or generation is None or cached[0] != generation:
            # The mark first: should a rotation land in between, the keyring read is newer
            # than its mark, and the next check-in reads it once more (never the reverse).
            with self.db.read() as tx:
                current = self.keys.generation(tx)
            ring = self.keys.keyring(now)  # creates the first key if there is none
            cached = self._ring = (current, ring)
        return cached[1]

    def check_in(self, token: str | bytes, *, peer_ip: str | None, now: datetime) -> dict[str, Any]:
        """Process one device check-in; returns the response body (token + mirrored claims)."""
        out = self.check_in_many([CheckinCall(token, peer_ip, now)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def check_in_many(self, calls: Sequence[CheckinCall]) -> list[dict[str, Any] | Exception]:
        """Process several check-ins with one write transaction (group commit); one outcome
        per call, in order: its response body, or the error it alone ran into.

        Each check-in is judged exactly as if it came alone and in this order: a refused one
        (unknown device, bad signature, replay, ...) writes nothing and does not affect the
        others. Should the shared transaction fail (a database error), every check-in of the
        group is retried in a transaction of its own, so one cannot sink the rest.

        The three steps of `begin`, `CheckinGroup.store` and `CheckinGroup.answer` in a row;
        the check-in queue runs them apart, so that one group is judged while the one before
        it is stored."""
        group = self.begin(calls)
        group.store()
        return group.answer()

    def begin(self, calls: Sequence[CheckinCall]) -> CheckinGroup:
        """Steps 1-3 for a group, and step 4's judging on a snapshot: no write, no lock. Its
        `store` must follow in the order groups began (a group judged on a snapshot is stored
        only if nothing it read has moved since, else judged again under its rows' locks)."""
        outcomes: dict[int, dict[str, Any] | Exception] = {}
        opened: dict[int, OpenedCheckin] = {}
        for i, call in enumerate(calls):
            try:
                opened[i] = open_checkin(call.token)  # parsed once: the kid, then the signature
            except Exception as exc:
                outcomes[i] = exc
        known, failure = self._records_of(_kid(o) for o in opened.values())
        verified: list[tuple[int, DeviceRecord, CheckinRequest, Signals]] = []
        for i, checkin in opened.items():
            try:
                verified.append((i, *self._verify(calls[i], checkin, known, failure)))
            except Exception as exc:
                outcomes[i] = exc
        places = self._locate([signals for *_, signals in verified])
        ready: list[tuple[int, _Prepared]] = []
        for (i, record, request, signals), where in zip(verified, places, strict=True):
            if isinstance(where, Exception):
                outcomes[i] = where
                continue
            now = calls[i].now
            ready.append(
                (i, _Prepared(record, request, where, signals.kinds(), now, signals.locale))
            )
        group = CheckinGroup(self, len(calls), outcomes, ready)
        if len(ready) > 1:
            try:
                group.ahead = self._plan([p for _, p in ready])
            except Exception as exc:  # the group's store meets it, as if met there
                group.ahead = exc
        return group

    def _locate(self, batch: list[Signals]) -> list[LocationEstimate | Exception]:
        """Step 3 for a group: where each device is, or the error its signals met. Located
        together, the group's GPS fixes and addresses are looked up in one vectorised call
        each (the same answers as one by one: tests/geo/test_locate.py); should that fail as
        a whole, each is located alone, so that one device's signals cannot sink the rest."""
        if len(batch) > 1:
            try:
                found: list[LocationEstimate | Exception] = list(self.locator.locate_each(batch))
                if len(found) != len(batch):
                    raise RuntimeError(f"{len(found)} places for {len(batch)} check-ins")
                return found
            except Exception:
                log.exception("locating a group of %d check-ins failed; one by one", len(batch))
        out: list[LocationEstimate | Exception] = []
        for signals in batch:
            try:
                out.append(self.locator.locate(signals))
            except Exception as exc:
                out.append(exc)
        return out

    def _records_of(self, kids: Iterable[str]) -> tuple[dict[str, DeviceRecord], Exception | None]:
        """The records of the devices these kids name, from the cache and, for the rest, from
        one read of the registry for the whole group (a fleet of millions checking in daily
        misses the cache almost every time). Also the error that read met, if any: the
        check-ins it was for fail with it, and the others go on."""
        known: dict[str, DeviceRecord] = {}
        missing: list[str] = []
        for kid in kids:
            if not kid:
                continue
            packed = self._records.get(kid)
            if packed is None:
                missing.append(kid)
            else:
                known[kid] = unpack_record_unchecked(packed)
        if not missing:
            return known, None
        try:
            found = self.devices.records(missing)
        except Exception as exc:
            return known, exc
        with self._lock:
            if len(self._records) + len(found) > RECORD_CACHE:
                self._records.clear()
            self._records.update((kid, record.packed()) for kid, record in found.items())
        known.update(found)
        return known, None

    def _verify(
        self,
        call: CheckinCall,
        opened: OpenedCheckin,
        known: dict[str, DeviceRecord],
        failure: Exception | None,
    ) -> tuple[DeviceRecord, CheckinRequest, Signals]:
        """Steps 1-2 and the signals' validation: the device, its signature and payload, the
        signals it sent (with the peer's address unless it sent one). No state touched."""
        kid = _kid(opened)
        record = known.get(kid)
        if record is None:
            if failure is not None and kid:
                raise failure
            raise UnknownDevice("no registered device has this kid (device id or IMEI)")
        request = opened.verify(
            record.public_key, now=call.now, window_s=self.settings.clock_skew_s
        )
        raw = dict(request.signals)
        if "ip" not in raw and call.peer_ip is not None:
            raw["ip"] = call.peer_ip
        return record, request, parse_signals(raw)

    def _record_all(
        self,
        batch: list[_Prepared],
        *,
        again: bool = True,
        ahead: _Plan | Exception | None = None,
    ) -> tuple[list[Verdict | Exception], tuple[int, int] | None]:
        """Step 4 for a group: judged on a snapshot (`ahead`, or now if not given) and stored
        if nothing it read has moved meanwhile (`_store_plan`), else (and a group of one at
        once) judged under its rows' locks; once more at once if it lost a conflict (`again`),
        then each check-in alone if that fails. `ahead` may be the error judging it ahead met,
        which is then this attempt's. Also returns the keyring's generation as the transaction
        saw it (None: unknown)."""
        spent: list[str] = []  # devices whose rate-limit token this attempt took
        try:
            if isinstance(ahead, Exception):
                raise ahead
            # A lone check-in keeps nobody waiting for long: judged under its row's lock, it
            # saves the snapshot's statements (on PostgreSQL, round trips).
            plan = ahead if ahead is not None or len(batch) < 2 else self._plan(batch)
            if plan is not None:
                spent = plan.spent
                if plan.encoded is None:  # every check-in refused: nothing to write
                    return plan.judged.out, None
                stored = self._store_plan(plan)
                if stored is not None:
                    return stored
            # Pipelined (PostgreSQL): BEGIN and the reads, the writes with the audit's shard,
            # its entries, COMMIT: four round trips (test_pipelined.py counts them).
            with self.db.write(pipelined=True) as tx:
                keys = self.keys.generation_later(tx)
                latest = self.policies.latest_activation_later(tx)
                states = self.devices.states_later(tx, [p.record.id for p in batch], lock=True)
                seen = self._seen(tx, batch)
                policy = self._policy(tx, latest.get())[1]
                judged = self._judge(batch, policy, states.get(), seen.get(), spent)
                self._write(tx, judged)
                return judged.out, keys.get()
        except Exception as exc:
            # Nothing was recorded: the allowance goes back (a device retrying through an
            # outage or a full disk must meet 503, not 429, and be charged once when it lands).
            self._refund(spent)
            if again and isinstance(exc, StoreConflict):
                # A deadlock's victim or a serialisation failure (PostgreSQL): nothing was
                # kept, and the same work usually succeeds at once; the device need not wait.
                log.info("a group of %d check-ins lost a conflict; running it again", len(batch))
                return self._record_all(batch, again=False)
            if len(batch) == 1:
                return [exc], None
            # Nothing of the group was recorded (it was one transaction): each on its own now.
            log.warning(
                "a group of %d check-ins failed (%s: %.200s); retrying one by one",
                len(batch),
                type(exc).__name__,
                exc,
            )
        out: list[Verdict | Exception] = []
        generation: tuple[int, int] | None = None
        for prepared in batch:
            decided, generation = self._record_all([prepared], again=again)
            out.extend(decided)
        return out, generation

    def _refund(self, spent: list[str]) -> None:
        if self.limiter is not None:
            for device_id in spent:
                self.limiter.refund(device_id)
        spent.clear()

    def _seen(self, tx: Transaction, batch: list[_Prepared]) -> Pending[set[tuple[str, str]]]:
        """Which of the group's (device, nonce) pairs are recorded already (sent, not waited
        for, in a pipelined transaction).

        A copy of a check-in that passes the clock check now was recorded at most two clock
        windows ago (its iat is within one window of both times): older rows cannot hold its
        nonce, and on PostgreSQL the months before are not read."""
        since = epoch_ms(min(p.now for p in batch)) - self._replay_horizon_ms
        pairs = [(p.record.id, p.request.nonce) for p in batch]
        return self.checkins.seen_later(tx, pairs, since=since)

    def _plan(self, batch: list[_Prepared]) -> _Plan:
        """Step 4's judging done before the write transaction, on a snapshot (states and
        their versions, used nonces, the active policy): the group's rows and audit entries
        worked out, for the write transaction only to store them (`_store_plan`), each state
        over the version it was judged on. An error (the snapshot could not be read) is
        raised with the allowance it took given back.

        Why it is sound: a refusal judged on the snapshot holds later too (a counter only grows,
        a recorded nonce stays recorded, a deleted device stays gone), and an acceptance is
        stored only if its device's state version, which every change of the device moves, is
        still the one it was judged on. On SQLite, with one writer for the whole database, this
        keeps the judging out of the writer's lock; and the next group can be judged while this
        one is stored (bench/README.md, "Judged ahead")."""
        spent: list[str] = []
        try:
            # Pipelined (PostgreSQL): BEGIN, the three reads, then COMMIT: two round trips.
            with self.db.read(pipelined=True) as tx:
                latest = self.policies.latest_activation_later(tx)
                read = self.devices.states_later(tx, [p.record.id for p in batch], lock=False)
                used = self._seen(tx, batch)
                mark, policy = self._policy(tx, latest.get())
                states, seen = read.get(), used.get()
            judged = self._judge(batch, policy, states, seen, spent)
            if not judged.rows:  # every check-in refused: nothing to write
                return _Plan(judged, None, mark, spent)
            encoded = encode_states(judged.saves)
            entries = prepare_entries(judged.entries)
        except BaseException:
            self._refund(spent)
            raise
        return _Plan(replace(judged, entries=entries), encoded, mark, spent)

    def _store_plan(
        self, plan: _Plan
    ) -> tuple[list[Verdict | Exception], tuple[int, int] | None] | None:
        """Store what `plan` judged, in one write transaction that first checks that no
        policy was activated since; None when something it read has moved by then (a
        check-in of one of its devices on another node or in the group before, an operator's
        action, a new policy): nothing is kept, and the caller judges the group again under
        its rows' locks."""
        try:
            # Pipelined (PostgreSQL): BEGIN, the checks and the writes with the audit's shard,
            # then the audit's entries, then COMMIT alone: three round trips. A new policy
            # found then rolls the writes back.
            with self.db.write(pipelined=True) as tx:
                keys = self.keys.generation_later(tx)
                latest = self.policies.latest_activation_later(tx)
                self._write(tx, plan.judged, plan.encoded)
                if latest.get() != plan.mark:
                    raise _Overtaken
            return plan.judged.out, keys.get()
        except (_Overtaken, StaleState):
            self._refund(plan.spent)  # judged again under the locks, where it is taken again
            return None

    def _judge(
        self,
        batch: list[_Prepared],
        policy: Policy,
        states: dict[str, tuple[DeviceState, int]],
        seen: set[tuple[str, str]],
        spent: list[str],
    ) -> _Judged:
        """Decide `batch` in order, as if one after the other, from these states (with their
        versions) and used nonces: an outcome per check-in, and what recording it writes."""
        current = dict(states)
        seen = set(seen)
        out: list[Verdict | Exception] = []
        rows: list[CheckinRow] = []
        entries: list[NewEntry | PreparedEntry] = []
        for p in batch:
            device_id, request, location = p.record.id, p.request, p.location
            found = current.get(device_id)
            if found is None:  # deleted meanwhile
                out.append(UnknownDevice("the device is no longer registered"))
                continue
            state, version = found
            # The nonce before the counter (docs/protocol.md, "Checks run in this order"): an
            # exact replay is named a replay, not a stale counter.
            if (device_id, request.nonce) in seen:
                out.append(ReplayedNonce("this nonce was already used by this device"))
                continue
            if not state.accepts_counter(request.counter):
                out.append(
                    StaleCounter(
                        f"counter {request.counter} is not above the last accepted"
                        f" ({state.counter})"
                    )
                )
                continue
            # Only a check-in that would be accepted spends the device's allowance: nobody
            # without its key can make it wait.
            wait = self.limiter.take(device_id, p.now.timestamp()) if self.limiter else None
            if wait is not None:
                out.append(
                    RateLimited(f"this device checks in too often: try again in {wait} s", wait)
                )
                continue
            if self.limiter is not None:
                spent.append(device_id)
            try:
                verdict = self._decide(
                    device_id,
                    state,
                    p.record,
                    location,
                    policy,
                    p.now,
                    p.locale or state.owner_language,
                )
                new_state = state.after_checkin(
                    location, verdict, at=p.now, counter=request.counter, policy=policy
                )
            except Exception as exc:  # this check-in's own failure; the group goes on
                out.append(exc)
                continue
            seen.add((device_id, request.nonce))
            current[device_id] = (new_state, version)
            out.append(verdict)
            rows.append(
                CheckinRow(
                    device_id=device_id,
                    at=p.now,
                    counter=request.counter,
                    nonce=request.nonce,
                    country=location.country,
                    subdivision=location.subdivision,
                    confidence=location.confidence,
                    subdivision_candidates=location.subdivisions,
                    flags=location.flags,
                    signal_kinds=p.kinds,
                    verdict=verdict.action.value,
                    reasons=verdict.reasons,
                    policy_id=verdict.policy_id,
                    policy_version=verdict.policy_version,
                )
            )
            entries.append(
                NewEntry(
                    at=epoch_ms(p.now),
                    actor=f"device:{device_id}",
                    action="checkin.verdict",
                    subject=device_id,
                    reason=",".join(verdict.reasons),
                    details={
                        "verdict": verdict.action.value,
                        # The verdict before this one: a change of it is a webhook event.
                        "previous": state.last_verdict.value if state.last_verdict else None,
                        "country": location.country,
                        "subdivision": location.subdivision,
                        **(
                            {"subdivision_candidates": list(location.subdivisions)}
                            if location.subdivisions
                            else {}
                        ),
                        "confidence": location.confidence,
                        "flags": list(location.flags),
                        "signals": list(p.kinds),
                        "policy": f"{verdict.policy_id}@{verdict.policy_version}",
                        "counter": request.counter,
                    },
                )
            )
        # In id order: rows written without a prior lock (judged ahead) are then locked in
        # the same order by every node, so two groups sharing devices cannot deadlock.
        saves = sorted(
            (device_id, states[device_id][1], state)
            for device_id, (state, _) in current.items()
            if state is not states[device_id][0]
        )
        return _Judged(out, rows, entries, saves)

    def _write(
        self, tx: Transaction, judged: _Judged, encoded: EncodedStates | None = None
    ) -> None:
        """Store what `judged` accepted in `tx`: states, each over the version it was judged
        on (StaleState if one moved: at once where the store answers at once, else once the
        audit's first read has brought the answers in), then check-in rows, whose UNIQUE
        (device_id, nonce) is the last word on replays, then the audit entries. All roll back
        together."""
        if not judged.rows:
            return
        try:
            saved = self.devices.save_states_later(
                tx, encoded if encoded is not None else judged.saves
            )
            self.checkins.record_many_later(tx, judged.rows)
            # Pipelined, the answers to the statements above come with the audit's first read.
            self.audit.append_many(tx, judged.entries)
            saved.get()
        except Exception as exc:
            if isinstance(exc, DuplicateNonce) or self.checkins.is_duplicate_nonce(exc):
                raise ReplayedNonce("this nonce was already used by this device") from None
            raise

    def _answer(
        self, p: _Prepared, verdict: Verdict, keys: tuple[int, int] | None
    ) -> dict[str, Any]:
        """Step 5: the signed verdict and its claims mirrored."""
        token, claims = issue_verdict(
            verdict,
            issuer=self.settings.service_id,
            device_id=p.record.id,
            country=p.location.country,
            subdivision=p.location.subdivision,
            nonce=p.request.nonce,
            counter=p.request.counter,
            issued_at=p.now,
            keyring=self._keyring(keys, p.now),
            max_lifetime=MAX_TOKEN_LIFETIME,
        )
        return verdict_response(token, claims)

    def _decide(
        self,
        device_id: str,
        state: DeviceState,
        record: DeviceRecord,
        location: LocationEstimate,
        policy: Policy,
        now: datetime,
        locale: str | None = None,
    ) -> Verdict:
        """The policy's verdict, with the operator's exemption and manual lock applied; its
        message in the language `locale` (the device's) asks for."""
        if state.exemption is not None:
            policy = replace(
                policy,
                exemptions=(
                    *policy.exemptions,
                    Exemption(
                        f"operator exemption: {state.exemption.reason}",
                        device=device_id,
                        until=state.exemption.until,
                    ),
                ),
            )
        facts = state.to_facts(record)
        if state.may_activate(location, now, policy.min_lock_confidence):
            # This check-in is the first activation: judge it as one (a phone sold elsewhere
            # and switched on for the first time in a restricted place is what a gray-market
            # block exists to stop). Which check-in that is: DeviceState.may_activate.
            country, subdivision = state.activation_place(location)
            first = state.first_seen_at or now
            facts = replace(
                facts,
                first_country=country,
                first_subdivision=subdivision,
                first_seen=first.astimezone(UTC).date(),
            )
        verdict = decide(facts, location, state.history(), policy, now, locale=locale)
        exempted = any(r.startswith("exemption.") for r in verdict.reasons)
        if (
            exempted
            and state.exemption is not None
            and state.exemption.active(now.astimezone(UTC).date())
        ):
            # The device honours it offline too, until its end (protocol.md, "exemption").
            verdict = replace(verdict, exempt=True, exempt_until=state.exemption.until)
        if exempted and state.exemption is not None and state.exemption.campaign:
            verdict = replace(
                verdict,
                reasons=("campaign.exempt", *verdict.reasons),
                explanation=f"Exempted by campaign {state.exemption.campaign}. "
                + verdict.explanation,
            )
        if state.manual_lock is not None and not exempted:
            # The lock's own words (a campaign's may be in several languages; an operator's
            # are shown as written), else the general notice, in the owner's language.
            own = state.manual_lock.message
            words = Message.from_text(own) if own else MANUAL_LOCK_NOTICE
            shown = words.choose(locale, languages_at(location))
            by = state.manual_lock.campaign  # the lock slot's holder: a campaign or an operator
            verdict = replace(
                verdict,
                action=Action.LOCK,
                reasons=("campaign.lock" if by else "operator.lock", *verdict.reasons),
                explanation=(f"Locked by campaign {by}" if by else "Locked by an operator")
                + f" ({state.manual_lock.actor}): {state.manual_lock.reason}. "
                + verdict.explanation,
                # The lock's own words, never the policy's region message (docs/policy.md,
                # "Manual actions").
                message=shown.text,
                language=shown.language,
                contact=state.manual_lock.contact or policy.contact,
            )
        answer = state.appeal_answer
        if answer is not None and verdict.action is Action.LOCK:
            # The owner's appeal was denied: say so, with support's reason and contact, in
            # support's own words (docs/appeals.md).
            verdict = replace(
                verdict,
                message=f"Your appeal {answer.appeal} was denied: {answer.reason}",
                language="",
                contact=answer.contact or verdict.contact,
            )
        return verdict


@dataclass
class CheckinGroup:
    """A group of check-ins begun (`CheckinService.begin`): verified, located and judged on a
    snapshot; `store` records it, then `answer` signs the verdicts."""

    service: CheckinService
    size: int
    outcomes: dict[int, dict[str, Any] | Exception]
    ready: list[tuple[int, _Prepared]]
    ahead: _Plan | Exception | None = None  # judged on a snapshot by `begin`, or its error
    _decided: list[Verdict | Exception] | None = field(default=None, repr=False)
    _keys: tuple[int, int] | None = field(default=None, repr=False)

    def store(self) -> None:
        """Step 4's write: one transaction for the group (see `CheckinService._record_all`)."""
        if self.ready:
            batch = [p for _, p in self.ready]
            self._decided, self._keys = self.service._record_all(batch, ahead=self.ahead)
        else:
            self._decided = []

    def answer(self) -> list[dict[str, Any] | Exception]:
        """Step 5: one outcome per call, in order (after `store`)."""
        assert self._decided is not None, "store the group first"
        outcomes = dict(self.outcomes)
        for (i, prepared), verdict in zip(self.ready, self._decided, strict=True):
            if isinstance(verdict, Exception):
                outcomes[i] = verdict
                continue
            try:
                outcomes[i] = self.service._answer(prepared, verdict, self._keys)
            except Exception as exc:  # recorded, but no token: the device checks in again
                outcomes[i] = exc
        return [outcomes[i] for i in range(self.size)]
