"""The proxy in front of llama-server (Caddy, in the server's own image): it alone is published. It ends
TLS, refuses a Host that is none of the server's names (the DNS-rebinding defence, on loopback too) and a
body larger than a few screenshots,
answers browsers' CORS for the allowed origins only, logs each request without its headers, and serves
the image's fallback web page where llama-server has none. Its configuration is Caddy's JSON, made here
as a dict from the plan's Exposure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.core.exposure import Exposure

PROXY_SERVICE = "proxy"
# Caddy's name for the one server of its configuration (and the tag of its certificate).
PROXY_SERVER = "step-flash"
PROXY_PORT = 8443
CONTAINER_PROXY_CONFIG = PurePosixPath("/etc/step-flash/proxy.json")
CONTAINER_TLS_CERT = PurePosixPath("/run/secrets/tls_certificate")
CONTAINER_TLS_KEY = PurePosixPath("/run/secrets/tls_key")
# build-llama.sh puts a built web page here when llama-server has none of its own inside.
CONTAINER_FALLBACK_UI = PurePosixPath("/opt/llama/webui")
# On the proxy's service: the scheme it serves, so a compose file says how to reach what it runs.
SCHEME_LABEL = "io.step-flash.scheme"
# The largest request body the proxy passes on (413 beyond it: _too_large). Images travel inside the
# JSON as base64 data URLs (4/3 of the file): a full-screen PNG screenshot of a 4K display is commonly
# 5 to 10 MB, so 32 MiB takes three or four of them in one request, while a client cannot make the proxy
# and llama-server hold an unbounded body (llama-server's own HTTP library stops at 100 MiB:
# CPPHTTPLIB_PAYLOAD_MAX_LENGTH, vendor/cpp-httplib/httplib.h at the pin). README says it.
MAX_REQUEST_BODY = 32 * 1024 * 1024
_CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
)


@dataclass(frozen=True)
class TlsFiles:
    """Where the certificates are on the host: the local authority (made once per data directory, its
    key readable by its owner alone), the server certificate made from it, and the copies the proxy
    reads (in a folder only the owner opens)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    proxy_cert: Path
    proxy_key: Path


def tls_files(data_dir: Path, project: str) -> TlsFiles:
    tls = data_dir / "tls"
    secrets = secrets_dir(data_dir, project)
    return TlsFiles(
        ca_cert=tls / "ca.crt",
        ca_key=tls / "ca.key",
        server_cert=tls / "server.crt",
        server_key=tls / "server.key",
        proxy_cert=secrets / "tls_certificate",
        proxy_key=secrets / "tls_key",
    )


def secrets_dir(data_dir: Path, project: str) -> Path:
    """Where `up` puts the copies of the key and the TLS files a project's containers read."""
    return all_secrets_dir(data_dir) / project


def all_secrets_dir(data_dir: Path) -> Path:
    """The folder of every project's secrets, and of the key their content names are made with."""
    return data_dir / "secrets"


def proxy_config_path(data_dir: Path, project: str) -> Path:
    return data_dir / "compose" / f"{project}.proxy.json"


