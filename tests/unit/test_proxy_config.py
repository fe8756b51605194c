"""The proxy's configuration (Caddy's JSON), rule by rule: each test holds one rule's part of it whole,
so a rule that goes, or is weakened (a matcher, a status, a header, a log filter), fails here. The
engine tests run the same configuration in Caddy itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.exposure import Exposure, exposure
from orchestrator.core.plan.proxy import (
    TlsFiles,
    proxy_config,
    proxy_config_path,
    secrets_dir,
    tls_files,
)

FACTS: dict[str, Any] = {
    "hostname": "spark",
    "fqdn": "spark.lab.example",
    "addresses": ("127.0.0.1", "192.168.1.5"),
}
SOCKET = "unix//run/step-flash/llama-server.sock"


def _loopback() -> Exposure:
    return exposure("127.0.0.1", 8080, "auto", ("http://127.0.0.1:3000",), (), **FACTS)


def _everywhere() -> Exposure:
    return exposure("0.0.0.0", 8080, "auto", (), (), **FACTS)


def _server(config: dict[str, Any]) -> dict[str, Any]:
    server: dict[str, Any] = config["apps"]["http"]["servers"]["step-flash"]
    return server


def _routes(reach: Exposure, *, fallback_page: bool = False) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _server(proxy_config(reach, ":8443", SOCKET, fallback_page=fallback_page))[
        "routes"
    ]
    return routes


def _allowed(reach: Exposure) -> dict[str, Any]:
    return {"header": {"Origin": list(reach.origins)}}


def test_no_answer_may_be_shown_inside_another_sites_frame_nor_a_body_past_a_few_screenshots() -> None:
    assert _routes(_loopback())[0] == {
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
            # 32 MiB: a few screenshots as base64 data URLs (README says it).
            {"handler": "request_body", "max_size": 32 * 1024 * 1024},
        ]
    }


@pytest.mark.parametrize("reach", [_loopback(), _everywhere()], ids=["loopback", "everywhere"])
def test_a_host_that_is_none_of_the_servers_names_is_refused_before_anything_else(reach: Exposure) -> None:
    """The DNS-rebinding defence: a page of another site whose name now points here sends its own name."""
    assert _routes(reach)[1] == {
        "match": [{"not": [{"host": list(reach.names)}]}],
        "handle": [
            {
                "handler": "static_response",
                "status_code": 421,
                "body": "this server does not answer to that host name\n",
            }
        ],
        "terminal": True,
    }


def test_a_preflight_from_an_allowed_origin_is_answered_by_the_proxy_and_goes_no_further() -> None:
    reach = _loopback()
    assert _routes(reach)[2] == {
        "match": [{**_allowed(reach), "method": ["OPTIONS"]}],
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
    }


def test_a_page_of_another_site_is_refused_before_llama_server_whatever_it_sends() -> None:
    """Any method (no method matcher): a foreign Origin, or a browser's word that the request is
    cross-site or same-site but not this server's (a navigation, a no-cors GET without an Origin)."""
    reach = _loopback()
    assert _routes(reach)[3] == {
        "match": [
            {"header": {"Origin": ["*"]}, "not": [_allowed(reach)]},
            {"header": {"Sec-Fetch-Site": ["cross-site", "same-site"]}, "not": [_allowed(reach)]},
        ],
        "handle": [
            {
                "handler": "static_response",
                "status_code": 403,
                "body": "a page of another site may not call this server\n",
            }
        ],
        "terminal": True,
    }


def test_an_allowed_origins_answer_names_that_origin_alone() -> None:
    reach = _loopback()
    assert "http://127.0.0.1:3000" in _allowed(reach)["header"]["Origin"]
    assert _routes(reach)[4] == {
        "match": [_allowed(reach)],
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
    }


def _upstream(page_if_missing: bool) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": SOCKET}],
        "transport": {"protocol": "http", "keep_alive": {"enabled": False}},
        "load_balancing": {"try_duration": "5s", "try_interval": "250ms"},
        "flush_interval": -1,
        "headers": {
            "response": {
                "delete": [
                    "Access-Control-Allow-Origin",
                    "Access-Control-Allow-Credentials",
                    "Access-Control-Allow-Methods",
                    "Access-Control-Allow-Headers",
                ]
            }
        },
    }
    if page_if_missing:
        handler["handle_response"] = [
            {
                "match": {"status_code": [404]},
                "routes": [{"handle": [{"handler": "file_server", "root": "/opt/llama/webui"}]}],
            }
        ]
    return handler


