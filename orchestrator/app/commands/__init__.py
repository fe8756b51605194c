"""One module per command family: its parser options, its steps and its outcomes with how they are
shown. Families never import each other, only the shared steps (orchestrator.app.steps) and the app's
common modules; the CLI imports a family only when one of its commands runs, so `orchestrator --help`
and a mistyped command answer at once.

`COMMANDS` registers each command: the family module (in this package) whose `register` adds its
parser, and the line `orchestrator --help` shows for it. A new command is a new module and one line here."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "targets": ("introspection", "list the machines this tool knows"),
    "plan": ("introspection", "show what would be built and run, and why, without doing it"),
    "build": ("build", "build llama.cpp for the target: its image, or on the host (native)"),
    "up": ("server_lifecycle", "build if needed, load the model and serve it (OpenAI-compatible)"),
    "down": ("server_lifecycle", "stop and remove the server; models and volumes are kept"),
    "status": ("server_lifecycle", "state, health, endpoint, model, uptime and tokens/s of the server"),
    "logs": ("server_lifecycle", "the server's log"),
    "run": ("run", "one answer from llama-cli: the publisher's basic inference"),
    "bench": (
        "bench",
        "the publisher's llama-batched-bench runs, compared with its tables; serve: the server with "
        "speculative decoding off and on",
    ),
    "report": (
        "bench",
        "a report to share from this machine: doctor, the plan, the image, the devices, a short benchmark "
        "next to the publisher's row (--spec: the serving benchmark too); secrets taken out",
    ),
    "ci-matrix": ("introspection", "the CI image-build matrix from the target catalogue, as JSON"),
    "ci-lock": ("introspection", "CI: record the digests of the images it pushed in the image lock"),
    "doctor": ("doctor", "check this host for what the target needs, each problem with its fix"),
    "worker": ("workers", "an RPC worker on this machine: lends its memory and GPU to a head"),
    "model": ("models", "pull, add, list, verify and remove models"),
    "bases": ("build", "make local base images without a registry (air-gapped hosts)"),
    "upgrade": (
        "upgrade_rollback",
        "move the server to a newer llama.cpp: built while it serves, checked, and rolled back on failure",
    ),
    "rollback": ("upgrade_rollback", "serve the previous (or a named) deployment again"),
    "history": ("upgrade_rollback", "the deployments of this server: what each ran, which one serves"),
    "eval": (
        "quality",
        "a quantisation's quality on this machine: perplexity, KL divergence and top-token agreement with a "
        "reference (llama-perplexity)",
    ),
    "quantize": (
        "quantize",
        "quantise a full-precision GGUF with llama-quantize (optionally calibrated: llama-imatrix) and register it",
    ),
}
