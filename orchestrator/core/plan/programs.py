"""The one-off programs: the publisher's basic inference (llama-cli, one turn) and its benchmark
(llama-batched-bench, one run per parameter set, with the rows it must print)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.core.bench import expected_rows
from orchestrator.core.catalogue import BenchSet, Profile, Target
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan.argv import (
    DEVICE_LOG,
    Command,
    binary,
    context_args,
    kv_args,
    mmap_args,
    model_arg,
    program_env,
    template_args,
    thread_args,
)
from orchestrator.core.plan.image import ImageBuild
from orchestrator.core.plan.native import NativeBuild
from orchestrator.core.rpc import rpc_arg
from orchestrator.core.settings import Settings
from orchestrator.core.sources import Source

SEED_PROMPT = "What's your name?"
SEED_TEMPERATURE = "1.0"


@dataclass(frozen=True)
class BenchPlan:
    name: str
    reference: str | None
    rows: int
    command: Command
    # The parameters the command was written from, so nothing reads them back out of its argv.
    ctx: int
    npp: tuple[int, ...]
    ntg: tuple[int, ...]
    npl: tuple[int, ...]

    def expected(self) -> list[tuple[int, int, int]]:
        """The (pp, tg, pl) rows llama-batched-bench will print for these parameters."""
        return expected_rows(self.ctx, self.npp, self.ntg, self.npl)


@dataclass(frozen=True)
class BenchOverride:
    """`--npp/--ntg/--npl` for quick runs; the context grows to fit them when it has to."""

    npp: tuple[int, ...] | None = None
    ntg: tuple[int, ...] | None = None
    npl: tuple[int, ...] | None = None

    def apply(self, bench: BenchSet) -> BenchSet:
        npp, ntg, npl = self.npp or bench.npp, self.ntg or bench.ntg, self.npl or bench.npl
        needed = max(npl) * (max(npp) + max(ntg))
        return replace(
            bench,
            npp=npp,
            ntg=ntg,
            npl=npl,
            ctx=max(bench.ctx, needed) if self.npp or self.ntg or self.npl else bench.ctx,
        )


def run_command(
    target: Target,
    profile: Profile,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
    prompt: str = SEED_PROMPT,
) -> Command:
    argv = [
        binary("llama-cli", build),
        "-m",
        model_arg(model, runtime),
        *context_args(profile, settings),
        *thread_args(profile.threads, settings),
        "--temp",
        SEED_TEMPERATURE,
        "-p",
        prompt,
        *(["-n", str(model.max_tokens)] if model.max_tokens else []),
        # llama-cli is an interactive chat by default; one answer, then exit.
        "--single-turn",
        *rpc_arg(settings.rpc),
        *DEVICE_LOG,
    ]
    argv += template_args(model)
    return Command(tuple(argv), program_env(target, settings, profile.env))


def bench_command(
    target: Target,
    bench: BenchSet,
    source: Source,
    model: ModelSpec,
    settings: Settings,
    runtime: str,
    build: ImageBuild | NativeBuild,
) -> BenchPlan:
    def csv(values: tuple[int, ...]) -> str:
        return ",".join(str(v) for v in values)

    argv = [
        binary("llama-batched-bench", build),
        "-m",
        model_arg(model, runtime),
        "-c",
        str(bench.ctx),
        "-b",
        str(bench.batch),
        "-ub",
        str(bench.ubatch),
        "-npp",
        csv(bench.npp),
        "-ntg",
        csv(bench.ntg),
        "-npl",
        csv(bench.npl),
        *kv_args(bench.cache_type_k, bench.cache_type_v),
        *mmap_args(bench.mmap, source),
        *thread_args(bench.threads, settings),
        *rpc_arg(settings.rpc),
        *DEVICE_LOG,
        "--output-format",
        "jsonl",
    ]
    rows = len(bench.npp) * len(bench.ntg) * len(bench.npl)
    return BenchPlan(
        bench.name,
        bench.reference,
        rows,
        Command(tuple(argv), program_env(target, settings, bench.env)),
        ctx=bench.ctx,
        npp=bench.npp,
        ntg=bench.ntg,
        npl=bench.npl,
    )
