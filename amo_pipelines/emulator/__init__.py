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

Many accounts at once: ``async with EmulatorFleet(20, config=EmulatorConfig(...)) as fleet:``
starts 20 independent ``Emulator``s (``fleet.accounts``), each on its own loopback port with
its own state, limits, tokens, stats and log; account ``i`` (0-based) has ``account_id =
config.account_id + i``, subdomain ``f"{config.subdomain}{i + 1}"``, port ``config.port + i``
(ephemeral ones for 0) and a seed derived from ``config.seed``. As a server:
``python -m amo_pipelines.emulator --accounts 20 --port 0 --accounts-file accounts.json``
(URLs on stdout, tokens only in the file, mode 0600, written once every account listens).

What the API pages say, no more and no less. Each rule below names its source in brackets:
``[ru § Section]`` is amoCRM's Russian page (the section headed so), ``[ru.txt § ...]`` its
older plain-text copy, ``[en § ...]`` Kommo's English page, ``[limits]`` amoCRM's wider
documentation of limits, OAuth and error bodies (outside the pages). ``[choice]`` marks the
emulator's own choice where the pages are silent; where a choice refuses something, an
``EmulatorConfig`` option (named in the bracket) turns it off, its default being the refusal.
Where the pages say nothing about a field, it is ignored rather than refused.

Request pipeline (every request, in this order)
-----------------------------------------------
1. Logged in ``emu.request_log`` on arrival (its body is read first), counted in
   ``emu.stats.requests``; the entry gets ``finished_at`` when answered. Over HTTP:
   ``GET /_emulator/log`` and ``GET /_emulator/stats`` (see ``control``; never the token).
2. Account blocked: 403 ``text/html`` page, outcome ``"blocked"``. Nothing else happens.
   [limits]
3. Rate limits (sliding windows of ``window`` seconds): 7 requests per token, 50 per account
   [limits]. The request is recorded in its token's window (keyed by the presented bearer
   string, so missing and unknown tokens are limited too; a missing token shares the key
   ``""``) and in the account window. Requests then rejected count too, so a client that keeps
   hammering stays limited [choice: ``count_rejected``]. Over a limit: 429
   ``application/problem+json`` ``{"title": "Too Many Requests", "type":
   "https://httpstatus.es/429", "status": 429, "detail": ..., "retry_after": <float seconds,
   rounded up to ms>}``, or an HTML page with ``html_429`` [limits]. No ``Retry-After`` header
   (none is documented). ``retry_after`` is when every exceeded window has a free slot again.
   Limits apply before authentication, so even 401s are rate limited [choice].
4. Blocking: repeated 429s block the account [limits]; more than ``block_after`` (10) limiter
   429s within ``block_window`` (60 s) do it [choice: ``block_after=None`` never blocks]. The
   429 that crosses the line is still sent as a 429, every later request gets the 403 page
   until ``emu.reset_limits()``. Scripted 429 faults count neither toward blocking nor
   ``stats.rate_limited``.
5. Auth: no ``Authorization: Bearer <token>`` header, an unknown token or an expired one (see
   ``state.tokens``, expiry on the emulator clock): 401 problem+json [ru § HTTP коды ответа].
   A POST/PATCH/DELETE with a non-admin token: 403 problem+json, whatever the path [ru §
   Ограничения: write methods are for administrators only].
6. Faults (at most one per request; scripted first, then a seeded random draw) and latency.
   A faulted request has already counted in the rate windows.
7. The endpoint.

Endpoints and responses
-----------------------
* Success bodies are ``application/hal+json``, errors ``application/problem+json`` [ru §
  Заголовок типа данных]; ``_links.self.href`` uses the request's own origin
  (``scheme://host:port`` from its Host header) [choice]. Creates answer 200 [ru § Добавление
  воронок, HTTP коды ответа], deletes 204 with no body [ru § Удаление воронки].
