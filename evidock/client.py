"""The CLI's side of the trust boundary: ask the station service, print its answer.

A client opens no catalog, store or key and reads no rules. It finds the service's
socket (EVIDOCK_SOCKET, else ``[service] socket`` of ``--config``, else the default),
sends the request and turns an error answer back into the same EvidockError the
service raised, so commands exit and print exactly as before.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from config.endpoint import DEFAULT_SOCKET
from evidock.service.errors import rebuild
from integrity.errors import ServiceUnavailable

API = "/api/v1"
# Connecting is quick or broken; an answer may take long (an export, a retention run).
TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=300.0, pool=5.0)
#: The header naming the station's zone on every answer (people see times in it).
ZONE_HEADER = "X-Evidock-Zone"


def socket_path(config: Path | None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get("EVIDOCK_SOCKET"):
        return env["EVIDOCK_SOCKET"]
    if config is not None:
        try:
            table = tomllib.loads(config.read_text(encoding="utf-8")).get("service", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            table = {}
        if isinstance(table, dict) and isinstance(table.get("socket"), str):
            return str(table["socket"])
    return DEFAULT_SOCKET


class Station:
    """One connection to the station service."""

    def __init__(self, *, socket: str, transport: httpx.BaseTransport | None = None) -> None:
        self.socket = socket
        #: The station's zone as its last answer named it ("UTC" until one does).
        self.zone_name = "UTC"
        # Plain HTTP over the station's socket: no TLS, so no CA bundle to load (httpx's
        # default context reads it: ~45 ms of every command). This context trusts nothing.
        plain = transport or httpx.HTTPTransport(uds=socket, verify=_NO_TLS())
        self._http = httpx.Client(transport=plain, base_url="http://evidock" + API,
                                  timeout=TIMEOUT)

    @classmethod
    def locate(cls, config: Path | None = None) -> Station:
        return cls(socket=socket_path(config))

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_clean(params))

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=dict(body or {}))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self.zone_name = response.headers.get(ZONE_HEADER, self.zone_name)
        return _answer(response)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response whose body is read in pieces (downloads); errors raised as usual."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                self.zone_name = response.headers.get(ZONE_HEADER, self.zone_name)
                if response.status_code >= 400:
                    response.read()
                    _answer(response)
                yield response
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"cannot reach the station service at {self.socket} ({exc}); is `evidock "
            "serve` running (systemctl status evidock)?", socket=self.socket)


def _NO_TLS() -> ssl.SSLContext:  # noqa: N802 (reads as the constant it stands for)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no trust roots: any TLS would fail


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        if isinstance(body, dict) and "error" in body:
            raise rebuild(body)
        raise ServiceUnavailable(f"the station service answered HTTP "
                                 f"{response.status_code}: {response.text[:200]}",
                                 status=response.status_code)
    return body


@contextmanager
def station(config: Path | None = None) -> Iterator[Station]:
    """A client for one command, closed afterwards."""
    client = Station.locate(config)
    try:
        yield client
    finally:
        client.close()
