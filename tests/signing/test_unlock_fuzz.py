"""Whatever support types in, the unlock-code functions answer with ASCII digits, a bool or
`InvalidInput`: digits of other systems (Arabic-Indic, fullwidth, ...) are refused before they
reach `encode("ascii")`, and no typing of a code matches another challenge's code.
"""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from fuzz_inputs import texts
from hypothesis import given, settings
from hypothesis import strategies as st

from regionlock.domain.errors import InvalidInput
from regionlock.domain.inputs import is_ascii_digits
from regionlock.signing.unlock import (
    CHALLENGE_DIGITS,
    CODE_DIGITS,
    code_matches,
    normalize_challenge,
    normalize_code,
    unlock_code,
)

FUZZ = settings(max_examples=400, deadline=None)
SECRET = hashlib.sha256(b"regionlock fuzz unlock secret").digest()

# Decimal digits of other systems, each standing for 0-9: Arabic-Indic, extended Arabic-Indic,
# Devanagari, fullwidth, mathematical bold; and superscripts, which `isdigit()` takes.
OTHER_DIGITS = [
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
    "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",
    "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f",
    "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",
    "".join(chr(0x1D7CE + i) for i in range(10)),
    "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079",
]
_ascii_digits = st.text("0123456789", min_size=1, max_size=12)
_typed = (
    texts(16)
    | _ascii_digits
    | st.text("0123456789- \t\n\u00a0\u2007" + "".join(OTHER_DIGITS), max_size=14)
)


def spelled(digits: str, system: str) -> str:
    """ASCII `digits` written in another digit system."""
    return digits.translate(str.maketrans("0123456789", system))


def grouped(digits: str, at: int, dash: bool, pad: str) -> str:
    return f"{pad}{digits[:at]}{'-' if dash else ''}{digits[at:]}{pad}"


@FUZZ
@given(_typed)
def test_any_typed_challenge_or_code_is_ascii_digits_or_refused(text: str) -> None:
    for normalize, n in ((normalize_challenge, CHALLENGE_DIGITS), (normalize_code, CODE_DIGITS)):
        try:
            digits = normalize(text)
        except InvalidInput:
            continue
        assert len(digits) == n and is_ascii_digits(digits)


@FUZZ
@given(_typed, _typed)
def test_any_typed_pair_is_a_code_a_match_or_refused(challenge: str, code: str) -> None:
    try:
        expected = unlock_code(SECRET, challenge)
    except InvalidInput:
        # A code that is no code is refused first (False), whatever the challenge.
        with contextlib.suppress(InvalidInput):
            assert code_matches(SECRET, challenge, code) is False
        return
    assert len(expected) == CODE_DIGITS + 1 and expected[5] == "-"
    assert is_ascii_digits(expected.replace("-", ""))
    try:
        typed = normalize_code(code)
    except InvalidInput:
        typed = None
    assert code_matches(SECRET, challenge, code) is (typed == expected.replace("-", ""))
    assert code_matches(SECRET, challenge, expected)


@FUZZ
@given(
    st.text("0123456789", min_size=CHALLENGE_DIGITS, max_size=CHALLENGE_DIGITS),
    st.booleans(),
    st.sampled_from(["", " ", "  "]),
)
def test_a_challenge_reads_the_same_however_it_is_grouped(
    digits: str, dash: bool, pad: str
) -> None:
    code = unlock_code(SECRET, grouped(digits, 4, dash, pad))
    assert code == unlock_code(SECRET, digits)
    assert code_matches(SECRET, digits, grouped(code.replace("-", ""), 5, not dash, pad))


@FUZZ
@given(
    st.text("0123456789", min_size=CHALLENGE_DIGITS, max_size=CHALLENGE_DIGITS),
    st.sampled_from(OTHER_DIGITS),
    st.booleans(),
)
def test_digits_of_other_systems_are_refused(digits: str, system: str, dash: bool) -> None:
    """Never read as the ASCII digits they stand for, never a UnicodeEncodeError."""
    challenge = grouped(spelled(digits, system), 4, dash, "")
    with pytest.raises(InvalidInput):
        normalize_challenge(challenge)
    with pytest.raises(InvalidInput):
        unlock_code(SECRET, challenge)
    code = unlock_code(SECRET, digits)
    assert not code_matches(SECRET, digits, spelled(code, system))
    with pytest.raises(InvalidInput):
        normalize_code(spelled(code, system))
