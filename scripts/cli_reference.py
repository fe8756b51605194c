"""MkDocs hook (mkdocs.yml, `hooks:`): the command-line reference page, written at build time from the
very parser `orchestrator` runs, and the table of settings on the settings page, written from the
typed settings themselves, so neither can drift from the program. Nothing of it is kept in docs/:
a command or option added, renamed or removed shows (or goes) with the next build.

The entry point lists every command but adds a family's commands in full only when one of them is
chosen (so `orchestrator --help` answers at once); here each command is chosen in turn. Option groups
that several commands share (the plan options) are written once and linked from each command."""

from __future__ import annotations

import argparse
import html
from collections import Counter
from dataclasses import dataclass

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from orchestrator.app.cli import build_parser
from orchestrator.app.config import ENV_PREFIX, FOLDER_SETTINGS
from orchestrator.core.settings import SPECS

PAGE = "reference/cli.md"
# Where the settings page wants its table.
SETTINGS_PAGE = "reference/settings.md"
SETTINGS_TABLE = "<!-- settings table: written by scripts/cli_reference.py -->"
PROG = "orchestrator"
# argparse's own group titles: each command's options, never shared whatever they hold.
_OWN = ("options", "positional arguments")


@dataclass(frozen=True)
class Group:
    """One argument group of a command's parser as the page shows it."""

    title: str
    actions: tuple[argparse.Action, ...]

    @property
    def key(self) -> tuple[str, tuple[tuple[str, ...], ...]]:
        return self.title, tuple(tuple(a.option_strings) or (a.dest,) for a in self.actions)

    @property
    def anchor(self) -> str:
        # "plan options (override orchestrator.yaml ...)" -> "plan-options"
        return _anchor(self.title.split(" (")[0])


@dataclass(frozen=True)
class Command:
    """A command as typed (`model pull`), its one-line help and its parser."""

    words: tuple[str, ...]
    line: str
    parser: argparse.ArgumentParser

    @property
    def title(self) -> str:
        return " ".join((PROG, *self.words))

    @property
    def anchor(self) -> str:
        return _anchor(self.title)


def _anchor(title: str) -> str:
    """The id a heading is given (set explicitly, so links to it hold whatever the Markdown slugifier does)."""
    return "-".join(title.lower().split())


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, PAGE, content=render()))
    return files


def on_page_markdown(markdown: str, page: Page, **_: object) -> str:
    if page.file.src_uri != SETTINGS_PAGE:
        return markdown
    if SETTINGS_TABLE not in markdown:
        raise ValueError(f"{SETTINGS_PAGE} lost its marker {SETTINGS_TABLE}")
    return markdown.replace(SETTINGS_TABLE, settings_table())


def settings_table() -> str:
    """Every setting: its key, its variable, its default, whether a folder's orchestrator.yaml may set
    it, and what it does."""
    rows = [
        "| key | environment | default | folder's file | what it sets |",
        "|---|---|---|---|---|",
    ]
    for name, spec in SPECS.items():
        default = "this machine's" if spec.per_machine else _shown_default(spec.default)
        rows.append(
            f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {default} | "
            f"{'yes' if name in FOLDER_SETTINGS else 'no'} | {_text(spec.help)} |"
        )
    return "\n".join(rows)


def _shown_default(value: object) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    # argparse names no public way to reach a parser's subcommands or their help lines.
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0] if found else None


def _listed(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """Each subcommand of a parser: its name, its help line and its parser, in the order listed."""
    action = _subcommands(parser)
    if action is None:
        return []
    lines = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [(name, lines.get(name, ""), sub) for name, sub in action.choices.items()]


def commands() -> list[Command]:
    """Every command and action the program has, each with its parser in full."""
    found: list[Command] = []

    def walk(words: tuple[str, ...], line: str, parser: argparse.ArgumentParser) -> None:
        found.append(Command(words, line, parser))
        for name, sub_line, sub in _listed(parser):
            walk((*words, name), sub_line, sub)

    top = build_parser()
    found.append(Command((), "", top))
    for name, line, _ in _listed(top):
        full = {n: p for n, _, p in _listed(build_parser(name))}
        walk((name,), line, full[name])
    return found


def _groups(parser: argparse.ArgumentParser) -> list[Group]:
    groups = []
    for group in parser._action_groups:
        shown = tuple(
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        )
        if shown:
            groups.append(Group(group.title or "options", shown))
    return groups


def _text(text: str) -> str:
    """Help text as literal Markdown inside a table cell."""
    text = html.escape(text, quote=False)
    for special in "\\`*_[]|":
        text = text.replace(special, "\\" + special)
    return text


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": prog}
    if action.required:
        text = f"{text} (required)" if text else "(required)"
    return _text(text)


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action.choices, dict):
        return "one of " + ", ".join(f"`{c}`" for c in action.choices)
    metavar = action.metavar if isinstance(action.metavar, str) else None
    return f"`{metavar or action.dest.upper()}`"


def _table(group: Group, prog: str) -> list[str]:
    rows = ["| option | value | what it does |", "|---|---|---|"]
    for action in group.actions:
        names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}` (argument)"
        rows.append(f"| {names} | {_value(action)} | {_help(action, prog)} |")
    return rows


def _synopsis(command: Command) -> str:
    words = [command.title]
    subcommands = _subcommands(command.parser)
    if subcommands is not None:
        words.append(subcommands.metavar if isinstance(subcommands.metavar, str) else "ACTION")
    elif any(a.option_strings for g in _groups(command.parser) for a in g.actions):
        words.append("[OPTIONS]")
    for group in _groups(command.parser):
        for action in group.actions:
            if not action.option_strings:
                optional = action.nargs in ("?", "*")
                words.append(f"[{action.dest}]" if optional else action.dest)
    return " ".join(words)


def render() -> str:
    """The page: every command, its synopsis, its options and their help, as the parser holds them."""
    every = commands()
    counts = Counter(g.key for c in every for g in _groups(c.parser))
    shared: dict[tuple[str, tuple[tuple[str, ...], ...]], Group] = {}
    out = [
        "# Command line",
        "",
        "Written from the program's own parser each time the site is built; `orchestrator COMMAND --help`",
        "prints the same. Settings taken from `orchestrator.yaml` and `ORCHESTRATOR_*` are in",
        "[Settings and plans](settings.md).",
        "",
    ]
    for command in every:
        out += [f"## {command.title} {{#{command.anchor}}}", ""]
        if command.line:
            out += [_text(command.line), ""]
        if command.parser.description and command.words:
            out += [_text(command.parser.description), ""]
        out += ["```", _synopsis(command), "```", ""]
        for name, line, _ in _listed(command.parser):
            target = Command((*command.words, name), line, command.parser)
            out.append(f"- [`{target.title}`](#{target.anchor}): {_text(line)}")
        if _subcommands(command.parser) is not None:
            out.append("")
        for group in _groups(command.parser):
            if counts[group.key] > 1 and group.title not in _OWN:
                shared.setdefault(group.key, group)
                out += [f"Takes the [{_text(group.title.split(' (')[0])}](#{group.anchor}).", ""]
                continue
            out += [*_table(group, command.title), ""]
    for group in shared.values():
        out += [f"## {_text(group.title[0].upper() + group.title[1:])} {{#{group.anchor}}}", ""]
        out += [*_table(group, PROG), ""]
    return "\n".join(out)
