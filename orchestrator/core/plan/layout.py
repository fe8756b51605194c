"""Where things are inside the images and the containers made of them: paths, the user, the port, the
service's name, the tools every build ships. The Dockerfiles and build-llama.sh are handed these as build
arguments; nothing else spells them out."""

from __future__ import annotations

from pathlib import PurePosixPath

CONTAINER_MODELS_DIR = PurePosixPath("/models")
CONTAINER_PORT = 8080
# In a container llama-server has no TCP port: it listens on this Unix socket, in a folder (a tmpfs
# volume of the project's) that only the proxy's container shares, and only the containers' user opens.
CONTAINER_SOCKET_DIR = PurePosixPath("/run/step-flash")
CONTAINER_SOCKET = CONTAINER_SOCKET_DIR / "llama-server.sock"
CONTAINER_API_KEY = PurePosixPath("/run/secrets/api_key")
CONTAINER_UI_DIR = PurePosixPath("/webui")
# An MTP sidecar kept outside the model's folder is mounted here (read-only, like the model).
CONTAINER_DRAFT_DIR = PurePosixPath("/draft")
# A vision projector kept outside the model's folder is mounted here (read-only, like the model).
CONTAINER_MMPROJ_DIR = PurePosixPath("/mmproj")
# Where the image records the GPU driver package it brings and its version (build-llama.sh driver); the
# build reads it back into a label.
CONTAINER_DRIVER_FILE = PurePosixPath("/usr/local/share/step-flash-driver.txt")
# Made by the image for its user (build-llama.sh user): an RPC worker's tensor cache volume is mounted here.
CONTAINER_CACHE_DIR = PurePosixPath("/var/cache/llama")
# RDMA devices (ConnectX with RoCE), given to a head and its workers where the host has them.
INFINIBAND = "/dev/infiniband"
# The runtime images create this user; compose runs the server as it, never as root.
CONTAINER_UID = 10001
SERVICE = "llama-server"
# Built in every image and native install; nothing else of llama.cpp is compiled. `a|b`: the first
# target the source has (llama.cpp renamed rpc-server to ggml-rpc-server in 2026); installed as `a`.
SHIPPED_TOOLS = (
    "llama-server",
    "llama-cli",
    "llama-batched-bench",
    "llama-bench",
    "rpc-server|ggml-rpc-server",
    # Quality and quantisation (orchestrator eval / quantize): perplexity and KL divergence, the
    # importance matrix from a calibration text, and the quantiser itself.
    "llama-perplexity",
    "llama-imatrix",
    "llama-quantize",
)
# On every long-running container of ours (the server, its proxy, a worker): the target it serves.
TARGET_LABEL = "io.step-flash.target"
# On the server's container: which bytes of the model it was started from.
MODEL_IDENTITY_LABEL = "io.step-flash.model-identity"
