"""Webhooks, the pure part: signatures a Standard Webhooks library verifies, which audit entries
are events and what they say, the retry schedule, and where deliveries may go."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from regionlock.domain.errors import InvalidInput
from regionlock.domain.webhooks import (
    DEFAULT_RETRY_SCHEDULE,
    EVENT_TYPES,
    Endpoint,
    body_digest,
    event_of,
    forbidden_address,
    headers,
    new_secret,
    next_attempt,
    parse_events,
    parse_schedule,
    parse_url,
    secret_key,
    signature,
)

T = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_a_delivery_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    body = b'{"type":"device.locked","data":{"device":"dev_x"}}'
    now = int(datetime.now(UTC).timestamp())
    signed = headers([secret], "msg_1_abc", now, body)
    assert Webhook(secret).verify(body, signed) == json.loads(body)
    # A byte changed, or another secret: refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"dev_x", b"dev_y"), signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, signed)


def test_during_a_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    endpoint = Endpoint(
        id="wh_x",
        name="n",
        url="https://example.com/h",
        events=EVENT_TYPES,
        secret=new,
        created_at=T,
        created_by="t",
        start_seq=0,
        previous_secret=old,
        previous_until=T + timedelta(hours=24),
    )
    assert endpoint.signing_secrets(T) == (new, old)
    assert endpoint.signing_secrets(T + timedelta(hours=24)) == (new,)
    body, now = b"{}", int(datetime.now(UTC).timestamp())
    signed = headers(endpoint.signing_secrets(T), "msg_2", now, body)
    assert signed["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, signed)


def test_the_signature_is_hmac_sha256_of_id_timestamp_body() -> None:
    """The specification's own example (github.com/standard-webhooks, spec: "Signature
    scheme"): secret, id, timestamp and payload give this signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    got = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "secret", ["sk_abc", "whsec_!!!", "whsec_" + base64.b64encode(b"x" * 8).decode()]
)
def test_a_bad_secret_is_refused(secret: str) -> None:
    with pytest.raises(InvalidInput):
        secret_key(secret)


def _checkin(verdict: str, previous: str | None) -> dict[str, object]:
    return {
        "verdict": verdict,
        "previous": previous,
        "country": "IR",
        "subdivision": "IR-23",
        "policy": "gray-market-2021@2021-09-15",
        "counter": 7,
    }


@pytest.mark.parametrize(
    ("verdict", "previous", "kind"),
    [
        ("lock", "allow", "device.locked"),
        ("lock", None, "device.locked"),  # a first check-in that locks
        ("lock", "warn", "device.locked"),
        ("warn", "allow", "device.warned"),
        ("warn", "lock", "device.warned"),
        ("allow", "lock", "device.unlocked"),
        ("lock", "lock", None),  # no change: no event
        ("warn", "warn", None),
        ("allow", "allow", None),
        ("allow", "warn", None),  # a warning that ends: nothing was held
        ("allow", None, None),
    ],
)
def test_a_checkin_announces_a_change_of_verdict(
    verdict: str, previous: str | None, kind: str | None
) -> None:
    event = event_of(
        41,
        "ab" * 32,
        T,
        "checkin.verdict",
        "dev_1",
        "jurisdiction.restricted,presence.established",
        _checkin(verdict, previous),
    )
    if kind is None:
        assert event is None
        return
    assert event is not None and event.type == kind
    assert event.id == "msg_41_" + "ab" * 8
    assert dict(event.data) == {
        "device": "dev_1",
        "verdict": verdict,
        "previous_verdict": previous,
        "reasons": ["jurisdiction.restricted", "presence.established"],
        "country": "IR",
        "subdivision": "IR-23",
        "policy": "gray-market-2021@2021-09-15",
        "cause": "checkin",
        "audit_seq": 41,
    }


def test_an_audit_entry_without_the_previous_verdict_is_still_read() -> None:
    """Entries written before webhooks existed have no `previous`: a lock reads as a change."""
    event = event_of(1, "c" * 64, T, "checkin.verdict", "dev_1", "", {"verdict": "lock"})
    assert event is not None and event.type == "device.locked"


