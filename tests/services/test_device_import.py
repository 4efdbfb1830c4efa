"""Parsing device import files: good rows become records, bad rows become numbered problems."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from regionlock.domain.device import DeviceRecord, Imei, device_id
from regionlock.domain.errors import InvalidInput
from regionlock.services.device_import import ImportProblem, ImportStats, parse_device_csv

ID_KEY = b"import-test-key-0123456789abcdef"
COUNTRIES = frozenset({"DE", "FR", "GB", "US"})
HEADER = "imei,serial,model,sales_region,distributor,batch,public_key"
# Real-looking IMEIs; check digits computed by hand with the Luhn rule.
IMEI_A = "490154203237518"
IMEI_B = "352099001761481"
IMEI_C = "353325091234561"
IMEI_D = "861536030012349"
IMEI_E = "356868000041418"
IMEI_F = "352099001761499"


def key(seed: int) -> str:
    raw = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32).public_key().public_bytes_raw()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse(
    text: str, stats: ImportStats | None = None
) -> tuple[list[DeviceRecord], list[ImportProblem]]:
    records: list[DeviceRecord] = []
    problems: list[ImportProblem] = []
    for item in parse_device_csv(
        io.StringIO(text, newline=""), known_countries=COUNTRIES, id_key=ID_KEY, stats=stats
    ):
        (records if isinstance(item, DeviceRecord) else problems).append(item)  # type: ignore[arg-type]
    return records, problems


def test_good_rows_become_records() -> None:
    text = (
        f"{HEADER}\n"
        f"{IMEI_A},SN-1,X1,EU,Acme GmbH,B7,{key(1)}\n"
        f"49-015420-323751-8,SN-1,X1,eu,Acme GmbH,B7,{key(1)}\n"  # same device, other spelling
        f"{IMEI_B},SN-2,X1,DE,Acme GmbH,B7,{key(2)}\n"
    )
    records, problems = parse(text)
    assert problems == []
    assert [r.imeis for r in records] == [(Imei(IMEI_A),), (Imei(IMEI_B),)]
    first = records[0]
    assert first.id == device_id(Imei(IMEI_A), ID_KEY)
    assert (first.serial, first.model, first.sales_region) == ("SN-1", "X1", "EU")
    assert (first.distributor, first.batch, first.sku) == ("Acme GmbH", "B7", None)
    assert first.public_key == base64.urlsafe_b64decode(key(1) + "=")
    assert records[1].sales_region == "DE"


def test_optional_columns_in_any_order() -> None:
    text = (
        "Public_Key, shipped ,imei2,imei,sku,serial,model,sales_region,distributor,batch,"
        "manufactured\n"
        f"{key(3)},2026-02-01,{IMEI_B},{IMEI_A},X1-128,SN-1,X1,GLOBAL,Acme,B7,2026-01-15\n"
        f"{key(4)},,,{IMEI_C},,SN-2,X1,FR,Acme,B7,\n"
    )
    records, problems = parse(text)
    assert problems == []
    dual, single = records
    assert dual.imeis == (Imei(IMEI_A), Imei(IMEI_B))
    assert dual.id == device_id(Imei(IMEI_A), ID_KEY)
    assert (dual.sku, dual.manufactured, dual.shipped) == (
        "X1-128",
        date(2026, 1, 15),
        date(2026, 2, 1),
    )
    assert (single.imeis, single.sku, single.manufactured, single.shipped) == (
        (Imei(IMEI_C),),
        None,
        None,
        None,
    )


def test_a_mixed_file_reports_every_bad_row_by_line_and_imports_the_rest() -> None:
    good = f"SN,X1,EU,Acme,B7,{key(1)}"
    text = "\n".join(
        [
            HEADER,  # line 1
            f"{IMEI_A},{good}",  # 2 good
            f"490154203237519,{good}",  # 3 bad checksum
            f"{IMEI_B},SN,X1,EU,Acme,B7,{key(1)}=",  # 4 bad key (padding)
            f"{IMEI_C},SN,X1,Europe,Acme,B7,{key(3)}",  # 5 bad region
            f"{IMEI_A},SN-other,X1,EU,Acme,B7,{key(1)}",  # 6 same IMEI, different data
            f"{IMEI_A},{good}",  # 7 identical repeat of line 2
            f"{IMEI_D},SN,X1,EU,Acme,B7",  # 8 a column missing
            f"{IMEI_D},SN,X1,EU,Acme,B7,{key(4)},extra",  # 9 an extra column
            "",  # 10 blank: ignored
            f"{IMEI_E},SN,X1,EU,,B7,{key(5)}",  # 11 empty distributor
            f"{IMEI_F},SN,X1,US,Acme,B7,{key(6)}",  # 12 good
        ]
    )
    stats = ImportStats()
    records, problems = parse(text + "\n", stats)
    assert [r.imeis[0].digits for r in records] == [IMEI_A, IMEI_F]
    assert [(p.line, p.message) for p in problems] == [
        (3, "IMEI 490154203237519: check digit should be 8"),
        (
            4,
            "public key: remove the '=' padding "
            "(expected base64url without padding, 43 characters)",
        ),
        (
            5,
            "sales region 'Europe': expected an ISO 3166-1 alpha-2 code or one of EEA, EU, GLOBAL",
        ),
        (6, f"IMEI {IMEI_A} is also on line 2 with different data"),
        (8, "6 fields, but the header names 7"),
        (9, "8 fields, but the header names 7"),
        (11, "distributor is empty"),
    ]
    assert stats == ImportStats(rows=10, records=2, duplicates=1, problems=7)


def test_all_problems_of_a_row_are_reported_together() -> None:
    text = (
        f"{HEADER},manufactured,shipped\n49015420323751X,,X1,ZZ,Acme,B7,abc,2026-13-01,2026-1-2\n"
    )
    _, [problem] = parse(text)
    assert problem.line == 2
    parts = problem.message.split("; ")
    assert parts[0] == "serial is empty"
    assert parts[1].startswith("IMEI '49015420323751X': 'X' is not allowed")
    assert parts[2] == "sales region 'ZZ': not a known ISO 3166-1 alpha-2 code"
    assert parts[3].startswith("public key: 3 characters, expected 43")
    assert parts[4:] == [
        "manufactured '2026-13-01': not a date (expected YYYY-MM-DD)",
        "shipped '2026-1-2': not a date (expected YYYY-MM-DD)",
    ]


def test_date_order_and_second_imei_checks() -> None:
    text = (
        f"{HEADER},imei2,manufactured,shipped\n"
        f"{IMEI_A},SN,X1,EU,Acme,B7,{key(1)},,2026-03-01,2026-02-01\n"
        f"{IMEI_B},SN,X1,EU,Acme,B7,{key(2)},{IMEI_B},,\n"
        f"{IMEI_C},SN,X1,EU,Acme,B7,{key(3)},{IMEI_D},,\n"
        f"{IMEI_E},SN,X1,EU,Acme,B7,{key(5)},{IMEI_D},,\n"  # its imei2 is line 4's
    )
    records, problems = parse(text)
    assert [r.imeis for r in records] == [(Imei(IMEI_C), Imei(IMEI_D))]
    assert [(p.line, p.message) for p in problems] == [
        (2, "shipped 2026-02-01 is before manufactured 2026-03-01"),
        (3, f"imei2 {IMEI_B} repeats imei"),
        (5, f"IMEI {IMEI_D} is also on line 4 with different data"),
    ]


def test_a_bad_row_does_not_reserve_its_imei() -> None:
    text = (
        f"{HEADER}\n"
        f"{IMEI_A},SN,X1,EU,Acme,B7,not-a-key\n"
        f"{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n"  # the corrected row is accepted
    )
    records, problems = parse(text)
    assert [p.line for p in problems] == [2]
    assert len(records) == 1


def test_line_numbers_count_physical_lines_of_quoted_fields() -> None:
    text = (
        f"{HEADER}\n"
        f'{IMEI_A},"SN\nspanning\nlines",X1,EU,Acme,B7,{key(1)}\n'
        f"{IMEI_B},SN,X1,EU,Acme,B7,bad\n"
    )
    records, [problem] = parse(text)
    assert records[0].serial == "SN\nspanning\nlines"
    assert problem.line == 5


def test_broken_csv_is_a_problem_not_an_abort() -> None:
    text = f'{HEADER}\n{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n{IMEI_B},"unterminated,X1\n'
    records, [problem] = parse(text)
    assert len(records) == 1
    assert problem.line == 3
    assert problem.message.startswith("not valid CSV")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (HEADER + ",colour,weight", "unknown column(s) colour, weight"),
        ("imei,serial,model,distributor", "missing column(s) sales_region, batch, public_key"),
        (HEADER + ",serial", "column 'serial' appears twice"),
        (HEADER + ",", "column 8 has no name"),
    ],
)
def test_an_unusable_header_stops_before_any_row(header: str, fragment: str) -> None:
    text = f"{header}\n{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n"
    with pytest.raises(InvalidInput) as err:
        parse(text)
    assert err.value.message.startswith("line 1: header: ")
    assert fragment in err.value.message


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        parse("")


def test_a_byte_order_mark_is_not_part_of_the_first_column() -> None:
    records, problems = parse(f"\ufeff{HEADER}\n{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n")
    assert (len(records), problems) == (1, [])


def test_reimporting_a_file_yields_the_same_records() -> None:
    text = f"{HEADER}\n{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n{IMEI_B},SN,X1,EU,Acme,B7,{key(2)}\n"
    assert parse(text) == parse(text)


def test_rows_are_read_lazily() -> None:
    # A generator that fails if read far past what the consumer asked for: nothing is buffered.
    def lines() -> Iterator[str]:
        yield HEADER + "\n"
        for n in itertools.count():
            if n > 20:
                raise AssertionError("the parser read ahead")
            yield f"{IMEI_A},SN,X1,EU,Acme,B7,{key(1)}\n" if n == 0 else "bad row\n"

    items = parse_device_csv(lines(), known_countries=COUNTRIES, id_key=ID_KEY)
    taken = list(itertools.islice(items, 10))
    assert isinstance(taken[0], DeviceRecord)
    assert [p.line for p in taken[1:] if isinstance(p, ImportProblem)] == list(range(3, 12))
