"""amo_pipelines: an async SDK for the amoCRM / Kommo API v4 leads pipelines and statuses."""

from __future__ import annotations

import logging

from ._version import __version__
from .auth.oauth import AuthProvider, LongLivedToken, OAuth2, TokenEndpoint
from .auth.tokens import FileTokenStore, MemoryTokenStore, TokenSet, TokenStore
from .budget.file import FileWindowStore
from .budget.limiter import Limit, RateLimiter, RateLimitStoreError
from .budget.windows import InMemoryWindowStore
from .client import AmoClient
from .errors import (
    AccountBlockedError,
    AmoError,
    ApiError,
    AuthorizationRequiredError,
    BadRequestError,
    BatchError,
    ClientClosedError,
    ForbiddenError,
    GatewayTimeoutError,
    InvalidInputError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    RequestNotSentError,
    RequestTimeoutError,
    ResponseLostError,
    ResponseTooLargeError,
    ServerError,
    SkippedError,
    TokenRevokedError,
    TokenStoreError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    UnknownOutcomeError,
    UnprocessableEntityError,
    ValidationIssue,
    WrongEventLoopError,
)
from .http.chain import Handler, Policy
from .http.circuit import CircuitBreaker
from .http.clock import FakeClock
from .http.config import ClientConfig
from .http.retry import NO_RETRY, RetryPolicy
from .http.urls import parse_account_host
from .model.constants import (
    LOST_STATUS_ID,
    MAX_CUSTOM_STATUSES_PER_PIPELINE,
    MAX_DESCRIPTION_LENGTH,
    MAX_DESCRIPTIONS_PER_STATUS,
    MAX_ITEMS_PER_REQUEST,
    MAX_PIPELINES_PER_ACCOUNT,
    MAX_STATUSES_PER_PIPELINE,
    WON_STATUS_ID,
    DescriptionLevel,
    StatusColor,
    StatusType,
)
from .model.inputs import DescriptionInput, NewPipeline, NewStatus, PipelineUpdate, StatusUpdate
from .model.models import Pipeline, Status, StatusDescription
from .testing import MockTransport
from .transport import AiohttpTransport, Request, Response, Transport

logging.getLogger("amo_pipelines").addHandler(logging.NullHandler())

__all__ = [
    "LOST_STATUS_ID",
    "MAX_CUSTOM_STATUSES_PER_PIPELINE",
    "MAX_DESCRIPTIONS_PER_STATUS",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_ITEMS_PER_REQUEST",
    "MAX_PIPELINES_PER_ACCOUNT",
    "MAX_STATUSES_PER_PIPELINE",
    "NO_RETRY",
    "WON_STATUS_ID",
    "AccountBlockedError",
    "AiohttpTransport",
    "AmoClient",
    "AmoError",
    "ApiError",
    "AuthProvider",
    "AuthorizationRequiredError",
    "BadRequestError",
    "BatchError",
    "CircuitBreaker",
    "ClientClosedError",
    "ClientConfig",
    "DescriptionInput",
    "DescriptionLevel",
    "FakeClock",
    "FileTokenStore",
    "FileWindowStore",
    "ForbiddenError",
    "GatewayTimeoutError",
    "Handler",
    "InMemoryWindowStore",
    "InvalidInputError",
    "Limit",
    "LongLivedToken",
    "MemoryTokenStore",
    "MockTransport",
    "NewPipeline",
    "NewStatus",
    "NotFoundError",
    "OAuth2",
    "PaymentRequiredError",
    "Pipeline",
    "PipelineUpdate",
    "Policy",
    "RateLimitStoreError",
    "RateLimitedError",
    "RateLimiter",
    "Request",
    "RequestNotSentError",
    "RequestTimeoutError",
    "Response",
    "ResponseLostError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "SkippedError",
    "Status",
    "StatusColor",
    "StatusDescription",
    "StatusType",
    "StatusUpdate",
    "TokenEndpoint",
    "TokenRevokedError",
    "TokenSet",
    "TokenStore",
    "TokenStoreError",
    "Transport",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "UnknownOutcomeError",
    "UnprocessableEntityError",
    "ValidationIssue",
    "WrongEventLoopError",
    "__version__",
    "parse_account_host",
]
