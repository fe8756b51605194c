"""What a shared report must not carry: secrets (API keys, hub tokens), the user's name and home folder.
Pure: the caller says which secrets, home and user there are."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Hugging Face tokens, and a bearer credential wherever a command line or header shows one.
_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
SECRET = "[redacted]"
USER = "[user]"


def redact(text: str, secrets: Iterable[str], home: str | None, user: str | None) -> str:
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, SECRET)
    text = _TOKEN.sub(SECRET, text)
    text = _BEARER.sub(lambda m: m.group(1) + SECRET, text)
    if home and home not in ("/", ""):
        text = re.sub(re.escape(home.rstrip("/")) + r"(?=/|\b|$)", "~", text)
    # "root" names no person, and is a word reports use (the root of a tree, run as root).
    if user and len(user) >= 2 and user != "root":
        text = re.sub(rf"(?<![A-Za-z0-9_.-]){re.escape(user)}(?![A-Za-z0-9_-])", USER, text)
    return text