def test_llama_server_gets_a_connection_per_request_waits_through_restarts_streams_and_loses_its_cors() -> (
    None
):
    """A new connection each time (llama-server closes idle ones on its own clock: a 502), a few seconds'
    wait while it restarts, answers streamed as they come, and its own CORS headers dropped (they would
    let any origin in)."""
    routes = _routes(_loopback())
    assert len(routes) == 7
    assert routes[-1] == {"handle": [_upstream(page_if_missing=False)]}


def test_the_images_page_is_served_only_for_the_root_and_only_where_llama_server_has_none() -> None:
    routes = _routes(_loopback(), fallback_page=True)
    assert len(routes) == 8
    assert routes[-2] == {
        "match": [{"method": ["GET", "HEAD"], "path": ["/", "/index.html"]}],
        "handle": [_upstream(page_if_missing=True)],
        "terminal": True,
    }
    assert routes[-1] == {"handle": [_upstream(page_if_missing=False)]}


def test_the_proxy_has_no_admin_endpoint_saves_nothing_and_keeps_its_state_where_told() -> None:
    config = proxy_config(_loopback(), ":8443", SOCKET, fallback_page=False)
    assert config["admin"] == {"disabled": True, "config": {"persist": False}}
    # In a container the root file system is read-only and /tmp a tmpfs; a native proxy is told where.
    assert config["storage"] == {"module": "file_system", "root": "/tmp/caddy"}
    elsewhere = proxy_config(_loopback(), ":8443", SOCKET, fallback_page=False, storage="/data/caddy")
    assert elsewhere["storage"] == {"module": "file_system", "root": "/data/caddy"}


def test_no_log_keeps_a_requests_headers_where_the_api_key_travels() -> None:
    filtered = {"format": "filter", "wrap": {"format": "json"}}
    assert proxy_config(_everywhere(), ":8443", SOCKET, fallback_page=False)["logging"] == {
        "logs": {
            "default": {
                "exclude": ["http.log.access.requests"],
                "encoder": {**filtered, "fields": {"request>headers": {"filter": "delete"}}},
            },
            "requests": {
                "include": ["http.log.access.requests"],
                "encoder": {
                    **filtered,
                    "fields": {"request>headers": {"filter": "delete"}, "resp_headers": {"filter": "delete"}},
                },
            },
        }
    }


def test_plain_http_on_loopback_listens_where_told_and_loads_no_certificate() -> None:
    config = proxy_config(_loopback(), "127.0.0.1:18080", SOCKET, fallback_page=False)
    server = _server(config)
    del server["routes"]
    assert server == {
        "listen": ["127.0.0.1:18080"],
        # Caddy never fetches or makes a certificate of its own, nor redirects to HTTPS.
        "automatic_https": {"disable": True},
        "protocols": ["h1", "h2"],
        "logs": {"default_logger_name": "requests"},
    }
    assert set(config["apps"]) == {"http"}


def test_https_serves_the_certificate_it_is_given_and_no_other() -> None:
    policy = [{"certificate_selection": {"any_tag": ["step-flash"]}}]
    config = proxy_config(_everywhere(), ":8443", SOCKET, fallback_page=False)
    assert _server(config)["tls_connection_policies"] == policy
    # In a container: the secrets compose mounts.
    assert config["apps"]["tls"] == {
        "certificates": {
            "load_files": [
                {
                    "certificate": "/run/secrets/tls_certificate",
                    "key": "/run/secrets/tls_key",
                    "tags": ["step-flash"],
                }
            ]
        }
    }
    native = proxy_config(
        _everywhere(), ":8443", SOCKET, fallback_page=False, certificate=("/c.pem", "/k.pem")
    )
    assert native["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/c.pem", "key": "/k.pem", "tags": ["step-flash"]}
    ]


def test_the_certificates_and_the_proxys_copies_live_where_earlier_versions_put_them() -> None:
    """A data directory made by an earlier version keeps its authority (clients trust it) and its copies."""
    data = Path("/data")
    assert secrets_dir(data, "lab") == Path("/data/secrets/lab")
    assert tls_files(data, "lab") == TlsFiles(
        ca_cert=Path("/data/tls/ca.crt"),
        ca_key=Path("/data/tls/ca.key"),
        server_cert=Path("/data/tls/server.crt"),
        server_key=Path("/data/tls/server.key"),
        proxy_cert=Path("/data/secrets/lab/tls_certificate"),
        proxy_key=Path("/data/secrets/lab/tls_key"),
    )
    assert proxy_config_path(data, "lab") == Path("/data/compose/lab.proxy.json")
