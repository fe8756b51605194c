"""The page check: what a browser gets at the server's address once it is up."""

from __future__ import annotations

from orchestrator.core.plan import Plan
from orchestrator.executors.host import Host


def web_page(plan: Plan, host: Host) -> tuple[str | None, str | None]:
    """What a browser gets at the server's address: the page to open, or why there is none."""
    ui = plan.inputs.settings.ui
    if ui == "off":
        return None, "the web page is off (ui: off); the API answers at " + plan.endpoint
    url = plan.base_url + "/"
    status = host.page_status(url, trust=plan.trust)
    if status == 200:
        return url, None
    if ui == "auto":
        return None, (
            f"no web page at {url} (HTTP {status}): this image was built without llama-server's web UI; "
            "serve a built one with --ui DIR"
        )
    return None, f"no web page at {url} (HTTP {status}): {ui} holds no index.html the server can serve"
