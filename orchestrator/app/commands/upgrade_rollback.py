"""Living with a server: `upgrade` (a newer llama.cpp, built or pulled while the current server keeps
serving, then swapped in, checked, and the previous deployment put back when a check fails), `rollback`
(to the previous or a named deployment) and `history` (the deployments, which one serves, which images
are kept)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from orchestrator.app.options import Commands, allow_cpu_option, command
from orchestrator.app.outcomes import Screen
from orchestrator.app.render import kv_table
from orchestrator.app.session import Session
from orchestrator.app.steps.building import build
from orchestrator.app.steps.context import Executors, Reporter
from orchestrator.app.steps.deploying import (
    CheckFailed,
    greedy_check,
    record_serving,
    running_compose,
    running_server,
    serving_deployment,
    serving_now,
    swapped_image,
)
from orchestrator.app.steps.devices import check_devices
from orchestrator.app.steps.serving import await_ready, start_or_go_back
from orchestrator.core.deployments import Deployment, kept_images, removable_images, rollback_target
from orchestrator.core.plan import Plan, with_source
from orchestrator.core.plan.compose import proxy_config_source, secret_files, served_at
from orchestrator.core.sources import Source
from orchestrator.errors import ExitCode, OrchestratorError, UsageError
from orchestrator.executors.deployment_history import passed_over, read_history
from orchestrator.executors.server_state import Deployed, Runtime

# A new deployment decodes at least this share of the current one's speed on the same model.
DEFAULT_TOLERANCE = 0.8


def register(commands: Commands) -> None:
    # --source (a plan option) names the llama.cpp to move to; without it, the newest commit of the
    # source's repository.
    p = command(commands, "upgrade", _upgrade, plan=True, writes="data")
    p.add_argument("--check", action="store_true", help="only say what is newer than the current deployment")
    p.add_argument(
        "--keep", action="store_true", help="leave a new server that failed a check up for inspection"
    )
    p.add_argument(
        "--tolerance",
        type=_share,
        default=DEFAULT_TOLERANCE,
        help=f"the share of the current decode speed a new deployment must reach (default {DEFAULT_TOLERANCE})",
    )
    allow_cpu_option(p)
    p = command(commands, "rollback", _rollback, plan=True, writes="data")
    p.add_argument("id", nargs="?", type=int, help="the deployment to return to (default: the previous one)")
    command(
        commands, "history", lambda s, a: history(s.plan(a), s.executors()), plan=True, as_json="print JSON"
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--tolerance {text}: expected a share such as 0.8") from None
    if not 0 < value <= 1:
        raise UsageError(f"--tolerance {text}: expected a share above 0 and at most 1, such as 0.8")
    return value


def _upgrade(session: Session, args: argparse.Namespace) -> Upgraded:
    return upgrade(
        session.plan(args),
        session.executors(),
        session.render.reporter(),
        check_only=args.check,
        keep=args.keep,
        tolerance=args.tolerance,
        allow_cpu=args.allow_cpu,
    )


def _rollback(session: Session, args: argparse.Namespace) -> RolledBack:
    return rollback(session.plan(args), session.executors(), session.render.reporter(), wanted=args.id)


# --- upgrade --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upgraded:
    before: Deployment
    after: Deployment | None
    newer: str
    checked_only: bool = False

    def show(self, screen: Screen) -> ExitCode:
        data: dict[str, Any] = {"current": self.before.summary(), "newer": self.newer}
        if self.after is not None:
            data["deployed"] = self.after.summary()
        rows = [("serving", _line(self.before)), ("newer", self.newer)]
        if self.after is not None:
            rows = [("was", _line(self.before)), ("now", _line(self.after))]
        screen.either(data, lambda: screen.out.print(kv_table(rows)))
        return ExitCode.OK


def upgrade(
    plan: Plan,
    ex: Executors,
    report: Reporter,
    *,
    check_only: bool,
    keep: bool,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_cpu: bool = False,
) -> Upgraded:
    """plan: made with the source to move to (--source), or with the source whose repository's newest
    commit is wanted (the default)."""
    runtime = running_server(plan, ex, "upgrade")
    before = serving_deployment(plan, ex)
    given = plan.origin("source").startswith("flag")
    new_plan = plan if given else with_source(plan, _newest(plan, ex))
    tag = swapped_image(new_plan, "upgrade").tag
    newer = f"{new_plan.source.name}: {new_plan.source.describe()} ({tag})"
    if tag == before.image:
        if given and not check_only:
            raise UsageError(f"{newer} is what serves now (deployment {before.id}); nothing to upgrade")
        return Upgraded(before, None, f"none: deployment {before.id} runs {newer}", checked_only=True)
    if check_only:
        return Upgraded(before, None, newer, checked_only=True)
    report.note(f"measuring the current deployment ({before.id}) before the swap")
    baseline = greedy_check(plan, ex)
    report.note(
        f"current: {baseline['decode_tokens_per_second']} tokens/s decoding the check prompt; building "
        f"{tag} while it serves"
    )
    new_plan = build(new_plan, ex, report, rebuild=False).plan
    runtime.check_port(new_plan)
    figures: dict[str, Any] = {}

    def validate() -> None:
        verdict = check_devices(new_plan, runtime.logs(new_plan, tail=None), report, allow_cpu=allow_cpu)
        figures["devices"] = verdict.placement.describe()
        figures.update(greedy_check(new_plan, ex))
        old, new = baseline["decode_tokens_per_second"], figures["decode_tokens_per_second"]
        if old and new < tolerance * old:
            raise CheckFailed(
                f"decode check failed: {new:.2f} tokens/s is {new / old:.0%} of the current deployment's "
                f"{old:.2f} tokens/s on the same model and prompt (at least {tolerance:.0%} wanted)"
            )

    try:
        start_or_go_back(new_plan, runtime, report, validate, keep_failed=keep)
    except KeyboardInterrupt:
        _interrupted(new_plan, runtime, report, before)
        raise
    return Upgraded(before, record_serving(new_plan, ex, "upgrade", {**figures, "baseline": baseline}), newer)


def _newest(plan: Plan, ex: Executors) -> Source:
    current = plan.source
    if current.kind != "git" or current.url is None:
        raise UsageError(
            f"the source {current.describe()} is a directory with no repository to ask; pass --source "
            "URL@COMMIT or the directory holding the llama.cpp to move to"
        )
    commit = ex.host.newest_commit(current.url)
    if commit is None:
        raise UsageError(
            f"cannot reach {current.url} to learn its newest commit (offline?); pass --source URL@COMMIT "
            "or the directory holding the llama.cpp to move to"
        )
    return replace(current, commit=commit, revision=None, mirror=None)


def _interrupted(plan: Plan, runtime: Runtime, report: Reporter, before: Deployment) -> None:
    """Ctrl-C or SIGTERM in the middle: one of the two serves, or one line says how to get it back."""
    state = runtime.state(plan)
    if state.running:
        report.note(
            f"interrupted: a server runs ({swapped_image(plan, 'upgrade').tag}, not yet checked); 'orchestrator rollback "
            f"{before.id}' returns to the deployment that served before"
        )
    else:
        report.note(
            f"interrupted: no server runs; 'orchestrator rollback {before.id}' starts the deployment that "
            "served before"
        )


# --- rollback ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolledBack:
    to: Deployment
    recorded: Deployment

    def show(self, screen: Screen) -> ExitCode:
        screen.either(
            self.recorded.summary(),
            lambda: screen.out.print(f"serving deployment {self.to.id} again: {_line(self.to)}"),
        )
        return ExitCode.OK


def _key_copy(document: Mapping[str, Any]) -> bytes | None:
    """The API key a compose document's server reads (its copy's bytes), None: none."""
    secret = (document.get("secrets") or {}).get("api_key") or {}
    path = Path(str(secret["file"])) if "file" in secret else None
    return path.read_bytes() if path is not None and path.is_file() else None


def rollback(plan: Plan, ex: Executors, report: Reporter, *, wanted: int | None) -> RolledBack:
    runtime = ex.runtime(plan)
    runtime.require(serving=True)
    swapped_image(plan, "rollback")
    history = read_history(plan.data_dir, plan.project)
    now = serving_now(plan) if runtime.state(plan).running else None
    target = rollback_target(history, now, wanted)
    if ex.engine.image_id(target.image) is None:
        raise UsageError(
            f"deployment {target.id}'s image {target.image} is no longer here; rebuild it with "
            f"'orchestrator up --source ...' ({target.source})"
        )
    document = yaml.safe_load(target.compose) or {}
    # The key and TLS copies it ran with (named by their content, kept), and its proxy's configuration.
    gone = [path for path in secret_files(document) if not path.is_file()]
    if gone:
        raise UsageError(
            f"deployment {target.id}'s copy of {gone[0]} is gone, so it cannot run as it did; "
            "start a new deployment with 'orchestrator up'"
        )
    config = proxy_config_source(document)
    files = {config: target.proxy.encode()} if config and target.proxy else {}
    address = served_at(document) or plan.publish
    restore = Deployed(address, compose=target.compose, files=files)
    report.note(f"returning to deployment {target.id} ({target.image})")
    if _key_copy(document) != _key_copy(yaml.safe_load(running_compose(plan) or "") or {}):
        report.note(
            f"deployment {target.id} ran with another API key than the one serving now: that key works "
            "again, and the current one stops; if you rotated it because it leaked, 'orchestrator up' with "
            "the new key file instead"
        )
    before = runtime.deployed(plan)
    runtime.restore(plan, restore)
    try:
        await_ready(plan, runtime, report, at=address)
    except OrchestratorError as failure:
        if before is not None:
            runtime.restore(plan, before)
            await_ready(plan, runtime, report, at=before.address)
            raise type(failure)(f"{failure}; the server that served before is serving again") from None
        raise
    return RolledBack(target, record_serving(plan, ex, f"rollback to {target.id}", target.figures))


# --- history -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    deployments: tuple[Deployment, ...]
    serving: int | None
    kept: tuple[str, ...]
    removable: tuple[str, ...]
    # Lines of the history file that are not JSON (a crash cut them short), passed over.
    passed_over: tuple[int, ...] = ()

    def show(self, screen: Screen) -> ExitCode:
        data = {
            "serving": self.serving,
            "deployments": [d.summary() for d in self.deployments],
            "kept_images": list(self.kept),
            "removable_images": list(self.removable),
            "lines_passed_over": list(self.passed_over),
        }
        screen.either(data, lambda: self._table(screen))
        if self.passed_over:
            screen.live.print(
                f"lines {', '.join(map(str, self.passed_over))} of the history are not JSON (cut short by a "
                "crash?) and were passed over; those deployments cannot be rolled back to"
            )
        return ExitCode.OK

    def _table(self, screen: Screen) -> None:
        table = Table(title="deployments", title_justify="left")
        for column in ("id", "when", "via", "image", "source", "decode t/s", ""):
            table.add_column(column)
        for d in self.deployments:
            table.add_row(
                str(d.id),
                d.when,
                d.via,
                d.image,
                (d.source_commit or "")[:12],
                str(d.figures.get("decode_tokens_per_second", "-")),
                "[green]serving[/]" if d.id == self.serving else "",
            )
        screen.out.print(table)
        if self.removable:
            screen.out.print(
                "images only older deployments use (kept: the last three; remove them yourself if you wish): "
                + ", ".join(self.removable)
            )


def history(plan: Plan, ex: Executors) -> History:
    deployments = read_history(plan.data_dir, plan.project)
    now = serving_now(plan) if running_compose(plan) is not None else None
    running = now is not None and ex.runtime(plan).state(plan).running
    return History(
        tuple(deployments),
        now.id if running and now is not None else None,
        tuple(kept_images(deployments)),
        tuple(removable_images(deployments)),
        tuple(passed_over(plan.data_dir, plan.project)),
    )


def _line(d: Deployment) -> str:
    decode = d.figures.get("decode_tokens_per_second")
    return f"deployment {d.id}: {d.image} ({d.source})" + (f", {decode} tokens/s" if decode else "")
