"""The device registry's values: IMEIs, keys, sales regions, ids, records and state transitions."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import assume, example, given
from hypothesis import strategies as st

from regionlock.domain import device as dev
from regionlock.domain.decision import Verdict, decide
from regionlock.domain.device import (
    DeviceRecord,
    DeviceState,
    Imei,
    ManualExemption,
    ManualLock,
    device_id,
    encode_public_key,
    parse_imei,
    parse_public_key,
    parse_sales_region,
)
from regionlock.domain.errors import InvalidInput
from regionlock.domain.location import LocationEstimate
from regionlock.domain.policy import (
    Action,
    DeviceFacts,
    Exemption,
    Jurisdiction,
    Policy,
    Presence,
    Restriction,
)

# Real-looking IMEIs; check digits computed by hand with the Luhn rule.
IMEI_A = "490154203237518"
IMEI_B = "352099001761481"
IMEI_C = "353325091234561"
ID_KEY = b"k" * 32
COUNTRIES = frozenset({"DE", "FR", "GB", "GR", "IR", "US"})


def luhn_ok(number: str) -> bool:
    """An independent Luhn check over a whole number, written the other way round."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_key(seed: int) -> bytes:
    private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return private.public_key().public_bytes_raw()


# --- IMEI ---


def test_the_example_imeis_pass_the_independent_check() -> None:
    for number in (IMEI_A, IMEI_B, IMEI_C):
        assert luhn_ok(number)


def test_parse_imei_keeps_digits_and_tac() -> None:
    imei = parse_imei(IMEI_A)
    assert imei.digits == IMEI_A
    assert imei.tac == "49015420"
    assert imei.serial_number == "323751"
    assert str(imei) == IMEI_A


@pytest.mark.parametrize(
    "text",
    ["49-015420-323751-8", "4901 5420 3237 518", "  490154203237518\n", "49015420-323751 8"],
)
def test_parse_imei_accepts_spaces_and_dashes(text: str) -> None:
    assert parse_imei(text) == Imei(IMEI_A)


def test_a_wrong_check_digit_names_the_right_one() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_imei("490154203237519")
    assert err.value.message == "IMEI 490154203237519: check digit should be 8"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "IMEI is empty"),
        ("49015420323751O", "'O' is not allowed"),
        ("490.154.203.237.518", "'.' is not allowed"),
        ("4901\t54203237518", "'\\t' is not allowed"),
        ("٤٩٠١٥٤٢٠٣٢٣٧٥١٨", "is not allowed"),  # Arabic-Indic digits are not ASCII digits
        ("-490154203237518", "must start and end with a digit"),
        ("49015420323751", "is the check digit, 8, missing?"),
        ("4901542032375180", "IMEISV"),
        ("4901542032", "10 digits, expected 15"),
        ("000000000000000", "all-zero placeholder"),
    ],
)
def test_parse_imei_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_imei(text)
    assert fragment in err.value.message


def test_error_messages_do_not_echo_a_huge_field() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_imei("x" * 100_000)
    assert len(err.value.message) < 200


def test_imei_constructor_validates_too() -> None:
    with pytest.raises(InvalidInput, match="check digit should be 8"):
        Imei("490154203237510")
    with pytest.raises(InvalidInput, match="expected 15 digits"):
        Imei("49-015420-323751-8")


payloads = st.text(alphabet="0123456789", min_size=14, max_size=14)


@given(payloads)
def test_any_payload_with_its_check_digit_is_valid(payload: str) -> None:
    assume(payload != "0" * 14)  # the all-zero placeholder is refused on purpose
    (check,) = [d for d in "0123456789" if luhn_ok(payload + d)]
    assert parse_imei(payload + check).digits == payload + check
    assert dev.luhn_check_digit(payload) == int(check)


@given(payloads, st.integers(0, 14), st.integers(1, 9))
def test_changing_any_single_digit_breaks_the_check(payload: str, pos: int, delta: int) -> None:
    (check,) = [d for d in "0123456789" if luhn_ok(payload + d)]
    digits = list(payload + check)
    digits[pos] = str((int(digits[pos]) + delta) % 10)
    with pytest.raises(InvalidInput, match="check digit should be"):
        parse_imei("".join(digits))


# --- public keys ---


def test_parse_public_key_round_trips() -> None:
    raw = public_key(7)
    assert parse_public_key(b64url(raw)) == raw
    assert encode_public_key(raw) == b64url(raw)
    assert parse_public_key(f"  {b64url(raw)}\n") == raw


def test_keys_with_url_safe_characters_parse() -> None:
    raw = b"\xfb" * 32  # encodes to '-' and '_' in base64url, '+' and '/' in base64
    text = b64url(raw)
    assert "-" in text and "_" in text
    assert parse_public_key(text) == raw


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "public key is empty"),
        (b64url(public_key(1)) + "=", "remove the '=' padding"),
        (base64.b64encode(b"\xfb" * 32).decode().rstrip("="), "standard base64"),
        (b64url(public_key(1))[:-1] + "!", "'!' at position 43 is not a base64url character"),
        (b64url(public_key(1)[:31]), "42 characters, expected 43"),
        (b64url(public_key(1) + b"\x00"), "encode 33 bytes"),
        (public_key(1).hex(), "looks like hex"),
        ("A" * 41, "cannot encode whole bytes"),
        ("A" * 43, "small order"),
    ],
)
def test_parse_public_key_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_public_key(text)
    assert fragment in err.value.message


