"""`model pull/add/list/verify/rm`: the models directory and its registry. A pull is resumable and
checked against the hub's sizes and sha256; an added file is checked and never moved; removing a pulled
model deletes its files only after a yes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from orchestrator.app.config import load_settings
from orchestrator.app.options import Commands, command, group
from orchestrator.app.outcomes import Screen
from orchestrator.app.session import Session
from orchestrator.core.catalogue import CATALOGUE, get_target
from orchestrator.core.model_catalogue import PUBLISHED, PublishedGguf, Verdict, serving_targets, verdicts
from orchestrator.errors import ExitCode, UsageError
from orchestrator.executors import native
from orchestrator.executors.probe import probe
from orchestrator.files import readable_folder
from orchestrator.models import store
from orchestrator.models.pull import Pulled, PullReport, pull
from orchestrator.models.store import Entry, Listed, Verified


def register(commands: Commands) -> None:
    model = group(commands, "model", "ACTION")
    m = command(
        model,
        "pull",
        help="download a GGUF (every split part, its MTP file and vision projector) from the hub, resumable, "
        "verified",
        handler=_pull,
        writes="models",
    )
    m.add_argument(
        "ref",
        nargs="?",
        help="a catalogue name (step-3.5-flash, step-3.7-flash) or owner/name[:QUANT] on the hub (default: "
        "stepfun-ai/Step-3.5-Flash-GGUF-Q4_K_S); HF_TOKEN and HF_ENDPOINT are honoured",
    )
    m.add_argument("--revision", help="branch, tag or commit (default: main)")
    _models_dir_option(m, "where models are kept")
    m.add_argument(
        "--no-mtp",
        action="store_false",
        dest="mtp",
        help="leave out the repository's MTP file (mtp-*.gguf, Step3.7-flash-mtp-Q8_0.gguf: the heads for "
        "speculative decoding)",
    )
    m = command(
        model,
        "add",
        help="register a GGUF you already have (checked, never moved)",
        handler=_add,
        writes="models",
    )
    m.add_argument("path", help="the .gguf file (the first part of a split model)")
    m.add_argument("--name", help="name to register it under (default: from the file name)")
    _models_dir_option(m, "where the registry is kept")
    m = command(model, "list", help="registered and known models", handler=_list, as_json="print JSON")
    _models_dir_option(m, "where models are kept")
    m.add_argument(
        "--available",
        action="store_true",
        help="the published GGUFs of Step-3.5-Flash, with whether each fits every target's profiles",
    )
    m.add_argument("--target", "-t", help="--available: judge for this target only")
    m = command(
        model,
        "verify",
        help="GGUF header, split parts, tensor data within the files, sha256 when published",
        handler=_verify,
    )
    m.add_argument("what", help="a registered name or the path of a .gguf file")
    _models_dir_option(m, "where the registry is kept")
    m = command(
        model,
        "rm",
        help="forget a model; a pulled one's files are deleted after asking",
        handler=_remove,
        writes="models",
        check=_check_yes,
    )
    m.add_argument("name", help="the registered name (see 'orchestrator model list')")
    _models_dir_option(m, "where models are kept")
    m.add_argument("--yes", action="store_true", help="do not ask")


def _models_dir_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--models-dir", help=help)


def _folders(args: argparse.Namespace) -> tuple[Path, Path]:
    """The models directory (there and readable) and the data directory."""
    settings = load_settings({"models_dir": args.models_dir})
    return readable_folder(settings.models_dir, "the models directory"), settings.data_dir


def _pull(session: Session, args: argparse.Namespace) -> ModelPulled:
    directory, data_dir = _folders(args)
    report = PullReport(note=session.render.note, transfer=session.render.byte_progress)
    return ModelPulled(pull(args.ref, directory, data_dir, report, revision=args.revision, mtp=args.mtp))


def _add(session: Session, args: argparse.Namespace) -> ModelAdded:
    directory, _data = _folders(args)
    return ModelAdded(store.add(directory, Path(args.path), args.name))


def _list(session: Session, args: argparse.Namespace) -> ModelListing | Available:
    if args.available:
        targets = [get_target(args.target)] if args.target else serving_targets(list(CATALOGUE.values()))
        facts = probe()
        return Available(tuple((f, verdicts(f, targets, facts)) for f in PUBLISHED))
    if args.target:
        raise UsageError("--target goes with --available")
    directory, _data = _folders(args)
    return ModelListing(tuple(store.listing(directory)), directory)


def _verify(session: Session, args: argparse.Namespace) -> ModelVerified:
    directory, data_dir = _folders(args)
    entry = store.find(directory, args.what)
    first = entry.first if entry else Path(args.what).expanduser().absolute()
    if entry is None:
        entry = next((e for e in store.load(directory).values() if e.first == first), None)
    expected = entry.located() if entry else {}
    total = sum(f.size for f in expected.values() if f.sha256)
    with session.render.byte_progress(f"verifying {first.name}", total, 0) as counted:
        verified = store.verify(first, expected, data_dir / "cache" / "sha256.json", counted)
    return ModelVerified(first, verified)


def _check_yes(args: argparse.Namespace) -> None:
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(f"removing {args.name} needs a yes: run it on a terminal, or pass --yes")


def _remove(session: Session, args: argparse.Namespace) -> ModelRemoved:
    directory, data_dir = _folders(args)
    confirm: Callable[[str], bool] = (lambda _q: True) if args.yes else session.render.ask
    # What running servers map: the containers of every project, and this data directory's native one.
    in_use = {**session.executors().engine.files_in_use(), **native.files_in_use(data_dir)}
    return ModelRemoved(args.name, tuple(store.remove(directory, args.name, confirm, in_use)))


@dataclass(frozen=True)
class ModelPulled:
    pulled: Pulled

    def show(self, screen: Screen) -> ExitCode:
        entry = self.pulled.entry
        screen.out.print(
            f"{entry.name}: {len(self.pulled.fetched)} fetched, {len(self.pulled.kept)} already there; size "
            f"and sha256 match the hub; serve it with: orchestrator up --model {entry.path}"
        )
        return ExitCode.OK


@dataclass(frozen=True)
class ModelAdded:
    entry: Entry

    def show(self, screen: Screen) -> ExitCode:
        entry = self.entry
        screen.out.print(
            f"registered {entry.name} ({entry.architecture}, {len(entry.files)} file(s)): {entry.path}"
        )
        return ExitCode.OK


@dataclass(frozen=True)
class ModelListing:
    rows: tuple[Listed, ...]
    directory: Path

    def show(self, screen: Screen) -> ExitCode:
        if screen.as_json:
            screen.json([{**row.__dict__, "path": str(row.path)} for row in self.rows])
        elif self.rows:
            screen.out.print(models_table(self.rows))
        else:
            screen.out.print(
                f"no models in {self.directory}; 'orchestrator model pull' fetches the default one"
            )
        return ExitCode.OK


@dataclass(frozen=True)
class ModelVerified:
    first: Path
    verified: Verified

    def show(self, screen: Screen) -> ExitCode:
        model = self.verified.model
        hashes = (
            f"sha256 of {len(self.verified.hashed)} file(s) match the published ones"
            if self.verified.hashed
            else "no published sha256 to compare (added locally)"
        )
        screen.out.print(
            f"{self.first.name}: GGUF v{model.parts[0].version}, {model.arch.name}, {len(model.parts)} "
            f"part(s) all present and consistent, {model.weights_bytes / 2**30:.2f} GiB of tensors within "
            f"the files; {hashes}; {model.mtp.describe()}"
        )
        return ExitCode.OK


@dataclass(frozen=True)
class ModelRemoved:
    name: str
    deleted: tuple[Path, ...]

    def show(self, screen: Screen) -> ExitCode:
        screen.out.print(
            f"removed {self.name}"
            + (f" and deleted {len(self.deleted)} file(s)" if self.deleted else "; files kept")
        )
        return ExitCode.OK


@dataclass(frozen=True)
class Available:
    rows: tuple[tuple[PublishedGguf, tuple[Verdict, ...]], ...]

    def show(self, screen: Screen) -> ExitCode:
        if screen.as_json:
            screen.json(
                [
                    {
                        **asdict(file),
                        "pull": file.pull,
                        "mtp_where": file.mtp_where,
                        "verdicts": [asdict(v) for v in found],
                    }
                    for file, found in self.rows
                ]
            )
            return ExitCode.OK
        table = Table(show_header=True, box=None)
        columns = (
            "model",
            "file (orchestrator model pull ...)",
            "size",
            "parts",
            "MTP heads",
            "projector",
            "fits",
        )
        for column in columns:
            table.add_column(column, justify="right" if column == "size" else "left")
        for file, found in self.rows:
            by_target: dict[str, list[str]] = {}
            for v in found:
                by_target.setdefault(v.target, []).append(v.short())
            table.add_row(
                file.model,
                file.pull,
                f"{file.size_gib:.1f} GiB",
                str(file.parts) if file.parts is not None else "unchecked",
                file.mtp_where
                + (f" ({file.mtp_bytes / 2**30:.1f} GiB)" if file.mtp_bytes is not None else ""),
                (
                    f"{file.projector} ({file.projector_bytes / 2**30:.1f} GiB)"
                    if file.projector_bytes
                    else None
                )
                or file.projector
                or ("unchecked" if file.projector_seen else "none"),
                "\n".join(f"{t}: " + "; ".join(v) for t, v in by_target.items()),
            )
        screen.out.print(table)
        screen.out.print(
            "Sizes, parts, MTP heads and projectors as published (stored copies of the hub's pages, not "
            "checked from here; 'model list --available --json' says where each was seen); 'orchestrator "
            "model pull' checks each file against the hub. Fits: the memory plan at each profile's settings, "
            "the projector's weights counted, and the MTP file's weights and draft KV cache where the profile "
            "speculates; 'orchestrator plan --model FILE' for one file on this machine."
        )
        return ExitCode.OK


def models_table(rows: Sequence[Listed]) -> Table:
    table = Table(show_header=True, box=None)
    for column in ("name", "size", "present", "origin", "path"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.size / 2**30:.2f} GiB",
            "yes" if row.present else "[red]missing[/]",
            row.origin,
            str(row.path),
        )
    return table
