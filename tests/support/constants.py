"""The API's paths and the ids of the account every emulator is seeded with.

One definition each: the emulator's seed (``amo_pipelines/emulator``) is the account of the
API pages' examples, so these ids are also the ones in ``fixtures/spec_examples.json``.
"""

from __future__ import annotations

PIPELINES = "/api/v4/leads/pipelines"
TOKEN_PATH = "/oauth2/access_token"

# The seeded main pipeline and its statuses: incoming leads, then the first two custom ones.
MAIN, INCOMING, FIRST, SECOND = 3177727, 32392156, 32392159, 32392165
MAIN_STATUSES = f"{PIPELINES}/{MAIN}/statuses"

# The account of the MockTransport tests (``subdomain="example"``).
ACCOUNT = "example.amocrm.ru"
# GET /leads/pipelines of an account with none.
NO_PIPELINES = {"_total_items": 0, "_embedded": {"pipelines": []}}