@pytest.mark.parametrize(
    ("action", "details", "kind", "extra"),
    [
        ("device.lock", {}, "device.locked", {"cause": "operator"}),
        ("device.unlock", {}, "device.unlocked", {"cause": "operator"}),
        ("device.exempt", {}, "device.exempted", {"cause": "operator"}),
        ("campaign.lock", {"campaign": "cmp_1"}, "device.locked", {"campaign": "cmp_1"}),
        ("campaign.unlock", {"campaign": "cmp_1"}, "device.unlocked", {"cause": "campaign"}),
        ("campaign.exempt", {"campaign": "cmp_1"}, "device.exempted", {"cause": "campaign"}),
        ("campaign.start", {}, "campaign.started", {"campaign": "dev_1"}),
        ("campaign.stage_done", {"state": "done"}, "campaign.completed", {}),
        ("policy.activate", {}, "policy.activated", {"how": "policy.activate"}),
        ("policy.rollback", {}, "policy.activated", {"how": "policy.rollback"}),
    ],
)
def test_recorded_actions_are_events(
    action: str, details: dict[str, str], kind: str, extra: dict[str, str]
) -> None:
    event = event_of(5, "d" * 64, T, action, "dev_1", "why", details)
    assert event is not None and event.type == kind
    assert event.data["audit_seq"] == 5
    assert extra.items() <= dict(event.data).items()


@pytest.mark.parametrize(
    ("action", "details"),
    [
        ("campaign.stage_done", {"state": "running"}),  # a stage, not the end
        ("campaign.create", {}),
        ("apikey.create", {}),
        ("webhook.add", {}),
        ("device.unlock_code", {}),
        ("devices.import", {}),
    ],
)
def test_other_entries_are_not_events(action: str, details: dict[str, str]) -> None:
    assert event_of(5, "d" * 64, T, action, "x", "why", details) is None


def test_each_body_names_the_one_before_it() -> None:
    first = event_of(1, "a" * 64, T, "device.lock", "dev_1", "stolen", {})
    second = event_of(2, "b" * 64, T, "device.unlock", "dev_1", "found", {})
    assert first is not None and second is not None
    one = first.body(None)
    two = second.body(body_digest(one))
    doc = json.loads(two)
    assert set(doc) == {"type", "timestamp", "data"}
    assert doc["timestamp"] == "2026-12-06T08:00:00Z"
    assert json.loads(one)["data"]["previous"] is None
    assert doc["data"]["previous"] == body_digest(one)


def test_the_retry_schedule() -> None:
    assert [next_attempt(n, T) for n in range(1, 7)] == [T + d for d in DEFAULT_RETRY_SCHEDULE]
    assert next_attempt(7, T) is None  # spent: failed for good
    assert next_attempt(0, T) is None
    assert parse_schedule("5s, 5m,30m,2h,1d") == (
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(days=1),
    )
    for bad in ("", "5", "5x", "-5s", "5s,,5s", ",".join(["1s"] * 21)):
        with pytest.raises(InvalidInput):
            parse_schedule(bad)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@example.com/x", "user name or password"),
        ("https://example.com:99999/x", "cannot be read"),
        ("https://exa\x00mple.com/", "NUL"),
        ("https://example.com/" + "a" * 2001, "longer than"),
    ],
)
def test_a_bad_url_is_refused(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_url(url)


def test_urls_and_events_that_are_accepted() -> None:
    assert parse_url(" https://hooks.example.com:8443/rl?x=1 ") == (
        "https://hooks.example.com:8443/rl?x=1"
    )
    assert parse_events(["device.locked,device.unlocked", "device.locked"]) == (
        "device.locked",
        "device.unlocked",
    )
    assert parse_events(["*"]) == EVENT_TYPES
    with pytest.raises(InvalidInput, match="unknown event"):
        parse_events(["device.lockd"])
    with pytest.raises(InvalidInput, match="at least one"):
        parse_events([" , "])


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4 mapped into IPv6
        ("100.64.0.1", "carrier-grade"),
        ("0.0.0.0", None),  # unspecified: refused below
        ("224.0.0.1", "unicast"),
        ("93.184.215.14", ""),  # a public address: allowed
        ("2606:4700::1111", ""),
    ],
)
def test_forbidden_addresses(address: str, refused: str | None) -> None:
    why = forbidden_address(address)
    if refused == "":
        assert why is None
    elif refused is None:
        assert why is not None
    else:
        assert why is not None and refused in why


