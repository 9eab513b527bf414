"""Takedown lists: reading a list of URLs, domains or doc ids, checking every line, and the keys they match by.

A URL matches by its key: host lower-cased (IDNA), a port only when not the scheme's default, the path
("/" when empty) and the query; the scheme (http or https) and the fragment do not count, so
``HTTP://Example.com/a#top`` and ``https://example.com/a`` are the same page. A domain matches a URL whose
host is the domain or one of its subdomains. Blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["urls", "domains", "doc_ids"]
KINDS: tuple[Kind, ...] = ("urls", "domains", "doc_ids")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")
_DOC_ID = re.compile(r"^[0-9a-f]{32}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN = 20


class ForgetUsageError(ValueError):
    """The command cannot start: a malformed list, a missing file, a bad option (exit status 2)."""


class ForgetError(RuntimeError):
    """The takedown could not be done (no lake there, say); nothing was changed (exit status 1)."""


@dataclass(frozen=True)
class TakedownList:
    """One list, read and checked: its kind, the keys it matches by, and where it came from (for the log)."""

    kind: Kind
    keys: frozenset[str]
    file: str
    sha256: str
    lines: int
    """Entries in the file (blank and comment lines left out)."""


def _host(host: str) -> str | None:
    """A host name as lower-case ASCII (IDNA), or None when it is not one."""
    host = host.strip().rstrip(".").lower()
    if not host:
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return ascii_host


def url_key(url: str | None) -> str | None:
    """The key a URL matches by (see the module), or None when ``url`` is not an http(s) URL with a host."""
    if not url or any(c.isspace() for c in url.strip()):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = _host(parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or host is None:
        return None
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{netloc}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def url_host(url: str | None) -> str | None:
    """The host of an http(s) URL, lower-case ASCII; None when there is none."""
    key = url_key(url)
    return None if key is None else key.split("/", 1)[0].split(":", 1)[0]


def domain_key(line: str) -> str | None:
    """A domain line (``example.com``, ``*.example.com`` or ``.example.com``) as its key, or None."""
    host = _host(line.removeprefix("*.").removeprefix("."))
    return host if host is not None and _DOMAIN.match(host) else None


def domains_of(host: str) -> list[str]:
    """The host and every parent domain of it with two labels or more (``a.b.example.com``: 3 keys)."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _key(kind: Kind, line: str) -> str | None:
    if kind == "urls":
        return url_key(line)
    if kind == "domains":
        return domain_key(line)
    doc_id = line.lower()
    return doc_id if _DOC_ID.match(doc_id) else None


_WHAT = {"urls": "an http(s) URL with a host", "domains": "a domain name such as example.com",
         "doc_ids": "a doc_id (32 hexadecimal digits)"}


def read_list(kind: Kind, path: str | Path) -> TakedownList:
    """Read and check a list file; raise ``ForgetUsageError`` naming each malformed line (nothing is removed)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ForgetUsageError(f"cannot read the list {path}: {err.strerror or err}") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ForgetUsageError(f"the list {path} is not UTF-8 text ({err})") from err
    keys: set[str] = set()
    bad: list[str] = []
    entries = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entries += 1
        key = _key(kind, line)
        if key is None:
            bad.append(f"line {number}: {line[:120]!r}")
        else:
            keys.add(key)
    if bad:
        more = f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise ForgetUsageError(
            f"{len(bad)} line(s) of {path} are not {_WHAT[kind]}; nothing was removed. Fix or remove them and run "
            "again:\n  " + "\n  ".join(bad[:_SHOWN]) + more)
    if not keys:
        raise ForgetUsageError(f"the list {path} has no entries (blank and # lines are skipped)")
    return TakedownList(kind, frozenset(keys), str(path), hashlib.sha256(data).hexdigest(), entries)