* Pipelines collections (GET list, POST) carry ``_total_items``, ``_links`` and
  ``_embedded.pipelines``. Statuses collections (GET list, POST) carry ``_total_items`` and
  ``_embedded.statuses`` with **no** collection ``_links`` [ru § Список воронок сделок, §
  Список статусов воронки сделок: the examples].
* Pipeline items always include ``is_archive`` (false: archiving is not emulated) [en § Adding
  pipelines: the example]; the Russian create example omitting it is treated as a doc slip.
* A pipeline embeds its statuses in sort order [ru § Список воронок сделок], the incoming
  one (type 1) only while ``is_unsorted_on`` is true: both PATCH examples answer
  ``is_unsorted_on: false`` without it [ru § Редактирование воронки, en § Editing a
  pipeline]. The Russian create example answers ``false`` *with* it, but its request asked
  for ``true``: treated as a doc slip. The status is kept while hidden (same id, sort 10) and
  shows again once incoming leads are turned on. The statuses list of such a pipeline leaves
  it out too; GET by id still serves it [choice]. Embedded statuses never carry
  ``descriptions`` [ru § Список воронок сделок]; ``with=descriptions`` is ignored on pipeline
  endpoints [choice].
* Status GETs add ``descriptions`` (a list, maybe empty) only with ``with=descriptions``
  (comma-separated values; unknown values are ignored) [ru § Список статусов воронки сделок,
  GET параметры]. Status POST and PATCH responses always include ``descriptions`` [ru §
  Добавление статусов в воронку, § Редактирование статуса воронки: the examples]; Kommo's
  English examples omit them, and SDKs must read both. Descriptions are ordered newbie,
  candidate, master [choice].
* ``request_id`` is echoed on POSTed and PATCHed items and never stored [ru § Добавление
  воронок, Параметры запроса]; without one, POST items echo their index ("0", "1", ...) and
  PATCH echoes "0" [ru § Добавление статусов в воронку, § Редактирование воронки: the
  examples]. A non-string ``request_id`` is a validation error.
* Any other path: 404 problem+json ``"Not found"``; a known path with another method: 405
  problem+json. HEAD is not served. Path ids that are not plain decimal digits are unknown ids:
  404 ``"Pipeline not found"`` [limits] / ``"Status not found"``; a status id that exists only
  in another pipeline is 404 too. Id lookups happen before the body is looked at. [choice]

Request bodies
--------------
* Checked in this order: an empty (or whitespace) body -> 400 ``"Request data can not be
  empty"`` [limits]; ``Content-Type`` other than ``application/json`` (parameters such as
  charset allowed) -> 400 ``"Content-Type must be application/json"`` [ru § Заголовок
  запроса; refusing others: choice]; malformed JSON (including NaN/Infinity, invalid UTF-8) ->
  400 ``"Request body is not valid JSON"``; ``null``, ``[]`` or ``{}`` -> 400 ``"Request data
  can not be empty"``; a batch POST body that is not an array, or a PATCH body that is not an
  object -> 400 [choice]; more than 250 items -> 422 ``"Limit 250 per page"`` [limits]; then
  per-item validation; then account limits. DELETE bodies are ignored.
* Fields a request does not list are ignored, nested ones included: ``id`` or ``is_archive``
  in a PATCH body, ``type`` in a status, ``descriptions`` or ``request_id`` inside a pipeline
  create's ``_embedded.statuses`` (the official PHP library sends the latter), anything but
  ``name`` next to ``id`` 142/143. Listed fields of the wrong type are still refused.
