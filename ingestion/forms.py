"""The web-form field model, shared by the collector and the ``import-forms`` backfill.

One validator for both paths means a submission is landed with the same shape whether it came in live or
from a previous system's export. Values are stored as submitted (raw data is never edited); trimming and
lower-casing emails happens downstream in dbt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

STRING_FIELDS = (
    "email", "first_name", "last_name", "organization", "org_type", "phone", "webinar_code",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "referrer", "page_url",
)
BOOL_FIELDS = ("consent",)
KNOWN_FIELDS = frozenset(STRING_FIELDS + BOOL_FIELDS)

# Unknown fields are kept under ``extra`` (a new hidden field must not be lost before the config knows it),
# but a submission cannot smuggle an unbounded number of them into the warehouse.
MAX_EXTRA_FIELDS = 50

TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
FALSE_WORDS = frozenset({"false", "off", "no", "0"})

EMAIL_MAX_LENGTH = 254
EMAIL_LOCAL_MAX_LENGTH = 64
# What the warehouse's trim() removes when it normalizes an email: the Unicode space separators.
EMAIL_PADDING = " \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
# An address a mail server and the destinations accept, checked lower-cased: a dot-atom local part (no
# quoted local part: no form needs one and few systems take it), one "@", then a domain of at least two
# labels (letters, digits and inner hyphens, at most 63 characters) ending in an alphabetic top-level
# domain or an IDN one in its ASCII form ("xn--..."). ASCII only: a Unicode domain must be given in that
# form, else the same mailbox would be keyed twice. Kept free of look-arounds so that SQL (RE2) can run it.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLD = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{0,58}[a-z0-9])"
_EMAIL_RE = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+{_TLD}")


class FieldError(ValueError):
    """A submission that cannot be landed as is; ``field`` names the offending field for the client."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def is_valid_email(value: str) -> bool:
    """Syntax check of the address as the warehouse keys the contact by it (trimmed, lower-cased).

    Surrounding spaces are tolerated (a trailing space typed into a form must not lose the lead); the value
    is stored as typed and normalized downstream. Length limits: 64 for the local part, 254 in all."""
    candidate = value.strip(EMAIL_PADDING).lower()
    local, _, _ = candidate.partition("@")
    return (len(candidate) <= EMAIL_MAX_LENGTH and len(local) <= EMAIL_LOCAL_MAX_LENGTH
            and _EMAIL_RE.fullmatch(candidate) is not None)


def parse_consent(value: object) -> bool | None:
    """A JSON bool, or one of the words a checkbox or a CSV export sends; empty or absent means not given."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "":
            return None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise FieldError("consent", "consent must be a boolean (true/false, on/off, yes/no, 1/0)")


def parse_fields(data: Mapping[str, object]) -> dict[str, object]:
    """Validate the form fields of one submission (email excluded, see ``check_email``).

    Returns the landed ``fields`` object: every known field (None when absent) plus ``extra`` holding the
    unknown ones. Raises ``FieldError`` naming the field on a wrong type or a bad consent value.
    """
    fields: dict[str, object] = {}
    for name in STRING_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise FieldError(name, f"{name} must be a string")
        fields[name] = value
    fields["consent"] = parse_consent(data.get("consent"))
    extra = {key: value for key, value in data.items() if key not in KNOWN_FIELDS}
    if len(extra) > MAX_EXTRA_FIELDS:
        raise FieldError("extra", f"too many unknown fields ({len(extra)}; at most {MAX_EXTRA_FIELDS})")
    fields["extra"] = extra
    return fields


def check_email(fields: Mapping[str, object]) -> None:
    """Raise ``FieldError("email", ...)`` when the email is missing or not an email address."""
    email = fields.get("email")
    if email is None or (isinstance(email, str) and email.strip() == ""):
        raise FieldError("email", "email is required")
    if not is_valid_email(str(email)):
        raise FieldError("email", "email is not a valid email address")