# -- Found by mutation testing (docs/test-quality.md, "domain/webhooks.py") ---------------------


@pytest.mark.parametrize(
    ("action", "subject", "details", "kind", "data"),
    [
        ("campaign.start", "cmp_1", {}, "campaign.started", {"campaign": "cmp_1", "reason": "r"}),
        (
            "campaign.stage_done",
            "cmp_1",
            {"state": "done", "stage": 3},
            "campaign.completed",
            {"campaign": "cmp_1", "reason": "r"},
        ),
        (
            "policy.activate",
            "policy",  # the details name the version: they win
            {"policy": "p@2"},
            "policy.activated",
            {"policy": "p@2", "reason": "r", "how": "policy.activate"},
        ),
        (
            "policy.rollback",
            "p@1",
            {},  # no policy in the details: the subject names it
            "policy.activated",
            {"policy": "p@1", "reason": "r", "how": "policy.rollback"},
        ),
        (
            "appeal.create",
            "apl_1",
            {"device": "dev_1", "language": "fa"},
            "appeal.created",
            {"appeal": "apl_1", "reason": "r", "device": "dev_1", "language": "fa"},
        ),
        (
            "appeal.decide",
            "apl_1",
            {"device": "dev_1", "decision": "granted", "until": "2027-01-01"},
            "appeal.decided",
            {
                "appeal": "apl_1",
                "reason": "r",
                "device": "dev_1",
                "decision": "granted",
                "until": "2027-01-01",
            },
        ),
        (
            "device.lock",
            "dev_1",
            None,  # an entry whose details are not an object is read as empty
            "device.locked",
            {"device": "dev_1", "reason": "r", "cause": "operator"},
        ),
    ],
)
def test_each_recorded_action_says_exactly_this(
    action: str, subject: str, details: object, kind: str, data: dict[str, object]
) -> None:
    event = event_of(9, "e" * 64, T, action, subject, "r", details)
    assert event is not None and (event.id, event.type) == ("msg_9_" + "e" * 16, kind)
    assert dict(event.data) == data | {"audit_seq": 9}


def test_a_body_is_canonical_json_byte_for_byte() -> None:
    event = event_of(3, "f" * 64, T, "campaign.start", "cmp_é", "why", {})
    assert event is not None
    assert (
        event.body("ab")
        == (
            '{"data":{"audit_seq":3,"campaign":"cmp_é","previous":"ab","reason":"why"},'
            '"timestamp":"2026-12-06T08:00:00Z","type":"campaign.started"}'
        ).encode()
    )


