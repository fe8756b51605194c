"""`eval`: a quantisation's quality measured on this machine with llama-perplexity. The reference (a
larger quantisation of the same model, or the probabilities saved from one) reads the fixed text once and
its token probabilities are kept; the model is then compared with them: perplexity, KL divergence, how
often the most likely token agrees. Recorded beside the benchmark records; `bench report` shows them."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from orchestrator.app.inputs import registered_path
from orchestrator.app.options import Commands, command, force_option, stop_server_option, whole_numbers
from orchestrator.app.outcomes import Screen
from orchestrator.app.plan_options import flags
from orchestrator.app.results import append_record, quality_table, results_dir
from orchestrator.app.session import Session
from orchestrator.app.steps.building import built_with
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.preflight import checked
from orchestrator.app.steps.serving import beside_server
from orchestrator.app.steps.tools import ToolsPlanned, planned_tools, ready_to_run, run_tool
from orchestrator.core.models import ModelSpec
from orchestrator.core.plan import Plan
from orchestrator.core.plan.jobs import ToolJob, with_paths
from orchestrator.core.quality import (
    CORPUS,
    DEFAULT_CHUNKS,
    EvalRecord,
    SavedLogits,
    Vocabulary,
    compare_args,
    figures_of,
    logits_bytes,
    parse_output,
    read_logits_header,
    reference_args,
    reference_problem,
    vocabulary_problem,
)
from orchestrator.core.quantize import CHUNK_TOKENS
from orchestrator.errors import ExitCode, OrchestratorError, UsageError
from orchestrator.executors.texts import pinned_text, pinned_text_path
from orchestrator.models.gguf import MAGIC, vocabulary

GIB = 1 << 30


def register(commands: Commands) -> None:
    p = command(commands, "eval", _eval, plan=True, writes="data", as_json="print the record as JSON")
    p.add_argument(
        "--reference",
        "-r",
        help="a larger quantisation of the same model (a GGUF or a registered name), or the .kld file an "
        "earlier eval saved; without it, the model's own perplexity (and its probabilities kept for later)",
    )
    p.add_argument(
        "--chunks",
        type=whole_numbers("chunks", 1),
        help=f"chunks of 512 tokens of the text to read (default {DEFAULT_CHUNKS}; the text holds about 50)",
    )
    p.add_argument("--results", help="folder of the results (default: <data dir>/results)")
    p.add_argument("--dry-run", action="store_true", help="check everything and show the runs; run nothing")
    force_option(p, "go on even when the model will not fit beside a running server")
    stop_server_option(p)


@dataclass(frozen=True)
class Reference:
    """What the model is compared with: a GGUF (its run saves logits) or logits saved before."""

    alias: str
    path: Path
    logits: Path
    saved: SavedLogits | None

    @property
    def must_run(self) -> bool:
        return self.saved is None


def _eval(session: Session, args: argparse.Namespace) -> Evaluated | ToolsPlanned:
    report = session.render.reporter()
    # The model there (the demo one written when it is the plan's) and within memory, as for serving it.
    plan = checked(session.plan(args), report, ("server",), args.force)
    chunks = args.chunks[0] if args.chunks else DEFAULT_CHUNKS
    results = results_dir(flags(args), args.results)
    reference = _reference(plan, args.reference, chunks)
    if args.dry_run:
        text = pinned_text_path(CORPUS, plan.data_dir / "cache")
        return planned_tools(plan, eval_jobs(plan, reference, text, chunks))
    record = evaluate(
        plan,
        session.executors(),
        report,
        reference=reference,
        chunks=chunks,
        force=args.force,
        stop_server=args.stop_server,
    )
    append_record(results, record)
    return Evaluated(record, results / "bench.jsonl", reference.logits if reference.must_run else None)


def _model_vocabulary(model: ModelSpec) -> Vocabulary:
    if not model.present:
        raise UsageError(f"the model is not here ({model.path}); pull it or give --model FILE")
    if model.problem:
        raise UsageError(model.problem)
    return vocabulary(model.path)


def _reference(plan: Plan, wanted: str | None, chunks: int) -> Reference:
    """The reference asked for, checked against the model: the same vocabulary, a readable file."""
    model_vocab = _model_vocabulary(plan.model)
    logits_dir = plan.data_dir / "eval"
    if wanted is None:
        # The model is its own reference: its run gives its perplexity and keeps its probabilities.
        return Reference(
            plan.model.alias, plan.model.path, _logits_path(logits_dir, plan.model.path, chunks), None
        )
    path = registered_path(plan.inputs.settings.models_dir, wanted).expanduser().absolute()
    # A registered name names the reference; a file is named by itself.
    name = wanted if path != Path(wanted).expanduser().absolute() else path.name.removesuffix(".gguf")
    if not path.is_file():
        raise UsageError(
            f"no reference {wanted}: give a GGUF file, a registered model name or a saved .kld file"
        )
    with path.open("rb") as handle:
        head = handle.read(24)
    saved = read_logits_header(head)
    if saved is not None:
        if saved.n_vocab != model_vocab.size:
            raise UsageError(
                f"{plan.model.path.name} has {model_vocab.size} tokens but the probabilities in {path.name} were "
                f"saved from a model with {saved.n_vocab}: KL divergence compares the same tokens; choose a "
                "reference of the same model"
            )
        return Reference(path.stem, path, path, saved)
    if not head.startswith(MAGIC):
        raise UsageError(f"{path} is neither a GGUF nor probabilities saved by an eval (.kld)")
    problem = reference_problem(plan.model.path.name, path.name) or vocabulary_problem(
        model_vocab, vocabulary(path), plan.model.path.name, path.name
    )
    if problem:
        raise UsageError(problem)
    return Reference(
        name,
        path,
        _logits_path(logits_dir, path, chunks),
        None,
    )


def _logits_path(folder: Path, model: Path, chunks: int) -> Path:
    """Where a model's saved probabilities live: by its file's name, size and time, the text and chunks."""
    stat = model.stat()
    key = hashlib.sha256(f"{model}:{stat.st_size}:{stat.st_mtime_ns}:{CORPUS.sha256}:{chunks}".encode())
    return folder / f"{model.name.removesuffix('.gguf')}-{key.hexdigest()[:12]}.kld"


def evaluate(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    reference: Reference,
    chunks: int,
    force: bool = False,
    stop_server: bool = False,
) -> EvalRecord:
    started = time.time()
    text = pinned_text(CORPUS, plan.data_dir / "cache")
    plan = ready_to_run(plan, ex, report)
    folder = reference.logits.parent
    folder.mkdir(parents=True, exist_ok=True)
    if reference.must_run:
        need = logits_bytes(plan.model.arch.n_vocab if plan.model.arch else 0, chunks)
        free = shutil.disk_usage(folder).free
        if free < need:
            raise UsageError(
                f"{folder} has {free / GIB:.1f} GiB free but the reference's probabilities take about "
                f"{need / GIB:.1f} GiB; free space there or pass fewer --chunks"
            )
    jobs = dict(eval_jobs(plan, reference, text, chunks))
    runtime = ex.runtime(plan)
    with beside_server(plan, runtime, report, ("server",), force=force, stop_server=stop_server):
        ref_out = compared = parse_output(())
        if REFERENCE_STEP in jobs:
            report.note(f"reference {reference.alias}: perplexity over {chunks} chunks of {CORPUS.title}")
            ref_out = parse_output(run_tool(plan, ex, report, jobs[REFERENCE_STEP], shown=_is_summary).lines)
        if ref_out.problem:
            raise OrchestratorError(ref_out.problem)
        if COMPARE_STEP in jobs:
            report.note(f"{plan.model.alias} against {reference.alias}: KL divergence, top token, perplexity")
            compared = parse_output(run_tool(plan, ex, report, jobs[COMPARE_STEP], shown=_is_summary).lines)
    figures = figures_of(ref_out, compared)
    if reference.path == plan.model.path:
        figures = {**figures, "ppl": ref_out.figures.get("ppl"), "ppl_reference": None}
    return EvalRecord(
        run_id=uuid.uuid4().hex[:12],
        started=started,
        target=plan.target,
        model=_described(plan.model.alias, plan.model.path),
        reference=_described(reference.alias, reference.path),
        text=CORPUS.describe(),
        chunk_tokens=CHUNK_TOKENS,
        chunks=compared.chunks or ref_out.chunks or chunks,
        ppl=figures["ppl"],
        ppl_reference=figures["ppl_reference"],
        kld=figures["kld"],
        same_top_p=figures["same_top_p"],
        build=built_with(plan, ex),
        host=ex.host.summary(plan.inputs.facts),
    )


REFERENCE_STEP = "the reference's perplexity, its probabilities saved"
COMPARE_STEP = "the model against the saved probabilities"


def eval_jobs(plan: Plan, reference: Reference, text: Path, chunks: int) -> list[tuple[str, ToolJob]]:
    """The llama-perplexity runs of an evaluation: the reference's (unless its probabilities were saved
    before), then the model's against them (unless the model is its own reference)."""
    folder = reference.logits.parent
    # As every llama.cpp program of the plan: --threads, else the profile's.
    threads = plan.inputs.settings.threads or plan.inputs.profile.threads
    jobs = []
    if reference.must_run:
        jobs.append((REFERENCE_STEP, ToolJob(reference_args_for(reference, text, chunks, threads), folder)))
    if reference.path != plan.model.path:
        jobs.append(
            (COMPARE_STEP, ToolJob(compare_args_for(plan.model.path, reference.logits, threads), folder))
        )
    return jobs


