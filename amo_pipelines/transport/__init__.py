"""Transports move a :class:`Request` to the server and bring back a :class:`Response`."""

from .aiohttp import AiohttpTransport
from .base import Request, Response, Transport, sealed_headers

__all__ = ["AiohttpTransport", "Request", "Response", "Transport", "sealed_headers"]
