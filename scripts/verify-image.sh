#!/usr/bin/env bash
# Check a built image against its plan, the way tests/engine/test_arm64.py proves the arm64 path here:
# the image's platform is the plan's, llama.cpp's CPU variants for that architecture are inside, the CUDA
# plugin (if any) holds device code for exactly the plan's CUDA architectures (cuobjdump, run in the
# plan's build base), and llama-server starts. CI runs it after each build, on the image's own runner.
#   scripts/verify-image.sh PLAN.json     (from `orchestrator plan ... --json`)
set -euo pipefail
plan="${1:?usage: verify-image.sh PLAN.json}"

field() {
    python3 -c '
import json, re, sys
build = json.load(open(sys.argv[1]))["build"]
args = build["build_args"]
cuda = re.search(r"-DCMAKE_CUDA_ARCHITECTURES=(\S+)", args["CMAKE_ARGS"])
values = {
    "tag": build["tag"],
    "platform": build["platform"],
    "build_base": args["BUILD_BASE"],
    "build_platform": build["build_platform"],
    # 121a-real -> sm_121a; 86-real;89 -> sm_86 sm_89
    "cuda_archs": " ".join(sorted("sm_" + a.split("-")[0] for a in cuda.group(1).split(";"))) if cuda else "",
}
print(values[sys.argv[2]])
' "$plan" "$1"
}
tag=$(field tag)
platform=$(field platform)
arch="${platform#*/}"

found=$(docker image inspect "$tag" --format '{{.Os}}/{{.Architecture}}')
[ "$found" = "$platform" ] || { echo "FAIL $tag is $found, the plan says $platform" >&2; exit 1; }
echo "ok   $tag is $platform"

variants=$(docker run --rm --platform "$platform" --entrypoint sh "$tag" -c 'cd /opt/llama && ls libggml-cpu-*.so' | tr '\n' ' ')
case "$arch" in
    arm64) first=libggml-cpu-armv8.0 ;;
    amd64) first=libggml-cpu-x64 ;;
    *) first=libggml-cpu- ;;
esac
count=$(echo "$variants" | wc -w)
if [ "$count" -lt 4 ] || ! echo "$variants" | grep -q "$first"; then
    echo "FAIL CPU variants for $arch: $variants" >&2
    exit 1
fi
echo "ok   $count CPU variants for $arch: $variants"

wanted=$(field cuda_archs)
if [ -n "$wanted" ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
    container=$(docker create "$tag")
    docker cp "$container:/opt/llama/libggml-cuda.so" "$out/" >/dev/null
    docker rm "$container" >/dev/null
    # cuobjdump is a build tool: it runs in the plan's build base, on the platform the build ran on.
    got=$(docker run --rm --platform "$(field build_platform)" -v "$out:/lib-out:ro" "$(field build_base)" cuobjdump --list-elf /lib-out/libggml-cuda.so \
        | sed -n 's/^ELF file.*\.\(sm_[0-9a-z]*\)\.cubin$/\1/p' | sort -u | tr '\n' ' ')
    [ "${got% }" = "$wanted" ] || { echo "FAIL libggml-cuda.so holds '${got% }', the plan asks '$wanted'" >&2; exit 1; }
    echo "ok   libggml-cuda.so holds $wanted device code"
fi

version=$(docker run --rm --platform "$platform" "$tag" llama-server --version 2>&1) || { echo "FAIL llama-server: $version" >&2; exit 1; }
echo "ok   llama-server starts: $(echo "$version" | grep -m1 version)"