def reference_args_for(
    reference: Reference, text: Path, chunks: int, threads: int | None
) -> tuple[str | Path, ...]:
    words = reference_args("{model}", "{text}", "{logits}", chunks, threads)
    return with_paths(words, model=reference.path, text=text, logits=reference.logits)


def compare_args_for(model: Path, logits: Path, threads: int | None) -> tuple[str | Path, ...]:
    return with_paths(compare_args("{model}", "{logits}", threads), model=model, logits=logits)


def _is_summary(line: str) -> bool:
    return any(
        mark in line for mark in ("Final estimate", "Mean PPL", "Mean    KLD", "Same top p", "computing over")
    )


def _described(alias: str, path: Path) -> dict[str, object]:
    # The file names the quantisation (several files share a model's alias); the alias says which model.
    return {
        "name": path.name.removesuffix(".gguf"),
        "alias": alias,
        "file": path.name,
        "size": path.stat().st_size if path.is_file() else None,
    }


@dataclass(frozen=True)
class Evaluated:
    record: EvalRecord
    stored: Path
    # The probabilities the reference's run kept: a later eval can name them as --reference.
    kept: Path | None

    def show(self, screen: Screen) -> ExitCode:
        if screen.as_json:
            kept = {"reference_probabilities": str(self.kept) if self.kept else None}
            screen.json({**json.loads(self.record.to_json()), **kept})
            return ExitCode.OK
        screen.out.print(quality_table([self.record], f"quality on {self.record.text}"))
        screen.out.print(f"recorded in {self.stored}; 'orchestrator bench report' shows every evaluation")
        if self.kept is not None:
            screen.out.print(
                f"the reference's probabilities are kept in {self.kept} (--reference for later evals)"
            )
        return ExitCode.OK
