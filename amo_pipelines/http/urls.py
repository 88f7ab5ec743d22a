"""Where the account lives: base URL validation and path building.

A base URL often comes from outside (a webhook's ``account[_links][self]``, the ``referer`` of
an OAuth redirect, a database row), so it is checked before any token is attached to a
request bound for it. :func:`parse_account_host` is the strict check for such values: only
``<subdomain>.amocrm.ru``, ``.amocrm.com`` or ``.kommo.com`` over https pass.
"""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

from ..errors import InvalidInputError

DOMAINS = ("amocrm.ru", "amocrm.com", "kommo.com")
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# An API path: absolute, segments of unreserved characters only (no dot segments, no
# percent-escapes, no query or fragment), so it can not point anywhere but where it says.
# One or more "/segment"s of letters, digits, _ and -: no dots, escapes, query or "//".
_PATH = re.compile(r"(?:/[A-Za-z0-9_-]+)+")


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
        check_subdomain(subdomain)
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


def check_subdomain(subdomain: object, where: str = "subdomain") -> str:
    if (
        not isinstance(subdomain, str)
        or len(subdomain) > 63  # one DNS label
        or not _SUBDOMAIN.fullmatch(subdomain)
    ):
        raise InvalidInputError("must be lower-case letters, digits and hyphens", field=where)
    return subdomain


def parse_account_host(value: object) -> URL:
    """The account origin named by an untrusted value, or :class:`InvalidInputError`.

    Accepts what amoCRM sends about an account: a host (``example.amocrm.ru``, the
    ``referer`` of an OAuth redirect) or an origin (``https://example.kommo.com``, a
    webhook's ``account[_links][self]``), with an optional trailing slash. Anything else
    (another domain, ``http``, a port, credentials, a path, upper case) is refused, so a
    forged value can not send the client's token to a foreign host.
    """
    if not isinstance(value, str) or not value or len(value) > 300:
        raise InvalidInputError("must be an account host like x.amocrm.ru", field="host")
    text = value[len("https://") :] if value.startswith("https://") else value
    text = text[:-1] if text.endswith("/") else text
    subdomain, _, domain = text.partition(".")
    if domain not in DOMAINS or len(subdomain) > 63 or not _SUBDOMAIN.fullmatch(subdomain):
        raise InvalidInputError(
            f"must be <subdomain>.{{{','.join(DOMAINS)}}} over https", field="host"
        )
    return URL.build(scheme="https", host=f"{subdomain}.{domain}")


def check_path(path: object) -> str:
    """An API path the client may send to: ``/segment/segment...`` of letters, digits, ``_``
    and ``-`` (ids are formatted from ints before they get here)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidInputError("must be an absolute path like /api/v4/...", field="path")
    if not _PATH.fullmatch(path):
        raise InvalidInputError(
            "must consist of segments of letters, digits, _ and - (no dots, escapes, "
            "query or fragment)",
            field="path",
        )
    return path
