"""Keep a database URL's password out of every message.

libpq quotes the text it could not parse ("missing "=" after "u:s3cret@h/db"
in connection info string"), so an error about a malformed ``DATABASE_URL``
would print its password to the terminal, a log or the dashboard. ``scrub``
removes the URL itself and anything that looks like its password from a
message, whether or not the URL can be parsed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg2
import psycopg2.extensions

MASK = "***"

#: user:password@ in a URI, and password=... in a key/value DSN (quoted or not).
_URI_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]*)@")
_KV_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def secrets_of(url: str) -> list[str]:
    """Every form in which the URL's password could appear in a message, longest first."""
    found: set[str] = set()
    for match in _URI_PASSWORD.finditer(url):
        found.add(match.group(1))
    for match in _KV_PASSWORD.finditer(url):
        found.add(match.group(1).strip("'"))
    try:
        password = psycopg2.extensions.parse_dsn(url).get("password")
    except psycopg2.Error:
        password = None
    if password:
        found.add(password)
    forms = {f for s in found if s for f in (s, unquote(s))}
    return sorted(forms, key=len, reverse=True)


def without_userinfo(url: str) -> str:
    """``scheme://host:port/path`` of a URL, its user and password dropped, for messages."""
    if "//" not in url:  # not a URL at all: show only what follows a user part
        return url.rsplit("@", 1)[-1] if "@" in url else "<url>"
    return re.sub(r"//[^@/?#\s]*@", "//", url)


def scrub(text: str, url: str) -> str:
    """``text`` without the URL and without its password (each replaced by ***)."""
    if url:
        text = text.replace(url, "<DATABASE_URL>")
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text