def proxy_config(
    exposure: Exposure,
    listen: str,
    upstream: str,
    *,
    fallback_page: bool,
    certificate: tuple[str, str] = (str(CONTAINER_TLS_CERT), str(CONTAINER_TLS_KEY)),
    storage: str = "/tmp/caddy",
) -> dict[str, Any]:
    """Caddy's configuration: one server on listen ([host]:port) in front of upstream (host:port, or
    unix/PATH), serving the certificate and key files named (in a container: its secrets), its state
    under storage."""
    hosts = list(exposure.names)
    allowed = {"header": {"Origin": list(exposure.origins)}}
    routes: list[dict[str, Any]] = [
        # Never shown inside another site's frame (what browsers without Sec-Fetch-* still honour); no
        # body larger than a few screenshots (MAX_REQUEST_BODY) reaches llama-server.
        {
            "handle": [
                {
                    "handler": "headers",
                    "response": {
                        "set": {
                            "X-Frame-Options": ["DENY"],
                            "Content-Security-Policy": ["frame-ancestors 'none'"],
                        }
                    },
                },
                {"handler": "request_body", "max_size": MAX_REQUEST_BODY},
            ]
        },
        {
            "match": [{"not": [{"host": hosts}]}],
            "handle": [_answer(421, "this server does not answer to that host name\n")],
            "terminal": True,
        },
        {
            "match": [{**allowed, "method": ["OPTIONS"]}],
            "handle": [
                {
                    "handler": "headers",
                    "response": {
                        "set": {
                            "Access-Control-Allow-Origin": ["{http.request.header.Origin}"],
                            "Access-Control-Allow-Methods": ["GET, POST, OPTIONS"],
                            "Access-Control-Allow-Headers": [
                                "{http.request.header.Access-Control-Request-Headers}"
                            ],
                            "Access-Control-Max-Age": ["600"],
                            "Vary": ["Origin"],
                        }
                    },
                },
                {"handler": "static_response", "status_code": 204},
            ],
            "terminal": True,
        },
        # Any request a page of another site makes, whatever its method and type: browsers send "simple"
        # requests (a text/plain POST) and no-cors fetches without asking first, and llama-server reads a
        # body as JSON whatever its type. A foreign Origin, or (a no-cors GET carries none) a browser's
        # word that the request comes from another site, is refused here, before llama-server.
        {
            "match": [
                {"header": {"Origin": ["*"]}, "not": [allowed]},
                # Navigations too (a link followed, a frame, `location = ...`): the web page sends a `?q=`
                # prompt as soon as it loads, with the key it keeps, so another site may not open it.
                {"header": {"Sec-Fetch-Site": ["cross-site", "same-site"]}, "not": [allowed]},
            ],
            "handle": [_answer(403, "a page of another site may not call this server\n")],
            "terminal": True,
        },
        {
            "match": [allowed],
            "handle": [
                {
                    "handler": "headers",
                    "response": {
                        "set": {
                            "Access-Control-Allow-Origin": ["{http.request.header.Origin}"],
                            "Vary": ["Origin"],
                        },
                        "deferred": True,
                    },
                }
            ],
        },
        _too_large(),
    ]
    if fallback_page:
        routes.append(
            {
                "match": [{"method": ["GET", "HEAD"], "path": ["/", "/index.html"]}],
                "handle": [_proxy(upstream, page_if_missing=True)],
                "terminal": True,
            }
        )
    routes.append({"handle": [_proxy(upstream, page_if_missing=False)]})
    server: dict[str, Any] = {
        "listen": [listen],
        "routes": routes,
        "automatic_https": {"disable": True},
        "protocols": ["h1", "h2"],
        "logs": {"default_logger_name": "requests"},
    }
    tls_app: dict[str, Any] = {}
    if exposure.scheme == "https":
        server["tls_connection_policies"] = [{"certificate_selection": {"any_tag": [PROXY_SERVER]}}]
        tls_app = {
            "tls": {
                "certificates": {
                    "load_files": [
                        {"certificate": certificate[0], "key": certificate[1], "tags": [PROXY_SERVER]}
                    ]
                }
            }
        }
    return {
        # No admin endpoint, nothing saved: the file is the whole configuration, and the root is read-only.
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": storage},
        "logging": {
            "logs": {
                # Errors (a 502 while llama-server restarts) carry the request: never its headers, where
                # the key travels (Authorization, X-Api-Key) besides cookies.
                "default": {
                    "exclude": ["http.log.access.requests"],
                    "encoder": {
                        "format": "filter",
                        "wrap": {"format": "json"},
                        "fields": {"request>headers": {"filter": "delete"}},
                    },
                },
                # One line per request, without its headers (the API key travels in one).
                "requests": {
                    "include": ["http.log.access.requests"],
                    "encoder": {
                        "format": "filter",
                        "wrap": {"format": "json"},
                        "fields": {
                            "request>headers": {"filter": "delete"},
                            "resp_headers": {"filter": "delete"},
                        },
                    },
                },
            }
        },
        "apps": {"http": {"servers": {PROXY_SERVER: server}}, **tls_app},
    }


def _too_large() -> dict[str, Any]:
    """A body that says it is larger than the limit is answered 413 at once. The request_body limit alone
    stops such a body at the limit but lets its first MAX_REQUEST_BODY bytes through to llama-server and
    answers 502 (Caddy 2.6.2, seen here with curl; caddyserver/caddy#5652); it still bounds a chunked
    body, which says no length."""
    length = "{http.request.header.Content-Length}"
    return {
        "match": [{"expression": f'{length} != "" && int({length}) > {MAX_REQUEST_BODY}'}],
        "handle": [_answer(413, f"the request body is over {MAX_REQUEST_BODY >> 20} MiB\n")],
        "terminal": True,
    }


def _answer(status: int, body: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body}


def _proxy(upstream: str, *, page_if_missing: bool) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream}],
        # A connection per request: llama-server (cpp-httplib) closes idle kept-alive connections on its
        # own clock, and a request Caddy sends down one it is closing comes back 502 (seen under load).
        "transport": {"protocol": "http", "keep_alive": {"enabled": False}},
        # While llama-server restarts (a crash, a kill), a request waits a little for it instead of
        # failing at once.
        "load_balancing": {"try_duration": "5s", "try_interval": "250ms"},
        # Streamed answers (server-sent events) go out token by token.
        "flush_interval": -1,
        # CORS is the proxy's answer alone: llama-server's own headers would let any origin in.
        "headers": {"response": {"delete": list(_CORS_HEADERS)}},
    }
    if page_if_missing:
        handler["handle_response"] = [
            {
                "match": {"status_code": [404]},
                "routes": [
                    {
                        "handle": [
                            {"handler": "file_server", "root": str(CONTAINER_FALLBACK_UI)},
                        ]
                    }
                ],
            }
        ]
    return handler
