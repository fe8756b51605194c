"""The web page an image carries where llama-server was built without its own (the build could not
fetch llama.cpp's prebuilt UI bundle: offline, air-gapped): llama.cpp's built web UI as an older
llama-cpp-python sdist on the package index ships it, in one file, pinned by version and sha256."""

from __future__ import annotations

# Version and sha256 of the sdist as downloaded here (field notes: it loads against a 0c1e570 server).
FALLBACK_SDIST = (
    "llama-cpp-python",
    "0.3.16",
    "34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6",
)
FALLBACK_MEMBER = "vendor/llama.cpp/tools/server/public/index.html.gz"

# That UI (mid-2025) sends dry_penalty_last_n = -1 from the server's defaults, which the pinned server
# (0c1e570) rejects with 400: the page is served with this one request field dropped, and otherwise as
# it was published.
COMPAT_SCRIPT = """<script>
(() => {
  const original = window.fetch;
  window.fetch = (input, init) => {
    if (init && typeof init.body === 'string' && String(input).endsWith('/chat/completions')) {
      const body = JSON.parse(init.body);
      if (body.dry_penalty_last_n < 0) delete body.dry_penalty_last_n;
      init = {...init, body: JSON.stringify(body)};
    }
    return original(input, init);
  };
})();
</script>"""


def fallback_source() -> str:
    package, version, sha256 = FALLBACK_SDIST
    return f"llama.cpp web UI from the {package} {version} sdist (sha256 {sha256[:12]}...)"


def with_compat(page: str) -> str:
    """The page with COMPAT_SCRIPT run before its own scripts."""
    at = page.find("<head>")
    if at < 0:
        return COMPAT_SCRIPT + page
    at += len("<head>")
    return page[:at] + COMPAT_SCRIPT + page[at:]
