"""The import path ``amo_pipelines.ratelimit`` kept for code written against earlier READMEs;
the limiter lives in :mod:`amo_pipelines.budget.limiter` and is exported from the package."""

from .budget.limiter import Limit, RateLimiter, RateLimitStoreError

__all__ = ["Limit", "RateLimitStoreError", "RateLimiter"]