* Validation failures: 400 ``validation-errors`` (title "Bad Request", detail "Request
  validation failed"), one entry per bad item keyed by its ``request_id`` (or index string; "0"
  for PATCH) with every error found in it [limits]. Error ``path`` is dotted (``name``,
  ``_embedded.statuses.1.color``, ``descriptions.0.level``; ``""`` for the whole item). Codes:
  ``FieldMissing`` (a mandatory field absent [ru § Параметры запроса: "Обязательный
  параметр"]; a PATCH without any listed field [ru § Редактирование воронки: "хотя бы один
  параметр"]), ``InvalidType`` (wrong JSON type, null included; bools are not ints, 10.0 is not
  an int) [ru § Параметры запроса: the types], ``NotBlank`` (empty or whitespace-only string)
  [choice], ``TooLong`` (descriptions over 1000 code points [ru § Добавление статусов в
  воронку]; names over 255 [choice: ``max_name_length``]), ``OutOfRange`` (sort outside
  0..2147483647) [choice: ``sort_range``], ``NotSupportedChoice`` (color outside the palette
  [ru § Доступные цвета статусов], unknown level [ru § Добавление статусов в воронку], a
  status id other than 142/143 on pipeline create [ru § Добавление воронок names only those;
  refusing others: choice]), ``NotUnique`` (a level twice [ru § Добавление статусов в
  воронку]; 142/143 twice, two ``is_main: true`` pipelines in one batch [choice]),
  ``TooMany`` (more than 3 descriptions) [ru § Добавление статусов в воронку], ``NotFound``
  (unknown description id), ``Mismatch`` (description id whose level differs) [choice].
* Batches are all-or-nothing: any invalid item, or exceeding a limit, creates nothing
  [choice].
* Account limits: at most 50 pipelines, and 100 statuses in a pipeline (system ones
  included) [ru § Общая информация]. A POST that would exceed one is rejected whole with 422
  problem+json (detail "Limit of 50 pipelines per account exceeded" / "Limit of 100 statuses
  per pipeline exceeded") [choice].

Pipelines
---------
* Create needs name, sort, is_main, is_unsorted_on [ru § Добавление воронок]. Regular
  statuses in ``_embedded.statuses`` need name and sort (color optional) [ru § Добавление
  статусов в воронку]; items with ``id`` must be 142 or 143 and carry ``name`` [ru §
  Добавление воронок].
* A new pipeline gets its incoming status (type 1, sort 10, ``#c1c1c1``, "Неразобранное", not
  editable), 142 ("Успешно реализовано", ``#CCFF66``, sort 10000) and 143 ("Закрыто и не
  реализовано", ``#D5D8DB``, sort 11000), both not editable, plus the given regular statuses
  [ru § Общая информация and the examples].
* Pipeline ``sort`` is stored as given [en § Editing a pipeline: 100 answers 100; the Russian
  example's 100 -> 1000 is treated as a doc slip]; lists are ordered by (sort, id) [choice].
* Exactly one main pipeline [choice]: making one main (create or PATCH) demotes the previous
  one; PATCH ``is_main: false`` on the main pipeline promotes the next pipeline by (sort, id);
  on the only pipeline it is refused with 400 problem+json [choice:
  ``refuse_demoting_only=False`` ignores it instead]. Two ``is_main: true`` items in one batch
  are a validation error.
* Names need not be unique (pipelines or statuses): the pages never require it.
* DELETE refuses, with problem+json: the last pipeline (400 "The last pipeline can not be
  deleted") [ru § Удаление воронки], a pipeline with leads in any status or with sources (422
  "Pipeline has leads or sources") [ru § Удаление воронки; sources and 422: ru.txt § Удаление
  воронки], the main pipeline (400 "The main pipeline can not be deleted": make another one
  main first) [choice: ``refuse_main_delete=False`` deletes it and promotes the next by (sort,
  id)]. ``state.set_sources()`` sets sources.

Statuses
--------
* Ids are unique account-wide except 142/143, which every pipeline shares [ru § Общая
  информация and the examples].
* Sort is an order, not a stored number [ru § Добавление статусов в воронку: 100 and 200
  answer 60 and 70]: after any create, PATCH of ``sort`` or delete, the regular statuses are
  ordered by sort and renumbered 20, 30, 40, ... [choice]; the incoming status stays at 10 and
  142/143 at 10000/11000 whatever sort is requested (regular statuses always sit between
  them), whether the incoming status is shown or not. Ties: statuses not being created/moved
  first, then the request's order; a PATCHed status with sort equal to another's goes after
  it [choice].
* Color is optional on create [ru § Добавление статусов в воронку] (default ``#fffeb2``, the
  first palette color [choice]) and must be one of the 21 palette colors [ru § Доступные цвета
  статусов], compared exactly (lower case) [choice]. The seeded custom statuses keep the
  examples' colors ``#99ccff`` and ``#ffcc66``, which are outside the palette [ru § Список
  воронок сделок: the example]: custom statuses can carry colors a write refuses, and clients
  must read them.
* The incoming status, 142 and 143 are not editable (``is_editable: false`` in the examples):
  PATCH -> 400 "Status is not editable", DELETE -> 400 "Status can not be deleted"
  (problem+json), checked before the body [choice].
* DELETE moves the status's leads to the pipeline's first status [ru § Удаление статуса
  воронки]: the lowest sort, i.e. the incoming status, or the first regular status while
  incoming leads are off and one remains (else the hidden incoming status) [choice].
* Descriptions: at most 3, unique levels among newbie/candidate/master, text of at most 1000
  code points (emoji allowed) [ru § Добавление статусов в воронку], non-blank [choice]. On
  create: ``level`` and ``description``. On PATCH [ru § Редактирование статуса воронки]:
  ``id`` + ``level`` + ``description`` edits (updated_at now, updated_by 0); no ``id`` creates
  the level's description, or replaces an existing one of that level by a new description
  (new id, created_by 0, updated_by null, as the example shows); ``id`` + ``level`` without
  ``description`` deletes. ``level`` is always required. Timestamps are UTC from
  ``EmulatorConfig.wall_clock`` [choice]; created_by is 0 (API) for everything made through
  the API [ru § Получение статуса воронки сделок по ID: "0 - апи"].

Faults
------
* ``emu.faults.add(Fault.status(503), method="POST", path="/api/v4/leads/pipelines*",
  times=1)`` faults the next matching requests (``path``: exact, glob where ``*`` also matches
  ``/``, or a compiled regex; ``times=None`` forever). Kinds:

  - ``Fault.status(429|500|502|503|504, commit=False)``: 500 problem+json with ``trace_id``;
    502/503/504 nginx-style HTML; 429 the limiter's body with ``retry_after=``. Nothing
    applied unless ``commit=True`` (then the request is processed and its response replaced).
  - ``Fault.latency(s)``: sleep, then answer normally.
  - ``Fault.reset(commit=False)``: TCP RST before processing, nothing applied; with
    ``commit=True``, processed first.
  - ``Fault.commit_then_drop()``: processed, then the connection is closed with no response.
  - ``Fault.late_commit(delay, drop=False)``: the request is processed ``delay`` seconds
    after it arrived, in a task of its own that outlives the handler and the client's
    connection; reads before then do not see it, reads after see it once. Meanwhile the
    response is held (a client with a shorter timeout gives up; a patient one gets the real
    answer after the write), or with ``drop=True`` the connection is closed at once. It is
    processed against the account as it is then (a pipeline deleted meanwhile makes a late
    PATCH a 404). ``emu.pending_commits`` counts those not applied yet, ``await
    emu.settle()`` waits for them, ``emu.stop()`` drops them. The delay runs on the event
    loop's clock, not ``EmulatorConfig.clock``.
* ``EmulatorConfig.fault_rates`` draws faults at random ("500", "502", "503", "504", "reset",
  "commit-then-drop"), and ``latency`` adds a uniform random delay; both apply only to
  requests that got past the block, the rate limits and auth, and both come from generators
  seeded by ``seed`` (one draw per such request, scripted fault or not), so a seed and a
  request sequence always give the same faults. A drawn 5xx or reset commits first with
  probability ``fault_commit`` (0.5; ``--fault-commit``), from its own seeded generator: a
  real server can fail after committing, so a client that resends a create after a 5xx
  duplicates it here too.
* Every injected fault is counted in ``emu.stats.faults`` by kind, and those whose request
  was processed anyway in ``emu.stats.faults_committed``; the log entry's outcome is
  ``"fault:<kind>"`` (latency faults keep the normal outcome and set ``entry.latency``).
  Dropped requests have ``status`` None; those that were processed record the status the
  real response had in ``processed_status``.
* Beware: aiohttp's ClientSession silently retries GET/PUT/DELETE once when the connection
  drops, so a single ``reset`` on a DELETE shows up as two log entries and no client error.

Accounts and tokens
-------------------
* ``seed_account=True``: main pipeline 3177727 "Воронка" (sort 1, unsorted on) with incoming
  32392156, "Первичный контакт" 32392159 (``#99ccff``, with the three descriptions 489/491/493
  of the spec's list example), "Принимают решение" 32392165 (``#ffcc66``), 142 and 143.
  ``False``: the same pipeline with only its three system statuses (an account always has a
  pipeline). New ids continue from 3177728 (pipelines), 32392166 (statuses) and 494
  (descriptions).
* ``state.tokens`` maps token -> ``TokenInfo(admin, user_id, expires_at)``; the admin and user
  tokens are derived from ``seed`` unless given in the config.

OAuth 2.0 (``oauth``) [limits]
------------------------------
* ``POST /oauth2/access_token`` serves the ``authorization_code`` and ``refresh_token`` grants
  for the clients in ``emu.oauth.clients`` (the config's ``oauth_client_id`` /
  ``oauth_client_secret`` / ``oauth_redirect_uri``; more with ``emu.oauth.register()``).
  ``emu.issue_code()`` stands in for the consent screen; ``emu.issue_tokens()`` hands out a
  token pair without it. Success: 200 ``application/json``
  ``{"token_type": "Bearer", "expires_in": ..., "access_token": ..., "refresh_token": ...}``;
  the access token joins ``state.tokens`` and expires after ``access_token_lifetime`` on the
  emulator clock.
* ``POST /_emulator/oauth/code`` (emulator only, see ``control``) is ``emu.issue_code()`` over
  HTTP: ``{"code", "client_id", "redirect_uri", "expires_in"}``, a fresh code per call, so an
  OAuth callback can be tried again without a restart; not logged or counted, no token, no
  limits, no faults, served while blocked. The server prints ``--codes N`` (1) codes at start.
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

Cost
----
Benchmark-sized copies send it 97 statuses with three descriptions per POST, over and over:
success bodies are written straight to JSON text (``wire``: the very bytes ``json.dumps``
gives for ``render``'s dicts), a statuses POST item that is valid as a whole is checked in
one pass (``quick``: anything else takes the general validation), the creates run with the
cyclic garbage collector paused, and the command-line server freezes what it holds once it
listens and collects the youngest generation every 50,000 new containers [choice].

Modules
-------
``config`` (EmulatorConfig), ``server`` (Emulator), ``fleet`` (EmulatorFleet: many accounts,
one port each), ``gateway`` (the per-request pipeline above, faults included), ``oauth`` (the
token endpoint and its own pipeline), ``control`` (``/_emulator/`` endpoints: OAuth codes, the
request log and stats over HTTP), ``app`` (the endpoints), ``validation``/``plans``/``rules``
(request checks), ``state`` (the account), ``seeding`` (the account it starts with),
``render`` (response bodies), ``wire`` (success bodies written straight to JSON text, the
bytes ``render`` gives), ``limits``, ``faults``, ``records`` (log and stats),
``__main__`` (the command line server).
"""

from __future__ import annotations

from .config import EmulatorConfig
from .faults import Fault, FaultInjector, FaultKind, ScriptedFault
from .fleet import EmulatorFleet
from .oauth import OAuthClient, OAuthServer
from .records import RequestLogEntry, Stats
from .server import Emulator
from .state import AccountState, Description, Pipeline, Status, TokenInfo

__all__ = [
    "AccountState",
    "Description",
    "Emulator",
    "EmulatorConfig",
    "EmulatorFleet",
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
