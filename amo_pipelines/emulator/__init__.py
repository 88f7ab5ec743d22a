"""An embedded amoCRM / Kommo account serving the API v4 leads pipelines and statuses endpoints.

Self-contained on purpose: it imports only the standard library, aiohttp, attrs and yarl, and
nothing else from ``amo_pipelines`` (the SDK never imports it either), so the SDK and its test
double can not share a bug.

Usage::

    async with Emulator(EmulatorConfig(token_rps=None)) as emu:
        headers = {"Authorization": f"Bearer {emu.admin_token}"}
        ...  # talk HTTP to emu.url; inspect emu.state, emu.stats, emu.request_log
        emu.faults.add(Fault.status(503), method="POST", path="/api/v4/leads/pipelines")

Or as a server: ``python -m amo_pipelines.emulator --port 8080 --seed 1 --fault-rate 500=0.05``.

What the spec states is enforced with its documented status and body. Where the spec is
silent or contradicts itself, the emulator takes the strictest plausible reading; every such
choice is listed here.

Request pipeline (every request, in this order)
-----------------------------------------------
1. Logged in ``emu.request_log`` on arrival (its body is read first), counted in
   ``emu.stats.requests``.
2. Account blocked: 403 ``text/html`` page, outcome ``"blocked"``. Nothing else happens.
3. Rate limits (sliding windows of ``window`` seconds): the request is recorded in its token's
   window (keyed by the presented bearer string, so missing and unknown tokens are limited
   too; a missing token shares the key ``""``) and in the account window, *even when it is
   then rejected*: a client that keeps hammering stays limited. More than ``token_rps`` (then
   ``account_rps``) requests in a window: 429 ``application/problem+json``
   ``{"title": "Too Many Requests", "type": "https://httpstatus.es/429", "status": 429,
   "detail": ..., "retry_after": <float seconds, rounded up to ms>}``, or an HTML page with
   ``html_429``. No ``Retry-After`` header (none is documented). ``retry_after`` is when every
   exceeded window has a free slot again, counting the rejected requests. Limits apply before
   authentication, so even 401s are rate limited.
4. Blocking: more than ``block_after`` limiter 429s within ``block_window`` seconds block the
   account; the 429 that crosses the line is still sent as a 429, every later request gets the
   403 page until ``emu.reset_limits()``. Scripted 429 faults count neither toward blocking nor
   ``stats.rate_limited``.
5. Auth: no ``Authorization: Bearer <token>`` header, an unknown token or an expired one (see
   ``state.tokens``, expiry on the emulator clock): 401 problem+json. A POST/PATCH/DELETE with
   a non-admin token: 403 problem+json, whatever the path.
6. Faults (at most one per request; scripted first, then a seeded random draw) and latency.
   A faulted request has already counted in the rate windows.
7. The endpoint.

Endpoints and responses
-----------------------
* Success bodies are ``application/hal+json``; ``_links.self.href`` uses the request's own
  origin (``scheme://host:port`` from its Host header). Creates answer 200 (as documented),
  deletes 204 with no body.
* Pipelines collections (GET list, POST) carry ``_total_items``, ``_links`` and
  ``_embedded.pipelines``. Statuses collections (GET list, POST) carry ``_total_items`` and
  ``_embedded.statuses`` with **no** collection ``_links``, exactly like the spec's examples.
* Pipeline items always include ``is_archive`` (false: archiving is not emulated), as in the
  English create example; the Russian create example omitting it is treated as a doc slip.
* Every pipeline always embeds all its statuses in sort order, the incoming one included even
  when ``is_unsorted_on`` is false (the Russian PATCH example omitting it is treated as a doc
  slip; the create example with ``is_unsorted_on: false`` shows it). Embedded statuses never
  carry ``descriptions``; ``with=descriptions`` is ignored on pipeline endpoints.
* Status GETs add ``descriptions`` (a list, maybe empty) only with ``with=descriptions``
  (comma-separated values; unknown values are ignored). Status POST and PATCH responses always
  include ``descriptions``. Descriptions are ordered newbie, candidate, master.
* ``request_id`` is echoed on POSTed and PATCHed items and never stored; without one, POST
  items echo their index ("0", "1", ...) and PATCH echoes "0". A non-string ``request_id`` is a
  validation error.
* Any other path: 404 problem+json ``"Not found"``; a known path with another method: 405
  problem+json. HEAD is not served. Path ids that are not plain decimal digits are unknown ids:
  404 ``"Pipeline not found"`` / ``"Status not found"``; a status id that exists only in another
  pipeline is 404 too. Id lookups happen before the body is looked at.

Request bodies
--------------
* Checked in this order: an empty (or whitespace) body -> 400 ``"Request data can not be
  empty"``; ``Content-Type`` other than ``application/json`` (parameters such as charset
  allowed) -> 400 ``"Content-Type must be application/json"``; malformed JSON (including
  NaN/Infinity, invalid UTF-8) -> 400 ``"Request body is not valid JSON"``; ``null``, ``[]`` or
  ``{}`` -> 400 ``"Request data can not be empty"``; a batch POST body that is not an array, or
  a PATCH body that is not an object -> 400; more than 250 items -> 422 ``"Limit 250 per
  page"``; then per-item validation; then account limits. DELETE bodies are ignored.
* Validation failures: 400 ``validation-errors`` (title "Bad Request", detail "Request
  validation failed"), one entry per bad item keyed by its ``request_id`` (or index string; "0"
  for PATCH) with every error found in it. Error ``path`` is dotted
  (``name``, ``_embedded.statuses.1.color``, ``descriptions.0.level``; ``""`` for the whole
  item). Codes: ``FieldMissing`` (mandatory field absent; PATCH without any known field),
  ``InvalidType`` (wrong JSON type, null included; bools are not ints, 10.0 is not an int),
  ``NotBlank`` (empty or whitespace-only string), ``TooLong`` (names over 255 code points,
  descriptions over 1000), ``OutOfRange`` (sort outside 0..2147483647), ``NotSupportedChoice``
  (color outside the palette, unknown level, a status id other than 142/143 on pipeline
  create), ``UnexpectedField`` (any field the spec does not list for that request, e.g. ``id``
  or ``is_archive`` in a PATCH body, ``descriptions`` or ``request_id`` inside
  ``_embedded.statuses``), ``NotUnique`` (a level twice, 142/143 twice, two ``is_main: true``
  pipelines in one batch), ``TooMany`` (more than 3 descriptions), ``NotFound`` (unknown
  description id), ``Mismatch`` (description id whose level differs).
* Batches are all-or-nothing: any invalid item, or exceeding a limit, creates nothing.
* Account limits: a POST that would make more than 50 pipelines, or more than 100 statuses in
  a pipeline (system ones included), is rejected whole with 422 problem+json (detail "Limit of
  50 pipelines per account exceeded" / "Limit of 100 statuses per pipeline exceeded").

Pipelines
---------
* Create needs name, sort, is_main, is_unsorted_on. Regular statuses in
  ``_embedded.statuses`` need name and sort (color optional); items with ``id`` must be 142 or
  143 and carry ``name`` (required) and nothing else.
* A new pipeline gets its incoming status (type 1, sort 10, ``#c1c1c1``, "Неразобранное", not
  editable), 142 ("Успешно реализовано", ``#CCFF66``, sort 10000) and 143 ("Закрыто и не
  реализовано", ``#D5D8DB``, sort 11000), both not editable, plus the given regular statuses.
* Pipeline ``sort`` is stored as given (as the English examples show; the Russian PATCH
  example 100 -> 1000 is treated as a doc slip); lists are ordered by (sort, id).
* Exactly one main pipeline: making one main (create or PATCH) demotes the previous one.
  PATCH ``is_main: false`` on the main pipeline promotes the next pipeline by (sort, id); on
  the only pipeline it is refused with 400 problem+json. Two ``is_main: true`` items in one
  batch are a validation error.
* Names need not be unique (pipelines or statuses).
* DELETE refuses, with problem+json: the last pipeline (400 "The last pipeline can not be
  deleted"), the main pipeline (400 "The main pipeline can not be deleted": make another one
  main first), a pipeline with leads in any status or with sources (422 "Pipeline has leads or
  sources", per the older Russian page). ``state.set_sources()`` sets sources.

Statuses
--------
* Ids are unique account-wide except 142/143, which every pipeline shares.
* Sort is an order, not a stored number: after any create, PATCH of ``sort`` or delete, the
  regular statuses are ordered by sort and renumbered 20, 30, 40, ...; the incoming status
  stays at 10 and 142/143 at 10000/11000 whatever sort is requested (regular statuses always
  sit between them). Ties: statuses not being created/moved first, then the request's order;
  a PATCHed status with sort equal to another's goes after it.
* Color is optional on create (default ``#fffeb2``, the first palette color) and must be one of
  the 21 palette colors, compared exactly (lower case). Seeded statuses keep the spec
  examples' non-palette colors.
* The incoming status, 142 and 143 are not editable or deletable: PATCH -> 400 "Status is not
  editable", DELETE -> 400 "Status can not be deleted" (problem+json), checked before the body.
* DELETE moves the status's leads to the pipeline's first remaining status (lowest sort:
  the incoming status), or to the first regular status when the pipeline has incoming leads
  turned off and one remains.
* Descriptions: at most 3, unique levels among newbie/candidate/master, non-blank text of at
  most 1000 code points (emoji allowed). On create: ``level`` and ``description`` only. On
  PATCH: ``id`` + ``level`` + ``description`` edits (updated_at now, updated_by 0); no ``id``
  creates the level's description, or replaces an existing one of that level by a new
  description (new id, created_by 0, updated_by null); ``id`` + ``level`` without
  ``description`` deletes. ``level`` is always required. Timestamps are UTC from
  ``EmulatorConfig.wall_clock``; created_by is 0 (API) for everything made through the API.

Faults
------
* ``emu.faults.add(Fault.status(503), method="POST", path="/api/v4/leads/pipelines*",
  times=1)`` faults the next matching requests (``path``: exact, glob where ``*`` also matches
  ``/``, or a compiled regex; ``times=None`` forever). Kinds: ``Fault.status(429|500|502|503|
  504)`` (500: problem+json with ``trace_id``; 502/503/504: nginx-style HTML; 429: the limiter's
  body with ``retry_after=``), nothing applied unless ``commit=True`` (then the request is
  processed and its response replaced); ``Fault.latency(s)``; ``Fault.reset()`` (TCP RST
  before processing, nothing applied); ``Fault.commit_then_drop()`` (processed, then the
  connection is closed with no response).
* ``EmulatorConfig.fault_rates`` draws faults at random ("500", "502", "503", "504", "reset",
  "commit-then-drop"; random status faults never commit), and ``latency`` adds a uniform random
  delay; both apply only to requests that got past the block, the rate limits and auth, and
  both come from generators seeded by ``seed`` (one draw per such request, scripted fault or
  not), so a seed and a request sequence always give the same faults.
* Every injected fault is counted in ``emu.stats.faults`` by kind; the log entry's outcome is
  ``"fault:<kind>"`` (latency faults keep the normal outcome and set ``entry.latency``). Dropped
  requests have ``status`` None; those that were processed first record the status the real
  response would have had in ``processed_status``.
* Beware: aiohttp's ClientSession silently retries GET/PUT/DELETE once when the connection
  drops, so a single ``reset`` on a DELETE shows up as two log entries and no client error.

Accounts and tokens
-------------------
* ``seed_account=True``: main pipeline 3177727 "Воронка" (sort 1, unsorted on) with incoming
  32392156, "Первичный контакт" 32392159 (with the three descriptions 489/491/493 of the spec's
  list example), "Принимают решение" 32392165, 142 and 143. ``False``: the same pipeline with
  only its three system statuses (an account always has a pipeline). New ids continue from
  3177728 (pipelines), 32392166 (statuses) and 494 (descriptions).
* ``state.tokens`` maps token -> ``TokenInfo(admin, user_id, expires_at)``; the admin and user
  tokens are derived from ``seed`` unless given in the config.

OAuth 2.0 (``oauth``)
---------------------
* ``POST /oauth2/access_token`` serves the ``authorization_code`` and ``refresh_token`` grants
  for the clients in ``emu.oauth.clients`` (the config's ``oauth_client_id`` /
  ``oauth_client_secret`` / ``oauth_redirect_uri``; more with ``emu.oauth.register()``).
  ``emu.issue_code()`` stands in for the consent screen; ``emu.issue_tokens()`` hands out a
  token pair without it. Success: 200 ``application/json``
  ``{"token_type": "Bearer", "expires_in": ..., "access_token": ..., "refresh_token": ...}``;
  the access token joins ``state.tokens`` and expires after ``access_token_lifetime`` on the
  emulator clock.
* Its own pipeline: logged and counted (``stats.requests``, ``stats.token_requests``; successes
  in ``stats.token_grants`` by grant type), 403 page while the account is blocked, otherwise
  **no rate limit** (the documented limits are for the API) and no bearer token. Only scripted
  faults whose ``path`` names it apply (not path-less ones, never random draws: a refresh lost at
  random would lock a whole run out). Methods other than POST: 405.
* Parameters: a JSON object (as amoCRM documents; non-string values of the known parameters
  are malformed) or an ``application/x-www-form-urlencoded`` form (RFC 6749; a repeated
  parameter is malformed); any other Content-Type or an empty body: 400. ``redirect_uri`` is
  required by both grants and must equal the registered one.
* Errors are problem+json with a ``hint`` where the server has one, shaped after the OAuth
  server amoCRM runs (League): missing or non-string parameter 400 ``"Check the `<name>`
  parameter"``; unknown ``grant_type`` 400; unknown client, wrong secret or another
  ``redirect_uri``: 401 ``"Client authentication failed"`` (no hint). Codes: unknown 400
  ``"Cannot decrypt the authorization code"``, expired (``code_lifetime``, 20 minutes) 400
  ``"Authorization code has expired"``, used 400 ``"Authorization code has been revoked"``,
  another client's 400 ``"Authorization code was not issued to this client"``. Refresh
  tokens: 401 with ``"Cannot decrypt the refresh token"``, ``"Token is not linked to
  client"``, ``"Token has expired"`` (``refresh_token_lifetime``, 3 months) or, for one used
  already, ``"Token has been revoked"``.
* Single use: a code and a refresh token work once. A refresh also revokes the access token
  issued with the used refresh token (requests still carrying it get 401 "Token is invalid"),
  as League does. Reusing a code does not revoke what it issued (RFC 6749 only recommends it).

Modules
-------
``config`` (EmulatorConfig), ``server`` (Emulator), ``gateway`` (the per-request pipeline
above), ``oauth`` (the token endpoint and its own pipeline), ``app`` (the endpoints),
``validation``/``plans``/``rules`` (request checks), ``state`` (the account), ``render``
(response bodies), ``limits``, ``faults``, ``records`` (log and stats), ``__main__`` (the
command line server).
"""

from __future__ import annotations

from .config import EmulatorConfig
from .faults import Fault, FaultInjector, FaultKind, ScriptedFault
from .oauth import OAuthClient, OAuthServer
from .records import RequestLogEntry, Stats
from .server import Emulator
from .state import AccountState, Description, Pipeline, Status, TokenInfo

__all__ = [
    "AccountState",
    "Description",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "FaultInjector",
    "FaultKind",
    "OAuthClient",
    "OAuthServer",
    "Pipeline",
    "RequestLogEntry",
    "ScriptedFault",
    "Stats",
    "Status",
    "TokenInfo",
]
