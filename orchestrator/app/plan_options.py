"""The plan options: each flag one setting (see orchestrator.core.settings.Settings), taken by every
command that makes a plan, and what they become: the flags layer of the command's settings."""

from __future__ import annotations

import argparse

# Flags that map one-to-one onto settings (see orchestrator.core.settings.Settings).
SETTING_FLAGS = (
    "target",
    "profile",
    "source",
    "model",
    "models_dir",
    "host",
    "port",
    "api_key_file",
    "tls",
    "cors",
    "host_names",
    "allow_plain_http",
    "bases",
    "platform",
    "ctx_size",
    "threads",
    "speculative",
    "draft_model",
    "mmproj",
    "reasoning",
    "rpc",
    "native",
    "wait_timeout",
    "idle",
    "ui",
    "cuda_architectures",
    "gpu",
    "registry",
    "build",
    "trust_tag",
)


def plan_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("plan options (override orchestrator.yaml and ORCHESTRATOR_*)")
    group.add_argument("--target", "-t", help="dgx-spark, ryzen-ai-max, mac-studio, cpu, or auto (default)")
    group.add_argument("--profile", "-p", help="profile of the target (default, long-context)")
    group.add_argument(
        "--source", help="llama.cpp: upstream (default), stepfun-fork, URL@COMMIT, or a directory"
    )
    group.add_argument("--model", "-m", help="GGUF file (first split part) or directory to serve")
    group.add_argument("--models-dir", help="where models are kept")
    group.add_argument("--host", help="address to publish the server on (default 127.0.0.1)")
    group.add_argument("--port", help="port to publish the server on (default 8080)")
    group.add_argument(
        "--api-key-file", help="file with the API key clients must send (only its owner may read it)"
    )
    group.add_argument(
        "--tls",
        help="HTTPS: auto (beyond loopback, from a local certificate authority; default), on, off, or "
        "CERT,KEY (your own files)",
    )
    group.add_argument(
        "--cors",
        help="web origins whose pages may call the server, comma-separated (e.g. http://192.168.1.20:3000)",
    )
    group.add_argument(
        "--host-names", help="more names or addresses clients use for this machine, comma-separated"
    )
    group.add_argument(
        "--allow-plain-http",
        action="store_const",
        const=True,
        default=None,
        help="confirm serving beyond loopback with --tls off: the key and prompts cross the network in clear",
    )
    group.add_argument("--bases", choices=("upstream", "local"), help="base images: upstream or local")
    group.add_argument(
        "--platform",
        choices=("linux/amd64", "linux/arm64"),
        help="image platform, overriding the target's (e.g. a DGX Spark image built on amd64)",
    )
    group.add_argument("--ctx-size", "-c", help="context size, overriding the profile")
    group.add_argument("--threads", help="CPU threads, overriding the profile")
    group.add_argument(
        "--spec",
        dest="speculative",
        help="speculative decoding: off, mtp (the model's MTP heads), mtp:N (N draft tokens), or an n-gram "
        "type such as ngram-mod (overrides the profile's)",
    )
    group.add_argument(
        "--draft-model", help="MTP file (mtp-*.gguf, Step3.7-flash-mtp-*.gguf) for a model without its heads"
    )
    group.add_argument(
        "--mmproj",
        help="vision projector GGUF (mmproj-*.gguf) so the model reads images, or none to serve text only "
        "(default: the mmproj*.gguf beside the model)",
    )
    group.add_argument(
        "--reasoning",
        help="reasoning level of every request: low, medium or high (the template's reasoning_effort; a "
        "request's own overrides it); default: the chat template's own",
    )
    group.add_argument(
        "--rpc",
        help="RPC workers to spread the model over: ADDRESS:PORT[,ADDRESS:PORT...] ('orchestrator worker up' "
        "on each)",
    )
    group.add_argument(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build and run on the host instead of in a container",
    )
    group.add_argument("--wait-timeout", help="seconds to wait for the server to become healthy")
    group.add_argument(
        "--idle",
        help="free the model after this long without a request (llama-server's sleep): e.g. 30m, or off; "
        "default: the target's",
    )
    group.add_argument(
        "--cuda-architectures",
        help="CUDA architectures to compile for, replacing the target's (e.g. '121a-real;90-real')",
    )
    group.add_argument(
        "--gpu", help="which GPUs llama.cpp may use: all (default), or indices such as 0 or 0,1"
    )
    group.add_argument("--registry", help="where published images are pulled from (and pushed to), or none")
    compile_or_not = group.add_mutually_exclusive_group()
    compile_or_not.add_argument(
        "--build", dest="build", action="store_const", const="always", help="compile the image, never pull it"
    )
    compile_or_not.add_argument(
        "--no-build",
        dest="build",
        action="store_const",
        const="never",
        help="never compile: pull the published image or stop",
    )
    group.add_argument(
        "--trust-tag",
        action="store_const",
        const=True,
        default=None,
        help="accept a published image whose digest is not the lock's, and say so",
    )
    group.add_argument(
        "--ui",
        help="the web page: auto (the image's own, if it has one), off, or DIR: a built web UI to serve "
        "(read-only)",
    )


def flags(args: argparse.Namespace) -> dict[str, object]:
    """The plan options given, as settings flags."""
    return {name: getattr(args, name, None) for name in SETTING_FLAGS}
