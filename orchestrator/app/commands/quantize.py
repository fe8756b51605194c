"""`quantize`: a full-precision GGUF made smaller with llama.cpp's llama-quantize, in the target's image
(or native build), optionally calibrated: llama-imatrix reads a text first (--calibration) or an
importance matrix is given (--imatrix). Memory and free disk are checked before anything runs; the result
is written beside nothing of the owner's (a folder of its own under the models directory), checked as a
GGUF and registered as a model. The source is only read."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.app.options import Commands, command, whole_numbers
from orchestrator.app.outcomes import Screen
from orchestrator.app.session import Session
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.tools import ToolsPlanned, planned_tools, ready_to_run, run_tool
from orchestrator.core.models import is_mtp_file_name, is_projector_name
from orchestrator.core.plan import Plan
from orchestrator.core.plan.jobs import ToolJob, with_paths
from orchestrator.core.quantize import (
    GIB,
    NEEDS_IMATRIX,
    Source,
    UnknownType,
    calibration_problem,
    canonical_type,
    disk_problem,
    imatrix_args,
    memory_problem,
    output_bytes,
    output_name,
    quantize_args,
    source_problem,
)
from orchestrator.errors import ExitCode, UsageError
from orchestrator.files import readable_folder
from orchestrator.models import store
from orchestrator.models.gguf import quantise_source, read_model
from orchestrator.models.local import find_projector, find_sidecar
from orchestrator.models.store import Entry

# Where quantised files are kept under the models directory (the store's own: `model rm` deletes them).
QUANTIZED_DIR = "quantized"


def register(commands: Commands) -> None:
    p = command(
        commands,
        "quantize",
        _quantize,
        plan=True,
        writes="models",
        check=_check_arguments,
        as_json="print the registered model (or, with --dry-run, the runs) as JSON",
    )
    p.add_argument(
        "--from",
        dest="source_file",
        required=True,
        help="the GGUF to quantise (BF16/F16/F32, or a larger quantisation)",
    )
    p.add_argument(
        "--type", dest="quant_type", required=True, help="llama-quantize's type, e.g. Q4_K_S, IQ4_XS, Q8_0"
    )
    calibrated = p.add_mutually_exclusive_group()
    calibrated.add_argument(
        "--imatrix", help="an importance matrix to quantise with (llama-imatrix's output)"
    )
    calibrated.add_argument(
        "--calibration", help="a plain text to compute the importance matrix from first (llama-imatrix)"
    )
    p.add_argument(
        "--chunks",
        type=whole_numbers("chunks", 1),
        help="chunks of 512 tokens of the calibration text llama-imatrix reads (default: all of it)",
    )
    p.add_argument("--name", help="name to register the result under (default: from the file name)")
    p.add_argument("--dry-run", action="store_true", help="check everything and show the runs; run nothing")


def _check_arguments(args: argparse.Namespace) -> None:
    """What can be refused before anything is read or locked: the type, and the calibration text."""
    try:
        args.quant_type = canonical_type(args.quant_type)
    except UnknownType as exc:
        raise UsageError(str(exc)) from None
    if args.calibration:
        path = Path(args.calibration).expanduser()
        if not path.is_file():
            raise UsageError(f"no calibration file {path}")
        problem = calibration_problem(path.read_bytes(), path.name)
        if problem:
            raise UsageError(problem)
    if args.imatrix and not Path(args.imatrix).expanduser().is_file():
        raise UsageError(f"no importance matrix {args.imatrix}")
    problem = source_problem(Path(args.source_file).name)
    if problem:
        raise UsageError(problem)


def _quantize(session: Session, args: argparse.Namespace) -> Quantized | ToolsPlanned:
    # The plan names the source as its model: the image and its devices are the target's.
    args.model = args.source_file
    plan = session.plan(args)
    models_dir = readable_folder(plan.inputs.settings.models_dir, "the models directory")
    source = quantise_source(Path(args.source_file).expanduser().absolute())
    calibration = Path(args.calibration).expanduser().absolute() if args.calibration else None
    imatrix = Path(args.imatrix).expanduser().absolute() if args.imatrix else None
    return quantize(
        plan,
        session.executors(),
        session.render.reporter(),
        source=source,
        quant_type=args.quant_type,
        models_dir=models_dir,
        name=args.name,
        calibration=calibration,
        imatrix=imatrix,
        chunks=args.chunks[0] if args.chunks else None,
        dry_run=args.dry_run,
    )


def quantize(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    source: Source,
    quant_type: str,
    models_dir: Path,
    name: str | None,
    calibration: Path | None,
    imatrix: Path | None,
    chunks: int | None,
    dry_run: bool = False,
) -> Quantized | ToolsPlanned:
    if quant_type in NEEDS_IMATRIX and calibration is None and imatrix is None:
        raise UsageError(
            f"{quant_type} needs an importance matrix: pass --calibration TEXT (computed first) or --imatrix FILE"
        )
    file_name = output_name(source.path, quant_type)
    name = name or file_name.removesuffix(".gguf").lower()
    folder = output_folder(models_dir, source.path, file_name)
    result = folder / file_name
    if result.exists() or store.find(models_dir, name) is not None:
        raise UsageError(
            f"{result.name} or a model named {name!r} exists already; pass --name to choose another"
        )
    need = output_bytes(source.parameters, quant_type)
    problem = disk_problem(shutil.disk_usage(models_dir).free, need, models_dir)
    usable = int(plan.memory.usable_gib * GIB) if plan.memory.usable_gib is not None else None
    problem = problem or memory_problem(source, usable, with_imatrix=calibration is not None)
    if problem:
        raise UsageError(problem)
    if source.quantised:
        report.note(
            f"{source.path.name} is quantised already: quantising again loses more than from full precision"
        )
    staging = folder / f".{file_name}.partial"
    jobs = quantize_jobs(source, staging / file_name, quant_type, calibration, imatrix, chunks)
    if dry_run:
        return planned_tools(plan, jobs)
    plan = ready_to_run(plan, ex, report)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    out = staging / file_name
    try:
        for label, job in jobs:
            report.note(label)
            ran = run_tool(plan, ex, report, job, shown=lambda line: "computing over" in line)
        read_model(out)
        out.chmod(0o644)
        out.rename(result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        entry = store.add(
            models_dir, result, name, origin=f"quantized ({quant_type}) from {source.path.name}", managed=True
        )
    except BaseException:
        result.unlink(missing_ok=True)
        raise
    said, linked = carry_companions(source.path, folder)
    for line in said:
        report.note(line)
    if linked:
        # Recorded with the model, so `model rm` deletes the links with it.
        extra = tuple(store.FileRecord(p.name, p.stat().st_size) for p in linked)
        entry = replace(entry, files=entry.files + extra)
        store.record_pull(models_dir, entry.name, entry)
    return Quantized(entry, source, quant_type, calibration is not None or imatrix is not None, ran.seconds)


def output_folder(models_dir: Path, source: Path, file_name: str) -> Path:
    """Where a quantisation is written: the store's folder of quantised models, or, when the source has
    an MTP file or projector to link beside it, a folder of its own, so no other quantised model finds
    them beside itself."""
    folder = models_dir / QUANTIZED_DIR
    return folder / file_name.removesuffix(".gguf") if companions(source) else folder


def companions(model: Path) -> list[Path]:
    """The files a model is served with that sit beside it: its MTP file (found as `up` finds it) and its
    vision projector (the only mmproj*.gguf there)."""
    found = [sidecar] if (sidecar := find_sidecar(model)) is not None and sidecar != model else []
    try:
        projector = find_projector(model)
    except UsageError:
        projector = None  # several: none is carried; the quantised model is served with --mmproj
    return found + ([projector] if projector is not None else [])


def carry_companions(source: Path, folder: Path) -> tuple[list[str], list[Path]]:
    """The source's MTP file and projector, untouched (not quantised), made visible beside the quantised
    model: hard links (the same bytes, no copy) into its folder; where that cannot be, what to pass.
    Returns what to say and the links made."""
    said: list[str] = []
    linked: list[Path] = []
    for companion in companions(source):
        if is_mtp_file_name(source.name) or companion.parent == folder:
            continue
        beside = folder / companion.name
        if beside.exists():
            said.append(f"{companion.name} is beside the quantised model already; left as it is")
            continue
        try:
            os.link(companion, beside)
        except OSError:
            flag = "--mmproj" if is_projector_name(companion.name) else "--draft-model"
            said.append(f"{companion.name} left as it is; serve the quantised model with {flag} {companion}")
            continue
        linked.append(beside)
        said.append(f"{companion.name} left as it is (not quantised) and linked beside the quantised model")
    return said, linked


def quantize_jobs(
    source: Source,
    out: Path,
    quant_type: str,
    calibration: Path | None,
    imatrix: Path | None,
    chunks: int | None,
) -> list[tuple[str, ToolJob]]:
    """llama-imatrix over the calibration text (when given), then llama-quantize: both write into out's
    folder alone."""
    staging = out.parent
    jobs = []
    if calibration is not None:
        imatrix = staging / "imatrix.gguf"
        words = imatrix_args("{s}", "{c}", "{o}", chunks)
        jobs.append(
            (
                f"importance matrix: llama-imatrix over {calibration.name}",
                ToolJob(with_paths(words, s=source.path, c=calibration, o=imatrix), staging),
            )
        )
    words = quantize_args(
        "{s}", "{o}", quant_type, imatrix="{i}" if imatrix else None, requantise=source.quantised
    )
    jobs.append(
        (
            f"llama-quantize {source.path.name} -> {out.name} ({quant_type})",
            ToolJob(with_paths(words, s=source.path, o=out, **({"i": imatrix} if imatrix else {})), staging),
        )
    )
    return jobs


@dataclass(frozen=True)
class Quantized:
    entry: Entry
    source: Source
    quant_type: str
    calibrated: bool
    seconds: float

    def show(self, screen: Screen) -> ExitCode:
        size = sum(f.size for f in self.entry.files)
        if screen.as_json:
            screen.json({**self.entry.to_dict(), "type": self.quant_type, "calibrated": self.calibrated})
            return ExitCode.OK
        how = "with an importance matrix" if self.calibrated else "without an importance matrix"
        screen.out.print(
            f"{self.entry.name}: {self.quant_type} {how}, {size / GIB:.2f} GiB from {self.source.file_bytes / GIB:.2f} "
            f"GiB in {self.seconds:.0f} s; registered ({self.entry.path}). Measure it: orchestrator eval "
            f"--model {self.entry.name} --reference {self.source.path}"
        )
        return ExitCode.OK