def test_a_non_canonical_last_character_is_refused() -> None:
    text = b64url(public_key(2))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last of 43 characters carries 4 bits of key and 2 spare bits, which must be zero.
    spare = alphabet[alphabet.index(text[-1]) + 1]
    with pytest.raises(InvalidInput, match="unused bits"):
        parse_public_key(text[:-1] + spare)


def test_every_refused_small_order_key_really_admits_forgeries() -> None:
    # The reason for the blocklist, checked against OpenSSL: under a small-order key, the
    # signature (R = identity, S = 0) verifies for some messages. The service verifies with
    # libsodium, which refuses these keys itself (tests/signing/test_jws.py); the blocklist
    # keeps them out of the registry whatever library a deployment verifies with.
    identity = (1).to_bytes(32, "little")
    refused = 0
    for y in dev._SMALL_ORDER_Y:
        for sign in (0x00, 0x80):
            raw = y[:-1] + bytes([y[-1] | sign])
            with pytest.raises(InvalidInput, match="small order"):
                parse_public_key(b64url(raw))
            key = Ed25519PublicKey.from_public_bytes(raw)
            forged = 0
            for i in range(64):
                try:
                    key.verify(identity + bytes(32), f"message {i}".encode())
                    forged += 1
                except InvalidSignature:
                    pass
            assert forged > 0, raw.hex()
            refused += 1
    assert refused == 14


def test_the_same_forgery_fails_under_a_real_key() -> None:
    key = Ed25519PublicKey.from_public_bytes(public_key(3))
    identity = (1).to_bytes(32, "little")
    for i in range(64):
        with pytest.raises(InvalidSignature):
            key.verify(identity + bytes(32), f"message {i}".encode())


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_round_trip_unless_small_order(raw: bytes) -> None:
    assume(dev._masked_y(raw) not in dev._SMALL_ORDER_Y)
    assert parse_public_key(encode_public_key(raw)) == raw


# --- sales regions ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DE", "DE"),
        ("de", "DE"),
        (" fr ", "FR"),
        ("EU", "EU"),
        ("eea", "EEA"),
        ("GLOBAL", "GLOBAL"),
    ],
)
def test_parse_sales_region(text: str, expected: str) -> None:
    assert parse_sales_region(text, COUNTRIES) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "sales region is empty"),
        ("UK", "use GB"),
        ("EL", "use GR"),
        ("XX", "not a known ISO 3166-1 alpha-2 code"),
        ("IT", "not a known ISO 3166-1 alpha-2 code"),  # not in the caller's set
        ("DEU", "alpha-3 codes are not accepted"),
        ("Europe", "one of EEA, EU, GLOBAL"),
        ("US-CA", "one of EEA, EU, GLOBAL"),
    ],
)
def test_parse_sales_region_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_sales_region(text, COUNTRIES)
    assert fragment in err.value.message


# --- ids and records ---


