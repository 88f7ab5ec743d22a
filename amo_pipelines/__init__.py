"""amo_pipelines: an async SDK for the amoCRM / Kommo API v4 leads pipelines and statuses."""

from __future__ import annotations

import logging

from .auth import AuthProvider, LongLivedToken, OAuth2, TokenEndpoint
from .client import AmoClient
from .constants import (
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
from .inputs import DescriptionInput, NewPipeline, NewStatus, PipelineUpdate, StatusUpdate
from .models import Pipeline, Status, StatusDescription
from .ratelimit import RateLimitStoreError
from .tokens import FileTokenStore, MemoryTokenStore, TokenSet, TokenStore
from .transport import AiohttpTransport, Request, Response, Transport
from .urls import parse_account_host

__version__ = "0.1.0"

logging.getLogger("amo_pipelines").addHandler(logging.NullHandler())

__all__ = [
    "LOST_STATUS_ID",
    "MAX_CUSTOM_STATUSES_PER_PIPELINE",
    "MAX_DESCRIPTIONS_PER_STATUS",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_ITEMS_PER_REQUEST",
    "MAX_PIPELINES_PER_ACCOUNT",
    "MAX_STATUSES_PER_PIPELINE",
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
    "ClientClosedError",
    "DescriptionInput",
    "DescriptionLevel",
    "FileTokenStore",
    "ForbiddenError",
    "GatewayTimeoutError",
    "InvalidInputError",
    "LongLivedToken",
    "MemoryTokenStore",
    "NewPipeline",
    "NewStatus",
    "NotFoundError",
    "OAuth2",
    "PaymentRequiredError",
    "Pipeline",
    "PipelineUpdate",
    "RateLimitStoreError",
    "RateLimitedError",
    "Request",
    "RequestNotSentError",
    "RequestTimeoutError",
    "Response",
    "ResponseLostError",
    "ResponseTooLargeError",
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
