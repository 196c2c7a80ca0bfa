"""Every REST source reads through dlt's own ``RESTClient``, with what dlt does not know of our vendors added.

dlt authenticates (``BearerTokenAuth``, or ``APIKeyAuth`` in Brevo's ``api-key`` header), pages (the
paginator each source picks) and retries 429s, 5xx answers and network errors with exponential backoff,
honouring ``Retry-After``, a bounded number of attempts. The rest is small:

- ``Pace``: one endpoint's own pace (HubSpot search allows 5 requests a second per account, shared by every
  app, and answers without the rate-limit headers to pace by), waited before each of its requests.
- ``announce_wait``, a response hook: a vendor that says how long to wait in a header of its own
  (``X-HubSpot-RateLimit-Interval-Milliseconds``, ``x-sib-ratelimit-reset``, ``X-RateLimit-Reset``) rather
  than ``Retry-After`` gets its word written into ``Retry-After``, so dlt's retry waits as long as it asked.
- ``worth_retrying``, dlt's retry condition: what dlt retries by default (its ``DEFAULT_RETRY_STATUS`` and
  ``DEFAULT_RETRY_EXCEPTIONS``), each failed attempt logged with the vendor, method, path and the vendor's
  masked message.
- The client itself raises what still fails once dlt's retries are spent as ``vendor_http.ApiError``: a
  refused request (4xx other than 429), a vendor still failing, or no answer at all (``status`` None).

Errors and logs never carry credentials: they name the vendor, method, path and the vendor's own message,
and a vendor may echo a credential in that message, so every secret the client is given (its own and any
other the caller wants kept out, e.g. every configured one) is replaced by ``***`` first. No requests
exception leaves the client (theirs carry the request, with its headers).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from dlt.common.jsonpath import JSONPath, compile_path
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUS
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests.auth import AuthBase

from vendor_http import ApiError, vendor_message, wait_seconds

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retries:
    """dlt's retry settings for one client: ``attempts`` in all (429s included), waits of
    ``backoff * 2 ** (n - 1)`` seconds unless the vendor says otherwise, none longer than ``max_delay``."""

    attempts: int = 8
    backoff: float = 0.5
    max_delay: float = 60.0
    timeout: float = 30.0


@functools.cache
def json_path(path: str) -> JSONPath:
    """``path`` compiled once: dlt compiles a path given as text on every page, which costs more than the
    request itself when a listing is one short page (Calendly's invitees of each event)."""
    return compile_path(path)


class Pace:
    """One endpoint's pace: ``wait`` before each of its requests keeps them at least ``1 / per_second``
    apart (waiting only when another request comes, not after the last one)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            self._sleep(delay)


def announce_wait(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: a 429 whose wait is in a vendor's own header gets it as ``Retry-After`` (whole
    seconds, rounded up), the one header dlt's retry reads."""
    if response.status_code == 429 and "retry-after" not in response.headers:
        seconds = wait_seconds(response.headers)
        if seconds:
            response.headers["Retry-After"] = str(math.ceil(seconds))


def read_environment_once(session: requests.Session, base_url: str) -> requests.Session:
    """``session`` with the proxy and CA-bundle variables read from the environment now, once. requests
    otherwise reads them on every request by scanning the whole environment, which took longer than an answer
    from a fast API (1.6 of 2.2 ms per Calendly invitees call): someone behind a proxy is still served, as
    the environment stood when the client was made."""
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


HOOKS = {"response": [announce_wait]}
"""The response hooks of every request (given to each, since dlt's ``paginate`` would otherwise put its own
in their place, which raises requests' ``HTTPError`` with the unmasked answer)."""


class VendorClient(RESTClient):
    """dlt's ``RESTClient`` for one vendor (see the module's docstring); ``with`` closes its session."""

    def __init__(self, vendor: str, base_url: str, auth: AuthBase, *, secrets: Iterable[str] = (),
                 retries: Retries = Retries()) -> None:
        self.vendor = vendor
        self.secrets = tuple(secret for secret in secrets if secret)
        self._base_path = urlsplit(base_url).path.rstrip("/")
        retrying = Client(request_timeout=retries.timeout, raise_for_status=False,
                          request_max_attempts=retries.attempts, request_backoff_factor=retries.backoff,
                          request_max_retry_delay=retries.max_delay, status_codes=(), exceptions=(),
                          retry_condition=self.worth_retrying)
        super().__init__(base_url.rstrip("/"), headers={"accept": "application/json"}, auth=auth,
                         session=read_environment_once(retrying.session, base_url))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def read(self, path: str, params: dict[str, Any] | None = None, *, json: Any = None,
             pace: Pace | None = None) -> Any:
        """One request (a GET, or a POST when ``json`` is given); the decoded JSON answer."""
        if pace is not None:
            pace.wait()
        response = self.request(path, method="POST" if json is not None else "GET", params=params, json=json,
                                hooks=HOOKS)
        return response.json() if response.content else None

    def pages(self, path: str, paginator: BasePaginator, data_selector: str,
              params: dict[str, Any] | None = None) -> Iterator[list[Any]]:
        """Every page of a listing, as dlt's ``paginator`` follows it, each the list at ``data_selector``; an
        empty page (a listing with nothing in it) is not given."""
        for page in self.paginate(path, params=params, paginator=paginator,
                                  data_selector=json_path(data_selector), hooks=HOOKS):
            if page:
                yield list(page)

    def _send_request(self, request: requests.Request, **kwargs: Any) -> requests.Response:
        """dlt's send, retries included; what still fails after them becomes an ``ApiError``. (The one method
        both ``request`` and ``paginate`` send through, and the one place that sees the final answer: a
        response hook runs inside dlt's retries and cannot tell the last attempt from the others.)"""
        try:
            response = super()._send_request(request, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(self.vendor, request.method, self._path(request.url), None,
                           type(exc).__name__) from None
        if response.status_code >= 400:
            raise ApiError(self.vendor, request.method, self._path(request.url), response.status_code,
                           self._message(response))
        return response

    def worth_retrying(self, response: requests.Response | None, exception: BaseException | None) -> bool:
        """dlt's retry condition, asked after every attempt: dlt's own defaults, with each failed attempt
        logged (dlt waits as ``Retry-After`` says, or backs off, and gives up after the last attempt)."""
        if isinstance(exception, DEFAULT_RETRY_EXCEPTIONS):
            request, reason = getattr(exception, "request", None), type(exception).__name__
        elif exception is None and response is not None and response.status_code in DEFAULT_RETRY_STATUS:
            request, reason = response.request, f"HTTP {response.status_code}: {self._message(response)}"
        else:
            return False
        method, url = (request.method, request.url) if request is not None else ("?", "")
        logger.warning("%s %s %s: %s, retrying while attempts remain", self.vendor, method, self._path(url),
                       reason)
        return True

    def _path(self, url: str | None) -> str:
        """The request's path under the base URL, without its query."""
        path = urlsplit(url or "").path
        return path[len(self._base_path):] if path.startswith(self._base_path) else path

    def _message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        return vendor_message(body, response.text, response.reason or "", self.secrets)


def hubspot_client(base_url: str, token: str, mask: Iterable[str] = (), **kwargs: Any) -> VendorClient:
    """``mask`` (here and below): other secrets to keep out of errors, should the vendor echo one."""
    return VendorClient("hubspot", base_url, BearerTokenAuth(token=token), secrets=(token, *mask), **kwargs)


def brevo_client(base_url: str, api_key: str, mask: Iterable[str] = (), **kwargs: Any) -> VendorClient:
    return VendorClient("brevo", base_url, APIKeyAuth(name="api-key", api_key=api_key, location="header"),
                        secrets=(api_key, *mask), **kwargs)


def calendly_client(base_url: str, token: str, mask: Iterable[str] = (), **kwargs: Any) -> VendorClient:
    return VendorClient("calendly", base_url, BearerTokenAuth(token=token), secrets=(token, *mask), **kwargs)


def stripe_client(base_url: str, api_key: str, mask: Iterable[str] = (), **kwargs: Any) -> VendorClient:
    return VendorClient("stripe", base_url, BearerTokenAuth(token=api_key), secrets=(api_key, *mask), **kwargs)