def record(*imeis: str, **changes: object) -> DeviceRecord:
    base = DeviceRecord.create(
        imeis=tuple(Imei(i) for i in (imeis or (IMEI_A,))),
        id_key=ID_KEY,
        serial="SN-0001",
        model="X1",
        sales_region="EU",
        distributor="Acme GmbH",
        batch="B7",
        public_key=public_key(1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_device_ids_are_stable_opaque_and_keyed() -> None:
    first = device_id(Imei(IMEI_A), ID_KEY)
    assert re.fullmatch(r"dev_[a-z2-7]{24}", first)
    assert device_id(Imei(IMEI_A), ID_KEY) == first
    assert device_id(Imei(IMEI_B), ID_KEY) != first
    assert device_id(Imei(IMEI_A), b"another key, 32 bytes long......") != first


def test_device_id_derivation_is_pinned() -> None:
    # Ids are stored and handed to operators: changing the derivation would orphan every device.
    mac = hmac.digest(ID_KEY, b"regionlock/device-id/v1\x00" + IMEI_A.encode(), "sha256")
    expected = "dev_" + base64.b32encode(mac[:15]).decode().lower()
    assert expected == "dev_5g7ucmjtmmx5wnuaywiswu57"
    assert device_id(Imei(IMEI_A), ID_KEY) == expected


def test_a_short_id_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        device_id(Imei(IMEI_A), b"short")


def test_records_derive_their_id_from_the_first_imei() -> None:
    rec = record(IMEI_A, IMEI_B)
    assert rec.id == device_id(Imei(IMEI_A), ID_KEY)
    assert rec.tac == "49015420"
    assert record(IMEI_A, IMEI_B) == rec  # re-import: same values, same id
    assert record(IMEI_B, IMEI_A).id != rec.id


def test_fingerprint_tells_same_data_from_different_data() -> None:
    rec = record()
    assert record().fingerprint() == rec.fingerprint()
    variants = [
        record(IMEI_A, IMEI_B),
        replace(rec, serial="SN-0002"),
        replace(rec, model="X2"),
        replace(rec, sku="X1-128"),
        replace(rec, sales_region="DE"),
        replace(rec, distributor="Other"),
        replace(rec, batch="B8"),
        replace(rec, manufactured=date(2026, 1, 5)),
        replace(rec, shipped=date(2026, 2, 5)),
        replace(rec, public_key=public_key(2)),
    ]
    prints = {v.fingerprint() for v in variants} | {rec.fingerprint()}
    assert len(prints) == len(variants) + 1


def test_record_invariants() -> None:
    with pytest.raises(InvalidInput, match="same IMEI twice"):
        record(IMEI_A, IMEI_A)
    with pytest.raises(InvalidInput, match="at least one IMEI"):
        replace(record(), imeis=())
    with pytest.raises(InvalidInput, match="31 bytes"):
        replace(record(), public_key=b"\x01" * 31)


# --- state transitions ---

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IR_LOCK = Restriction(
    "ir",
    (Jurisdiction("IR", "Iran", date(2020, 1, 1)),),
    Action.LOCK,
    presence=Presence(min_days=2, window_days=14, first_activation_locks=True),
    warn_days=2,
)
FR_WARN = Restriction("fr", (Jurisdiction("FR", "France", date(2020, 1, 1)),), Action.WARN)
POLICY = Policy("p", "1", "", (IR_LOCK, FR_WARN))


def loc(
    country: str | None, sub: str | None = None, conf: float = 0.9, flags: tuple[str, ...] = ()
) -> LocationEstimate:
    return LocationEstimate(country, sub, conf if country else 0.0, (), flags)


def check_in(
    state: DeviceState,
    where: LocationEstimate,
    at: datetime,
    counter: int | None = None,
    policy: Policy = POLICY,
    retention_days: int = dev.PRESENCE_RETENTION_DAYS,
) -> tuple[DeviceState, Verdict]:
    rec = record()
    verdict = decide(state.to_facts(rec), where, state.history(), policy, at)
    n = counter if counter is not None else (state.counter or 0) + 1
    new = state.after_checkin(
        where, verdict, at=at, counter=n, policy=policy, retention_days=retention_days
    )
    return new, verdict


def test_first_located_checkin_is_the_first_activation() -> None:
    state, _ = check_in(DeviceState(), loc("DE", "DE-BE"), T0)
    assert (state.first_country, state.first_subdivision, state.first_seen_at) == (
        "DE",
        "DE-BE",
        T0,
    )
    later, _ = check_in(state, loc("FR", "FR-IDF"), T0 + timedelta(days=1))
    assert later.first_country == "DE"
    assert later.first_seen_at == T0
    assert (later.last_country, later.last_subdivision) == ("FR", "FR-IDF")
    assert later.last_verdict is Action.WARN  # the FR warn rule


def test_to_facts_carries_the_record_and_first_activation_day_in_utc() -> None:
    evening_in_new_york = datetime(2026, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    state, _ = check_in(DeviceState(), loc("US"), evening_in_new_york)
    facts = state.to_facts(record(IMEI_A, IMEI_B))
    assert facts.first_seen == date(2026, 3, 2)
    assert facts.first_country == "US"
    assert facts.imeis == (IMEI_A, IMEI_B)
    assert (facts.model, facts.sales_region, facts.batch) == ("X1", "EU", "B7")
    assert facts.id == record().id


@pytest.mark.parametrize(
    "where",
    [
        loc("IR", "IR-23", 0.6, ("no_presence_evidence",)),  # named by IP or SIM only
        loc("IR", "IR-23", 0.3, ("low_confidence",)),
        loc(None),
    ],
)
def test_weak_evidence_records_no_presence_and_no_first_activation(
    where: LocationEstimate,
) -> None:
    state, _ = check_in(DeviceState(), where, T0)
    assert state.presence == {}
    assert state.first_country is None
    assert state.last_country == where.country  # the last check-in is still recorded
    assert state.last_confidence == where.confidence
    assert state.counter == 1


def test_presence_accumulates_per_day_and_merges_codes() -> None:
    state = DeviceState()
    for day in range(3):
        state, _ = check_in(state, loc("DE", "DE-BE"), T0 + timedelta(days=day))
    state, _ = check_in(state, loc("DE", "DE-BY"), T0 + timedelta(days=2, hours=3))
    assert state.presence == {
        date(2026, 3, 2): frozenset({"DE", "DE-BE"}),
        date(2026, 3, 3): frozenset({"DE", "DE-BE"}),
        date(2026, 3, 4): frozenset({"DE", "DE-BE", "DE-BY"}),
    }
    assert state.history().days_in("DE", date(2026, 3, 4), 14) == 3
    assert state.history().days_in("DE-BY", date(2026, 3, 4), 14) == 1


def test_presence_is_trimmed_to_the_retention_window() -> None:
    state, _ = check_in(DeviceState(), loc("DE"), T0)
    kept, _ = check_in(state, loc("DE"), T0 + timedelta(days=29), retention_days=30)
    assert set(kept.presence) == {T0.date(), T0.date() + timedelta(days=29)}
    dropped, _ = check_in(state, loc("DE"), T0 + timedelta(days=30), retention_days=30)
    assert set(dropped.presence) == {T0.date() + timedelta(days=30)}
    # Trimming happens on every check-in, even one that adds no presence.
    quiet, _ = check_in(state, loc(None), T0 + timedelta(days=30), retention_days=30)
    assert quiet.presence == {}


def test_retention_covers_the_policys_longest_window() -> None:
    long_window = replace(IR_LOCK, presence=Presence(min_days=2, window_days=60))
    policy = Policy("p", "2", "", (long_window,))
    state, _ = check_in(DeviceState(), loc("DE"), T0, policy=policy)
    later, _ = check_in(state, loc("DE"), T0 + timedelta(days=45), policy=policy, retention_days=30)
    assert T0.date() in later.presence


def test_warned_since_starts_the_escalation_clock_then_locks() -> None:
    # Day 0 is traveller grace and activates the device in Iran; from then on presence is
    # established (first activation), and only the two days of warnings hold the lock back.
    state = DeviceState()
    verdicts = []
    for day in range(4):
        state, verdict = check_in(state, loc("IR", "IR-23"), T0 + timedelta(days=day))
        verdicts.append(verdict.action)
        assert state.warned_since == {"ir": T0.date()}
    assert verdicts == [Action.WARN, Action.WARN, Action.LOCK, Action.LOCK]


def test_a_lock_rule_held_back_by_grace_starts_the_clock() -> None:
    state, _ = check_in(DeviceState(), loc("DE"), T0)
    state, verdict = check_in(state, loc("IR", "IR-23"), T0 + timedelta(days=1))
    assert verdict.action is Action.WARN
    assert "presence.grace" in verdict.reasons
    assert state.warned_since == {"ir": T0.date() + timedelta(days=1)}


def test_warn_rules_and_allows_start_no_clock() -> None:
    state, verdict = check_in(DeviceState(), loc("FR"), T0)
    assert verdict.action is Action.WARN and verdict.rule == "fr"
    state, verdict = check_in(state, loc("DE"), T0 + timedelta(days=1))
    assert verdict.action is Action.ALLOW
    assert state.warned_since == {}


def test_guards_on_counter_time_and_policy() -> None:
    state, verdict = check_in(DeviceState(), loc("DE"), T0, counter=5)
    assert state.accepts_counter(6) and not state.accepts_counter(5)
    with pytest.raises(ValueError, match="not above the last accepted 5"):
        state.after_checkin(loc("DE"), verdict, at=T0, counter=5, policy=POLICY)
    with pytest.raises(ValueError, match="timezone-aware"):
        state.after_checkin(
            loc("DE"), verdict, at=T0.replace(tzinfo=None), counter=6, policy=POLICY
        )
    with pytest.raises(ValueError, match="another policy"):
        state.after_checkin(
            loc("DE"), verdict, at=T0, counter=6, policy=replace(POLICY, version="2")
        )


def test_operator_settings_survive_a_checkin_and_state_is_read_only() -> None:
    lock = ManualLock("stolen", "ops@example.com", T0)
    exemption = ManualExemption("field test", "ops@example.com", until=date(2026, 4, 1))
    state = DeviceState(manual_lock=lock, exemption=exemption)
    after, _ = check_in(state, loc("DE"), T0)
    assert (after.manual_lock, after.exemption) == (lock, exemption)
    assert exemption.active(date(2026, 3, 31)) and not exemption.active(date(2026, 4, 1))
    with pytest.raises(TypeError):
        after.presence[date(2026, 1, 1)] = frozenset({"DE"})  # type: ignore[index]


def test_leaving_ends_the_warning_clock_and_a_return_is_warned_afresh() -> None:
    state, _ = check_in(DeviceState(), loc("DE"), T0)
    state, _ = check_in(state, loc("IR", "IR-23"), T0 + timedelta(days=1))
    assert state.warned_since == {"ir": T0.date() + timedelta(days=1)}
    # Back home: no rule restricts the device, so the clock of that stay ends.
    state, verdict = check_in(state, loc("DE"), T0 + timedelta(days=2))
    assert verdict.reasons == ("policy.no_match",) and state.warned_since == {}
    # A later return starts a new clock rather than locking on the old one.
    state, verdict = check_in(state, loc("IR", "IR-23"), T0 + timedelta(days=60))
    assert verdict.action is Action.WARN
    assert state.warned_since == {"ir": T0.date() + timedelta(days=60)}


def test_a_first_confident_checkin_abroad_is_not_the_activation() -> None:
    """A traveller whose check-ins at home could not be placed (low confidence) must not have
    the first confident check-in abroad taken for its activation there."""
    home, _ = check_in(DeviceState(), loc("US", None, 0.45, ("low_confidence",)), T0)
    assert not home.is_new and home.first_seen_at == T0 and home.first_country is None
    abroad, _ = check_in(home, loc("IR", "IR-23"), T0 + timedelta(days=2))
    assert abroad.first_country is None  # unknown for good, never the restricted place
    assert abroad.first_seen_at == T0
    assert abroad.presence == {(T0 + timedelta(days=2)).date(): frozenset({"IR", "IR-23"})}
    assert DeviceState().is_new


def test_a_phone_set_up_over_wifi_is_activated_where_it_is_first_placed() -> None:
    """Found in review: with only the very first check-in counting, one check-in over Wi-Fi
    (an IP, no presence evidence) made the first activation unknown for good, and a gray-market
    phone escaped the first-activation lock."""
    wifi = loc("IR", None, 0.43, ("no_presence_evidence",))
    state, _ = check_in(DeviceState(), wifi, T0)
    assert state.first_country is None and state.early_countries == frozenset({"IR"})
    activated, _ = check_in(state, loc("IR", "IR-23"), T0 + timedelta(hours=20))
    assert (activated.first_country, activated.first_seen_at) == ("IR", T0)
    assert activated.early_countries == frozenset()
    # Too late (after ACTIVATION_WINDOW), or after another country was named: unknown.
    late, _ = check_in(state, loc("IR", "IR-23"), T0 + timedelta(hours=73))
    assert late.first_country is None
    nothing, _ = check_in(DeviceState(), loc(None), T0)
    assert nothing.early_countries == frozenset()
    assert check_in(nothing, loc("IR"), T0 + timedelta(hours=1))[0].first_country == "IR"


def test_a_first_activation_must_be_as_sure_as_a_lock() -> None:
    """Kept for good and locking at once, it needs the policy's lock confidence: a new phone
    near Kilis whose first fix came from a Syrian cell at 0.6 is not "activated in Syria"."""
    assert POLICY.min_lock_confidence > 0.6
    state, _ = check_in(DeviceState(), loc("IR", "IR-23", 0.6), T0)
    assert state.first_country is None and state.early_countries == frozenset({"IR"})
    assert state.presence  # still a day of presence (0.6 is not low confidence)
    sure, _ = check_in(state, loc("IR", "IR-23", 0.9), T0 + timedelta(hours=30))
    assert sure.first_country == "IR"


def test_a_late_activation_records_the_country_only() -> None:
    """Found in review: a Chisinau owner set up over Wi-Fi (only "MD" known) who drives into
    Transnistria the next day must not be "first activated" in MD-SN."""
    wifi = loc("MD", None, 0.41, ("low_confidence", "no_presence_evidence"))
    state, _ = check_in(DeviceState(), wifi, T0)
    later, _ = check_in(state, loc("MD", "MD-SN", 0.98), T0 + timedelta(hours=30))
    assert (later.first_country, later.first_subdivision) == ("MD", None)
    first, _ = check_in(DeviceState(), loc("MD", "MD-SN", 0.98), T0)
    assert (first.first_country, first.first_subdivision) == ("MD", "MD-SN")
    narrowed = LocationEstimate("UA", None, 0.9, (), (), subdivisions=("UA-43", "UA-40"))
    assert DeviceState().activation_place(narrowed) == ("UA", "UA-40|UA-43")


# Found by mutation testing (docs/test-quality.md): failed on mutants of domain/device.py and
# domain/policy.py that the tests above let through.


def test_the_policy_sees_every_scope_attribute_and_the_first_subdivision() -> None:
    """A rule scoped by SKU or distributor, or a first activation in a subdivision, is judged
    on what `to_facts` hands over: a dropped field would put a device out of (or in) scope."""
    rec = replace(record(), sku="X1-128")
    state = replace(DeviceState(), first_country="UA", first_subdivision="UA-43")
    facts = state.to_facts(rec)
    assert (facts.sku, facts.distributor, facts.batch, facts.model) == (
        "X1-128",
        "Acme GmbH",
        "B7",
        "X1",
    )
    assert (facts.first_country, facts.first_subdivision) == ("UA", "UA-43")


def test_an_exemption_covers_its_own_device_or_batch_until_the_day_it_ends() -> None:
    mine, other = DeviceFacts("dev_a", batch="B7"), DeviceFacts("dev_b", batch="B8")
    by_device = Exemption("appeal", device="dev_a", until=date(2026, 3, 1))
    assert by_device.applies(mine, date(2026, 2, 28))
    assert not by_device.applies(mine, date(2026, 3, 1))  # `until` is exclusive
    assert not by_device.applies(other, date(2026, 2, 1))
    by_batch = Exemption("recall", batch="B7")
    assert by_batch.applies(mine, date(2030, 1, 1))
    assert not by_batch.applies(other, date(2030, 1, 1))
    assert not Exemption("nothing named").applies(mine, date(2026, 1, 1))


def test_a_first_activation_needs_the_policys_confidence_and_no_more() -> None:
    assert DeviceState().may_activate(loc("IR", conf=0.7), T0, 0.7)
    assert not DeviceState().may_activate(loc("IR", conf=0.69), T0, 0.7)


def test_a_first_activation_after_unplaceable_check_ins_counts_for_72_hours() -> None:
    state, _ = check_in(DeviceState(), loc(None), T0)
    assert state.may_activate(loc("IR"), T0 + timedelta(hours=72), 0.7)
    assert not state.may_activate(loc("IR"), T0 + timedelta(hours=72, seconds=1), 0.7)


def test_a_warning_clock_is_forgotten_after_exactly_its_rules_window() -> None:
    """`ir` warns for 14 days: a clock started 14 days ago belongs to an earlier stay. A clock
    of a rule the policy no longer has is kept for the retention period."""
    started = replace(DeviceState(), warned_since={"ir": T0.date(), "gone": T0.date()})
    france = loc("FR")
    later, _ = check_in(started, france, T0 + timedelta(days=13))
    assert dict(later.warned_since) == {"ir": T0.date(), "gone": T0.date()}
    later, _ = check_in(started, france, T0 + timedelta(days=14))
    assert dict(later.warned_since) == {"gone": T0.date()}


def test_presence_is_kept_for_the_retention_period_beyond_the_rules_windows() -> None:
    state, _ = check_in(DeviceState(), loc("FR"), T0)
    # The longest window here is 30 days (France's default presence window).
    later, _ = check_in(state, loc("FR"), T0 + timedelta(days=40), retention_days=60)
    assert T0.date() in later.presence


# Found by mutation testing, second pass (docs/test-quality.md, "device.py, forkserver"): each
# failed on a mutant of domain/device.py that every test above let through.


def test_a_check_in_records_when_it_happened_its_counter_and_its_place() -> None:
    """`last_checkin_at` is stored in its own column and shown to operators (`device show`);
    before this test nothing checked that a check-in records it at all."""
    narrowed = LocationEstimate("UA", None, 0.8, (), (), subdivisions=("UA-40", "UA-43"))
    state, _ = check_in(DeviceState(), narrowed, T0, counter=7)
    assert (state.last_checkin_at, state.counter) == (T0, 7)
    assert (state.last_country, state.last_subdivision, state.last_subdivisions) == (
        "UA",
        None,
        ("UA-40", "UA-43"),
    )
    assert state.last_confidence == 0.8
    later, verdict = check_in(state, loc(None), T0 + timedelta(hours=5), counter=9)
    assert (later.last_checkin_at, later.counter) == (T0 + timedelta(hours=5), 9)
    assert (later.last_country, later.last_subdivision, later.last_subdivisions) == (None, None, ())
    assert later.last_confidence == 0.0
    assert later.last_verdict is verdict.action
    assert later.first_seen_at == T0


def test_the_day_of_a_check_in_is_its_utc_day_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Presence is keyed by UTC date: a check-in at 23:00 UTC on 2 March is a day in 2 March
    on a server in Tehran (UTC+03:30) too, and so is one given in another zone."""
    late = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    in_moscow = datetime(2026, 3, 3, 1, 0, tzinfo=timezone(timedelta(hours=3)))  # 22:00 UTC
    monkeypatch.setenv("TZ", "Asia/Tehran")
    time.tzset()
    try:
        state, _ = check_in(DeviceState(), loc("FR"), late)
        other, _ = check_in(DeviceState(), loc("FR"), in_moscow)
        facts = state.to_facts(record())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert list(state.presence) == [date(2026, 3, 2)]
    assert list(other.presence) == [date(2026, 3, 2)]
    assert facts.first_seen == date(2026, 3, 2)


def test_a_policy_without_restrictions_keeps_today_and_nothing_more_at_zero_retention() -> None:
    """The retention has a floor of one day (today), also with no rule to take a window from."""
    bare = Policy("p", "1", "", ())
    state, _ = check_in(DeviceState(), loc("FR"), T0, policy=bare, retention_days=0)
    assert list(state.presence) == [T0.date()]
    later, _ = check_in(state, loc("FR"), T0 + timedelta(days=1), policy=bare, retention_days=0)
    assert list(later.presence) == [T0.date() + timedelta(days=1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  ", "IMEI is empty"),
        (
            "49015420323751O",
            "IMEI '49015420323751O': 'O' is not allowed (an IMEI is 15 digits, optionally grouped "
            "with spaces or dashes)",
        ),
        ("490154203237518-", "IMEI '490154203237518-': must start and end with a digit"),
        (
            "49015420323751",
            "IMEI '49015420323751': 14 digits, expected 15 (is the check digit, 8, missing?)",
        ),
        (
            "4901542032375180",
            "IMEI '4901542032375180': 16 digits, expected 15 (an IMEISV, with a software version, "
            "is not an IMEI)",
        ),
        ("4901542032", "IMEI '4901542032': 10 digits, expected 15"),
        (
            "000000000000000",
            "IMEI 000000000000000: the all-zero placeholder of unprovisioned devices is not an "
            "IMEI",
        ),
    ],
)
def test_a_refused_imei_is_told_exactly_what_is_wrong(text: str, message: str) -> None:
    """These words reach operators importing a fleet, one per refused row."""
    with pytest.raises(InvalidInput) as err:
        parse_imei(text)
    assert err.value.message == message


def test_what_a_refusal_quotes_is_cut_after_40_characters() -> None:
    forty, forty_one = "4" * 39 + "x", "4" * 40 + "x"
    tail = ": 'x' is not allowed (an IMEI is 15 digits, optionally grouped with spaces or dashes)"
    for text, shown in ((forty, repr(forty)), (forty_one, repr("4" * 37) + "...")):
        with pytest.raises(InvalidInput) as err:
            parse_imei(text)
        assert err.value.message == f"IMEI {shown}{tail}"
    with pytest.raises(InvalidInput) as err:
        Imei("4" * 41)
    assert err.value.message == f"IMEI {'4' * 37!r}...: expected 15 digits"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" ", "public key is empty"),
        (
            b64url(public_key(1)) + "=",
            "public key: remove the '=' padding (expected base64url without padding, 43 "
            "characters)",
        ),
        (
            "A/" + "A" * 41,
            "public key: '+' and '/' belong to standard base64, expected base64url (which uses "
            "'-' and '_')",
        ),
        (
            "A+" + "A" * 41,
            "public key: '+' and '/' belong to standard base64, expected base64url (which uses "
            "'-' and '_')",
        ),
        ("A" * 42 + "!", "public key: '!' at position 43 is not a base64url character"),
        (
            "A" * 42,
            "public key: 42 characters, expected 43 (an Ed25519 public key is 32 bytes), and 42 "
            "base64url characters encode 31 bytes",
        ),
        (
            public_key(1).hex(),
            "public key: 64 characters, expected 43 (an Ed25519 public key is 32 bytes), and this "
            "looks like hex, not base64url",
        ),
        (
            "A" * 45,
            "public key: 45 characters, expected 43 (an Ed25519 public key is 32 bytes), and 45 "
            "base64url characters cannot encode whole bytes",
        ),
        (
            "A" * 46,
            "public key: 46 characters, expected 43 (an Ed25519 public key is 32 bytes), and 46 "
            "base64url characters encode 34 bytes",
        ),
        (
            "A" * 43,
            "public key: a point of small order (such as all zeros), under which anyone can "
            "forge signatures",
        ),
        (
            "A" * 42 + "B",
            "public key: the last character 'B' has unused bits set, so this is not the "
            "canonical encoding of 32 bytes",
        ),
    ],
)
def test_a_refused_public_key_is_told_exactly_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_public_key(text)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" ", "sales region is empty"),
        (" uk", "sales region 'uk': not an assigned ISO 3166-1 code, use GB (the United Kingdom)"),
        ("XX", "sales region 'XX': not a known ISO 3166-1 alpha-2 code"),
        (
            "DEU",
            "sales region 'DEU': expected a two-letter ISO 3166-1 alpha-2 code (alpha-3 codes "
            "are not accepted)",
        ),
        (
            "Europe",
            "sales region 'Europe': expected an ISO 3166-1 alpha-2 code or one of EEA, EU, GLOBAL",
        ),
    ],
)
def test_a_refused_sales_region_is_told_exactly_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_sales_region(text, COUNTRIES)
    assert err.value.message == message


def test_fingerprints_are_pinned() -> None:
    """The import stores each record's fingerprint and compares it on re-import: a change in
    how it is computed would turn every re-import of an unchanged fleet into a conflict."""
    key = public_key(1).hex()
    plain = f"15:{IMEI_A}7:SN-00012:X1-2:EU9:Acme GmbH2:B7--64:{key}"
    assert hashlib.blake2b(plain.encode(), digest_size=16).hexdigest() == (
        "85bea07d56cc11fd80cbbc8272ede93f"
    )
    assert record().fingerprint().hex() == "85bea07d56cc11fd80cbbc8272ede93f"
    full = replace(
        record(IMEI_A, IMEI_B),
        sku="X1-128",
        manufactured=date(2026, 1, 5),
        shipped=date(2026, 2, 5),
    )
    assert full.fingerprint().hex() == "05c7c19c539572a8ccbbfd80706604f0"


def test_the_luhn_payload_is_14_ascii_digits_exactly() -> None:
    for payload in ("4901542032375", "490154203237518", "4901542032375x", "٤٩٠١٥٤٢٠٣٢٣٧٥١"):
        with pytest.raises(ValueError, match=r"^the Luhn payload of an IMEI is 14 ASCII digits$"):
            dev.luhn_check_digit(payload)


def test_an_imei_constructed_from_storage_is_15_ascii_digits_exactly() -> None:
    for digits in ("4901542032375180", "49015420323751x"):
        with pytest.raises(InvalidInput) as err:
            Imei(digits)
        assert err.value.message == f"IMEI {digits!r}: expected 15 digits"


@given(st.binary(max_size=40))
@example(b"\x00\x00\x17")  # "AAAX": rstrip must take "=" only, not the data's last character
def test_encode_public_key_is_plain_base64url_without_padding(raw: bytes) -> None:
    assert encode_public_key(raw) == base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_an_id_key_of_exactly_16_bytes_is_enough() -> None:
    assert device_id(Imei(IMEI_A), b"k" * 16).startswith("dev_")
    with pytest.raises(ValueError, match=r"^the device id key must be at least 16 bytes$"):
        device_id(Imei(IMEI_A), b"k" * 15)


def test_a_record_refused_says_exactly_why() -> None:
    with pytest.raises(InvalidInput) as err:
        record(IMEI_A, IMEI_A)
    assert err.value.message == "a device lists the same IMEI twice"
    with pytest.raises(InvalidInput) as err:
        replace(record(), imeis=())
    assert err.value.message == "a device has at least one IMEI"
    with pytest.raises(InvalidInput) as err:
        DeviceRecord.create(
            imeis=(),
            id_key=ID_KEY,
            serial="SN-0001",
            model="X1",
            sales_region="EU",
            distributor="Acme GmbH",
            batch="B7",
            public_key=public_key(1),
        )
    assert err.value.message == "a device has at least one IMEI"


def test_a_state_refuses_naive_times_and_names_the_field() -> None:
    naive = T0.replace(tzinfo=None)
    for name in ("last_checkin_at", "first_seen_at"):
        with pytest.raises(ValueError, match=rf"^{name} must be timezone-aware \(UTC\)$"):
            DeviceState(**{name: naive})  # type: ignore[arg-type]


def test_after_checkin_refusals_say_exactly_why() -> None:
    state, verdict = check_in(DeviceState(), loc("DE"), T0, counter=5)
    with pytest.raises(ValueError, match=r"^at must be timezone-aware \(UTC\)$"):
        state.after_checkin(
            loc("DE"), verdict, at=T0.replace(tzinfo=None), counter=6, policy=POLICY
        )
    with pytest.raises(
        ValueError, match=r"^the verdict was decided under another policy than the one given$"
    ):
        state.after_checkin(
            loc("DE"), verdict, at=T0, counter=6, policy=replace(POLICY, version="2")
        )


def test_warning_clocks_and_presence_read_back_in_key_order() -> None:
    """Sorted by rule id and by day, not by date started or by codes: what is stored and shown
    comes out in the same order whatever order it was built in."""
    state = DeviceState(
        presence={date(2026, 3, 2): frozenset({"FR"}), date(2026, 3, 1): frozenset({"DE"})},
        warned_since={"b": date(2026, 3, 1), "a": date(2026, 3, 5)},
    )
    assert list(state.warned_since) == ["a", "b"]
    assert list(state.presence) == [date(2026, 3, 1), date(2026, 3, 2)]


def test_a_place_without_a_subdivision_records_none_and_only_the_country() -> None:
    state, _ = check_in(DeviceState(), loc("FR"), T0)
    assert (state.first_country, state.first_subdivision) == ("FR", None)
    assert dict(state.presence) == {T0.date(): frozenset({"FR"})}


def test_a_lock_starts_no_warning_clock() -> None:
    policy = Policy("p", "1", "", (replace(IR_LOCK, warn_days=0),))
    activated = DeviceState(first_country="IR", first_seen_at=T0, counter=1)
    state, verdict = check_in(activated, loc("IR"), T0 + timedelta(days=1), policy=policy)
    assert (verdict.action, verdict.held_back) == (Action.LOCK, ())
    assert dict(state.warned_since) == {}


def test_only_lock_rules_held_back_to_a_warning_start_a_clock() -> None:
    """A warn rule listed before a lock rule on the same place decides the verdict (ties go to
    the earlier rule), and the lock rule's escalation warning puts `escalation.warning` among
    the verdict's reasons. Only the lock rule has a warning clock: a warn rule never reads one."""
    ir_warn = Restriction("ir-warn", IR_LOCK.jurisdictions, Action.WARN)
    policy = Policy("p", "1", "", (ir_warn, replace(IR_LOCK, warn_days=5)))
    state, _ = check_in(DeviceState(), loc("DE"), T0, policy=policy)
    for day in range(1, 5):  # two days of grace, then escalation warnings
        state, verdict = check_in(state, loc("IR"), T0 + timedelta(days=day), policy=policy)
        assert (verdict.action, verdict.rule, verdict.held_back) == (
            Action.WARN,
            "ir-warn",
            ("ir",),
        )
    assert "escalation.warning" in verdict.reasons
    assert dict(state.warned_since) == {"ir": (T0 + timedelta(days=1)).date()}


def test_a_packed_record_unpacks_to_an_equal_one_the_collector_does_not_track() -> None:
    import gc

    full = DeviceRecord(
        id="dev_x",
        imeis=(Imei("490154203237518"), Imei("356938035643809")),
        serial="SN-1",
        model="REF-1",
        sales_region="EU",
        distributor="acme",
        batch="b7",
        public_key=b"k" * 32,
        sku="SKU-9",
        manufactured=date(2021, 3, 1),
        shipped=date(2021, 4, 2),
    )
    bare = replace(full, imeis=full.imeis[:1], sku=None, manufactured=None, shipped=None)
    # Every field is packed: one added later and left out would stay unset in an unpacked
    # record (which skips the constructor), and fail only where it is first read.
    assert tuple(f.name for f in dataclasses.fields(DeviceRecord)) == dev._RECORD_FIELDS
    for record in (full, bare):
        packed = record.packed()
        again = dev.unpack_record_unchecked(packed)
        assert again == record and hash(again) == hash(record)
        assert again.tac == record.tac and [str(i) for i in again.imeis] == [
            str(i) for i in record.imeis
        ]
        # What the cache is for: once the collector has seen it, it no longer tracks it (a
        # record kept as is stays three tracked objects). One pass: no tuple inside it.
        gc.collect()
        assert not gc.is_tracked(packed) and gc.is_tracked(record)
