"""Time to serving on a machine without the image: pulling the published image against compiling it cold,
side by side in one run, on the cpu target with the demo model.

    python benchmarks/pull_vs_compile.py --prune-build-cache
    python benchmarks/pull_vs_compile.py --smoke   # both paths, the compile one from the warm cache

The pull path: the cpu image pushed to a registry on 127.0.0.1 (Debian's docker-registry), removed here,
then `orchestrator up` with that registry, to /health ready. The compile path: `orchestrator up --build`
under an image name of its own with BuildKit's cache emptied first (`docker builder prune -af`, which
takes the compiler cache mount with it): no image, no layer cache, no ccache. That prune is why it asks
for --prune-build-cache: every later build on this machine starts cold too. The bases are kept (they are
made once per machine, pulled or bootstrapped, whichever path). Goal: the pull path in at most 10% of
the compile path's time. --smoke keeps BuildKit's cache, so its compile path is no cold compile and its
ratio no figure: it shows both paths still work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration import build_cpu_image, docker, free_port, run_cli, running_registry


def _up(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = run_cli("up", *args, env=env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(
            f"pull_vs_compile: up failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )
    run_cli("down", *args, env=env)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prune-build-cache",
        action="store_true",
        help="empty BuildKit's cache for the cold compile (every later build here starts cold too)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="both paths with BuildKit's cache kept (no figure): the script works",
    )
    opts = parser.parse_args()
    if not (opts.prune_build_cache or opts.smoke):
        print("pull_vs_compile: the cold compile empties BuildKit's cache; pass --prune-build-cache to go on")
        return 2
    image = build_cpu_image()
    suffix = image.tag.split(":", 1)[1]
    with tempfile.TemporaryDirectory() as tmp:
        with running_registry(Path(tmp)) as address:
            registry = f"{address}/bench"
            reference = f"{registry}/step-flash-bench-pull:{suffix}"
            for step in (("tag", image.tag, reference), ("push", reference), ("rmi", reference)):
                assert docker(*step).returncode == 0, step
            pull_env = {
                **image.env,
                "ORCHESTRATOR_IMAGE_REPO": "step-flash-bench-pull",
                "ORCHESTRATOR_REGISTRY": registry,
                "ORCHESTRATOR_PROJECT": "sfo-bench-pull",
            }
            compile_env = {
                **image.env,
                "ORCHESTRATOR_IMAGE_REPO": "step-flash-bench-compile",
                "ORCHESTRATOR_PROJECT": "sfo-bench-compile",
            }
            for tag in (f"step-flash-bench-pull:{suffix}", f"step-flash-bench-compile:{suffix}"):
                docker("rmi", "-f", tag)
            args = [*image.args, "--port", str(free_port())]
            pulled = _up(args, pull_env)
            if not opts.smoke:
                assert docker("builder", "prune", "-af").returncode == 0
            compiled = _up([*args, "--build"], compile_env)
        for tag in (f"step-flash-bench-pull:{suffix}", f"step-flash-bench-compile:{suffix}"):
            docker("rmi", "-f", tag)
    print("time to serving without the image (cpu target, SmolLM2-135M):")
    print(f"  pull    {pulled:7.1f} s   (registry on 127.0.0.1)")
    if opts.smoke:
        print(
            f"  compile {compiled:7.1f} s   (smoke: BuildKit's cache kept, so no cold compile and no ratio)"
        )
        return 0
    print(f"  compile {compiled:7.1f} s   (cold: no image, no BuildKit cache, no ccache)")
    print(f"  pull / compile = {pulled / compiled:.3f}   (goal: at most 0.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
