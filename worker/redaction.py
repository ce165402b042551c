"""Keeping passwords out of everything the service prints or logs.

Connection strings carry passwords, and driver messages may quote a connection
string (psycopg quotes one it cannot parse; a traceback or a retry log repeats
the message). So every message that leaves the process goes through `redact`:
a password in a URL (`//user:password@`) or in a libpq `password=` parameter
is masked wherever it appears, and so is each password of the configured
connection strings (`secrets_in`), however a driver has cut the string up.
"""

import json
import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>//[^/\s:@'\"]*:)(?P<secret>[^@\s'\"/]+)(?=@)")
_PARAMETER_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s'\"&]+)", re.IGNORECASE
)


def secrets_in(*connection_strings: str) -> tuple[str, ...]:
    """The passwords `connection_strings` carry: as written, decoded, and as JSON writes them."""
    found: set[str] = set()
    for text in connection_strings:
        for pattern in (_URL_PASSWORD, _PARAMETER_PASSWORD):
            for match in pattern.finditer(text):
                written = match["secret"]
                if written.startswith("'") and written.endswith("'") and len(written) > 1:
                    written = written[1:-1].replace("\\'", "'").replace("\\\\", "\\")
                for secret in (written, unquote(written)):
                    found |= {secret, json.dumps(secret)[1:-1]}
    found.discard("")
    # Longest first, so a password that contains another is masked whole.
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every password in it masked: those of URLs and parameters, and `secrets`."""
    text = _URL_PASSWORD.sub(lambda match: match["head"] + MASK, text)
    text = _PARAMETER_PASSWORD.sub(lambda match: match["head"] + MASK, text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
