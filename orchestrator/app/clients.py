"""How people and coding agents reach the server: the lines `up` prints for the two APIs (base URLs, the
key's file, the certificate to trust) and for curl, the openai and anthropic Python clients and agents."""

from __future__ import annotations

import json

from orchestrator.core.plan import Plan
from orchestrator.executors import certificates


def client_rows(plan: Plan, certificate: certificates.Shown | None) -> list[tuple[str, str]]:
    """What a person or an agent needs to use the server: the two APIs' base URLs, the key's file, the
    certificate to trust, and a line each for curl and the openai and anthropic Python clients."""
    root = plan.endpoint.removesuffix("/v1")
    key = f"open('{plan.api_key_file}').read().strip()" if plan.api_key_file else "'none'"
    ca = str(certificate.trust_file) if certificate else None

    def sdk(package: str, cls: str, base_url: str) -> str:
        # Each SDK's own HTTP client class, whichever HTTP library the installed version is built on.
        # An SSL context: the SDKs' HTTP library now deprecates a path given as verify.
        trusting = (
            f", http_client={package}.DefaultHttpxClient(verify=ssl.create_default_context(cafile='{ca}'))"
            if ca
            else ""
        )
        return f"{package}.{cls}(base_url='{base_url}', api_key={key}{trusting})"

    rows = [
        ("OpenAI base URL", plan.endpoint),
        ("Anthropic base URL", f"{root}  (POST /v1/messages)"),
        (
            "API key",
            f"in {plan.api_key_file} (Authorization: Bearer, or x-api-key)"
            if plan.api_key_file
            else "none (loopback)",
        ),
        ("images", plan.model.images()),
    ]
    if certificate is not None:
        rows.append(
            (
                "trust",
                f"{certificate.trust_file}  SHA-256 {certificate.fingerprint}  "
                f"(server certificate until {certificate.not_after:%Y-%m-%d}; up renews it)",
            )
        )
    rows += [
        ("try", curl_example(plan, ca)),
        ("python (openai)", sdk("openai", "OpenAI", plan.endpoint)),
        ("python (anthropic)", sdk("anthropic", "Anthropic", root)),
        (
            "agents",
            f"OPENAI_BASE_URL={plan.endpoint} ANTHROPIC_BASE_URL={root}"
            + (f" SSL_CERT_FILE={ca} NODE_EXTRA_CA_CERTS={ca}" if ca else "")
            + (f" and the key from {plan.api_key_file}" if plan.api_key_file else ""),
        ),
    ]
    return rows


def curl_example(plan: Plan, ca: str | None = None) -> str:
    # Small enough for the 135M demo model to answer in one line (without "in one sentence" it rambles).
    question = {"role": "user", "content": "What is the capital of France? Answer in one sentence."}
    body = json.dumps({"model": plan.model.alias, "messages": [question], "max_tokens": 64, "temperature": 0})
    auth = f' -H "Authorization: Bearer $(cat {plan.api_key_file})"' if plan.api_key_file else ""
    trust = f" --cacert {ca}" if ca else ""
    return f"curl -s{trust} {plan.endpoint}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"
