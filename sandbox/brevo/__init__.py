"""Emulated Brevo API v3: contacts, attributes, lists, import, processes, transactional email and its
events.

Faithful where a client can get it wrong: attribute names must exist and values of the wrong type are
silently dropped, ``POST /contacts`` answers 201/204/400 by ``updateEnabled``, list additions are capped
at 150, errors are ``{"code", "message"}`` (an unknown route too: 404 ``document_not_found``, or 405
``method_not_allowed`` for a known path with another method), and each endpoint family has its own
rate-limit bucket with ``x-sib-ratelimit-*`` headers. Choices where Brevo is undocumented:
``modifiedAt`` moves on every accepted update (even one that changes nothing, as the 2026 changelog says);
``""`` clears an attribute of any type on update; the statistics endpoint answers ``{}`` when nothing
matches, as Brevo does.

Imports are asynchronous, as Brevo's are: ``POST /contacts/import`` answers 202 ``{"processId"}`` at once,
and the process then goes ``queued`` -> ``in_process`` -> ``completed`` in the background (each stage
lasts the import delay, 0.1 s unless set), its contacts becoming visible only at the end. Brevo skips the
rows it will not take, without failing the import: a completed ``IMPORTUSER`` process reports them in
``info.import``, one URL per kind of problem (``invalid_emails``, ``duplicate_email_id``,
``duplicate_ext_id``, ... or null), each a semicolon-separated CSV (``EMAIL;REASON``) that the sandbox
serves itself under ``/brevo/import-reports/`` without an API key, like a pre-signed download. The
sandbox skips (Brevo publishes no exact rule; these are ours):

- an email that is not ``local@domain``, is over 254 characters, or has a local part over 64;
- a local part with anything but ASCII letters, digits and ``. _ % + ' -`` (so ``!#$&*/=?^`{|}~``, which
  the email RFCs allow, quoted local parts and non-ASCII addresses are refused), or a dot at its start,
  its end or twice in a row;
- a domain with fewer than two labels, a label that is empty, over 63 characters, has anything but
  letters, digits and hyphens or starts or ends with a hyphen, an IP literal, or a top-level domain that
  is not alphabetic (2+ letters) nor punycode (``xn--``);
- a row whose email already came earlier in the same import (``duplicate_email_id``: the first is taken),
  or whose ``ext_id`` came earlier or belongs to another contact (``duplicate_ext_id``).

The same email rule applies to ``POST /contacts``, ``PUT`` of ``EMAIL`` and transactional recipients.

Contact reads carry the ``statistics`` object Brevo's spec requires: campaign statistics, so they hold
the engagement recorded through the admin API with a ``campaign_id`` (opens, clicks, hard bounces,
unsubscriptions); transactional email never appears there, as in Brevo. Campaign engagement never appears
in ``GET /v3/smtp/statistics/events`` either (that log is transactional only): Brevo has no account-wide
feed of campaign events, only its marketing webhooks, which the sandbox delivers.

Webhooks (``/v3/webhooks``):

| endpoint | body / result |
|---|---|
| ``POST /v3/webhooks`` | ``{url, events, type?, description?, auth?: {type: "bearer", token}, batched?, headers?}``: 201 ``{"id"}``; ``type`` is ``transactional`` (default), ``marketing`` or ``inbound``, and ``events`` must be names of that type (``opened``, ``click``, ``hardBounce``, ``unsubscribed``, ``spam``, ... for marketing) |
| ``GET /v3/webhooks`` | ``?type=`` (default ``transactional``), ``sort=asc|desc``: ``{"webhooks": [...]}``, each without its auth token |
| ``GET /v3/webhooks/{id}`` | one webhook, 404 ``document_not_found`` if unknown |
| ``DELETE /v3/webhooks/{id}`` | 204 |

A campaign event recorded through the admin API is POSTed, before that admin call returns, to every
marketing webhook whose ``events`` include it, in Brevo's marketing payload: ``id`` (the webhook's),
``camp_id``, ``campaign name``, ``email``, ``event`` as Brevo sends it (subscribed as ``click`` /
``hardBounce`` / ``unsubscribed``, sent as ``click`` / ``hard_bounce`` / ``unsubscribe``; ``opened`` and
``spam`` unchanged), ``date_sent`` / ``date_event`` (account time, UTC here), ``ts_sent`` / ``ts_event`` /
``ts`` (epoch seconds), ``tag``, ``segment_ids``, and per event ``URL`` (click), ``sending_ip`` (hard
bounce), ``list_id`` (unsubscribe) or ``reason`` (spam). With ``auth`` a delivery carries
``Authorization: Bearer <token>`` (Brevo signs nothing); a ``batched`` webhook gets one JSON array per
admin call instead of one object per event. Failed deliveries are retried like the other vendors'.

Admin API (``/_sandbox/brevo/...``):

| endpoint | body / result |
|---|---|
| ``POST events`` | ``{email, event, at?, link?, template_id?, campaign_id?, campaign_name?, campaign_sent_at?}`` (event: ``opened``, ``clicked``, ``unsubscribed``, ``hard_bounce`` or ``spam``), or a list of them; with a ``campaign_id`` the event is campaign engagement (contact statistics and marketing webhooks, named and dated by the first event of that campaign that gives them), else transactional (the event log) |
| ``GET emails`` | every transactional email received, never delayed by the event lag |
| ``GET contacts/{email}`` | a contact with its list names |
| ``POST event_lag`` | ``{"seconds": S}``: an event of ``GET /v3/smtp/statistics/events`` (the ``requests`` of an accepted email, and every other) shows only S seconds (wall clock) after its date, like Brevo's log lagging behind; ``0`` (and ``/_sandbox/reset``) clears it |
| ``POST import_delay`` | ``{"seconds": S}``: how long an import stays ``queued`` and then ``in_process`` (reset: 0.1) |
| ``POST imports/wait`` | returns once every import accepted so far has completed: ``{"completed": n}`` |

Handlers mutate the stores without awaiting in between (an import is applied in one step at the end of
its ``in_process`` stage), so one uvicorn worker's event loop serialises them.
"""

from sandbox.brevo.account import Brevo

__all__ = ["Brevo"]
