"""Where the account lives: base URL validation and path building.

A base URL often comes from outside (a webhook's ``account[_links][self]``, a database row),
so it is checked before any token is attached to a request bound for it.
"""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

from .errors import InvalidInputError

DOMAINS = ("amocrm.ru", "amocrm.com", "kommo.com")
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def account_url(
    *, base_url: str | URL | None = None, subdomain: str | None = None, domain: str = "amocrm.ru"
) -> URL:
    """The account's origin, e.g. ``https://example.amocrm.ru``.

    Give either ``base_url`` (https, or http to a loopback host such as the emulator) or a
    ``subdomain`` of one of :data:`DOMAINS`.
    """
    if (base_url is None) == (subdomain is None):
        raise InvalidInputError("give either base_url or subdomain", field="base_url")
    if subdomain is not None:
        if not isinstance(subdomain, str) or not _SUBDOMAIN.fullmatch(subdomain):
            raise InvalidInputError(
                "must be lower-case letters, digits and hyphens", field="subdomain"
            )
        if domain not in DOMAINS:
            raise InvalidInputError(f"must be one of {', '.join(DOMAINS)}", field="domain")
        return URL.build(scheme="https", host=f"{subdomain}.{domain}")
    try:
        url = URL(base_url) if isinstance(base_url, str) else base_url
    except (TypeError, ValueError) as e:
        raise InvalidInputError("is not a URL", field="base_url") from e
    if not isinstance(url, URL) or not url.is_absolute() or not url.host:
        raise InvalidInputError(
            "must be an absolute URL like https://x.amocrm.ru", field="base_url"
        )
    if url.user is not None or url.password is not None:
        raise InvalidInputError("must not carry credentials", field="base_url")
    if url.query_string or url.fragment or url.path not in ("", "/"):
        raise InvalidInputError("must be the account's origin, without a path", field="base_url")
    if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.host)):
        raise InvalidInputError("must use https (http only to a loopback host)", field="base_url")
    return url.origin()
