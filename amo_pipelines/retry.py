"""The import path ``amo_pipelines.retry`` kept for code written against earlier READMEs; the
retry policy lives in :mod:`amo_pipelines.http.retry` and is exported from the package."""

from .http.retry import NO_RETRY, RetryPolicy

__all__ = ["NO_RETRY", "RetryPolicy"]
