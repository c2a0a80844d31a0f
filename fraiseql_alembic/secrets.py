"""Mask passwords in database URLs and in any text that may quote one."""

from __future__ import annotations

import re

#: The password of a URL is everything between the user's ``:`` and the LAST ``@``
#: before the host (the ``@`` followed by a host part holding no ``@`` up to ``/``,
#: ``?``, ``#`` or the end), so an unencoded ``@`` in it (``app:p@ss@host``) is masked
#: whole.  Such a URL is refused before connecting (settings.sqlalchemy_url).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>\S*?)"
    r"(?P<tail>@)(?=[^@\s/?#]*(?:[/?#\s]|$))"
)
#: ``password=...`` and ``sslpassword=...`` (a client key's passphrase), in conninfo
#: strings or URL query parameters (which end at ``&``).
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]+)", re.I
)


def mask_url(url: str) -> str:
    """Return ``url`` with its passwords replaced by ``***``."""
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>***\g<tail>", url))


def redact(text: str, *secrets: str | None) -> str:
    """Mask URL passwords, ``password=...`` pairs and each given secret in ``text``."""
    text = _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)
    text = _KEYWORD_PASSWORD.sub(r"\g<head>***", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def password_of(url: str | None) -> str | None:
    """Return the password embedded in ``url``, if any (used to scrub free text)."""
    if not url:
        return None
    match = _URL_PASSWORD.search(url)
    return match.group("pw") if match and match.group("pw") else None