def test_the_headers_of_a_delivery_exactly() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    got = headers([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "content-type": "application/json",
    }


def test_secrets_hold_24_to_64_bytes_and_say_what_is_wrong() -> None:
    def whsec(n: int) -> str:
        return "whsec_" + base64.b64encode(b"k" * n).decode()

    assert secret_key(whsec(24)) == b"k" * 24 and secret_key(whsec(64)) == b"k" * 64
    for bad, words in [
        (whsec(23), "a webhook secret holds 24 to 64 bytes"),
        (whsec(65), "a webhook secret holds 24 to 64 bytes"),
        ("sk_" + whsec(32)[6:], "a webhook secret starts with whsec_"),
        ("whsec_!!!!", "a webhook secret is whsec_ and base64"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            secret_key(bad)
        assert refused.value.message == words
    made = new_secret()
    assert made.startswith("whsec_") and len(secret_key(made)) == 32


def test_an_endpoint_reads_as_the_api_shows_it() -> None:
    endpoint = Endpoint(
        id="wh_x",
        name="crm",
        url="https://crm.example.com/h",
        events=("device.locked",),
        secret="whsec_secret",
        created_at=T,
        created_by="cli:ana",
        start_seq=4,
        enabled=False,
        disabled_reason="410",
        previous_secret="whsec_old",
        previous_until=T + timedelta(hours=24),
        failing_since=T,
    )
    assert endpoint.to_json() == {
        "id": "wh_x",
        "name": "crm",
        "url": "https://crm.example.com/h",
        "events": ["device.locked"],
        "enabled": False,
        "disabled_reason": "410",
        "created_at": "2026-12-06T08:00:00+00:00",
        "created_by": "cli:ana",
        "failing_since": "2026-12-06T08:00:00+00:00",
        "rotating_until": "2026-12-07T08:00:00+00:00",
    }
    plain = Endpoint("wh_y", "n", "https://x", (), "whsec_s", T, "t", 0)
    assert plain.to_json()["failing_since"] is None and plain.to_json()["rotating_until"] is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x.example.com/", "the URL must start with https:// (or http://)"),
        ("https:///x", "the URL names no host"),
        (
            "https://u@x.example.com/",
            "the URL must not hold a user name or password: the signature is the proof",
        ),
        ("https://x.example.com:0/", "the URL's port is 0"),
        ("https://x.example.com/" + "a" * 2000, "the URL is longer than 2000 characters"),
    ],
)
def test_a_refused_url_says_exactly_why(url: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_url(url)
    assert refused.value.message == message
    assert parse_url("https://x.example.com:" + "65535/") == "https://x.example.com:65535/"


def test_schedules_read_each_unit_and_refuse_with_the_part() -> None:
    assert parse_schedule("1s,2m,3h,4d") == (
        timedelta(seconds=1),
        timedelta(minutes=2),
        timedelta(hours=3),
        timedelta(days=4),
    )
    assert parse_schedule(",".join(["1s"] * 20)) == (timedelta(seconds=1),) * 20
    with pytest.raises(InvalidInput) as refused:
        parse_schedule("5s, 7x")
    assert refused.value.message == ("retry delay '7x': expected a number and s, m, h or d (5m)")


def test_event_lists_refuse_with_the_name_and_keep_order_without_repeats() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_events(["device.locked", "nope"])
    assert refused.value.message.startswith("unknown event 'nope': one of device.locked, ")
    assert parse_events(["device.warned", "device.locked,device.warned"]) == (
        "device.warned",
        "device.locked",
    )


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("::ffff:10.0.0.1", "a private address"),  # mapped: judged as the IPv4 it carries
        ("::ffff:93.184.215.14", None),
        ("100.64.0.0", "a carrier-grade NAT address"),
        ("100.127.255.255", "a carrier-grade NAT address"),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        # Python's `ipaddress` counts reserved and unspecified ranges as private: refused first
        # on that ground.
        ("240.0.0.1", "a private address"),
        ("::", "a private address"),
        ("224.0.0.1", "not a unicast Internet address"),
    ],
)
def test_forbidden_addresses_at_their_edges(address: str, why: str | None) -> None:
    assert forbidden_address(address) == why


def test_entries_whose_details_are_not_an_object_are_read_as_empty() -> None:
    assert event_of(1, "a" * 64, T, "checkin.verdict", "dev_1", "", None) is None
    assert event_of(1, "a" * 64, T, "checkin.verdict", "dev_1", "", ["lock"]) is None


def test_edges_of_urls_events_schedules_and_rotations() -> None:
    longest = "https://x.example.com/" + "a" * (2000 - len("https://x.example.com/"))
    assert parse_url(longest) == longest  # exactly 2,000 characters
    assert parse_url("http://x.example.com/") == "http://x.example.com/"
    assert parse_events([" ,device.locked"]) == ("device.locked",)  # a blank part is skipped
    with pytest.raises(InvalidInput) as refused:
        parse_events([" , "])
    assert refused.value.message == "name at least one event (or * for all)"
    with pytest.raises(InvalidInput) as refused:
        parse_events(["x" * 60])
    assert refused.value.message.startswith(f"unknown event {'x' * 40!r}: one of")
    with pytest.raises(InvalidInput) as refused:
        parse_schedule("y" * 30)
    assert refused.value.message.startswith(f"retry delay {'y' * 20!r}: expected")
    with pytest.raises(InvalidInput) as refused:
        parse_schedule(",".join(["1s"] * 21))
    assert refused.value.message == "a retry schedule holds 1 to 20 delays"
    half = Endpoint("wh_z", "n", "https://x", (), "whsec_s", T, "t", 0, previous_until=T)
    assert half.to_json()["rotating_until"] is None  # no previous secret: no rotation


def test_forbidden_addresses_say_exactly_why() -> None:
    assert forbidden_address("127.0.0.1") == "a loopback address"
    assert forbidden_address("169.254.169.254") == (
        "a link-local address (cloud metadata lives there)"
    )
