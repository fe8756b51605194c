"""The documentation site (mkdocs.yml, docs/) and the README: the site builds in-process with warnings as
errors and without the network; its command-line page holds every command and option the parser has;
every command and option the pages and the README name is one the program has; every relative link
resolves; the README stays short and its two commands point at what exists."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import socket
import stat
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from markdown.extensions.toc import slugify
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

from orchestrator.app.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
HOOK = ROOT / "scripts" / "cli_reference.py"
README_MOST_LINES = 150


@cache
def _hook() -> ModuleType:
    """The hook as MkDocs loads it: a module from its file (its dataclasses need it in sys.modules)."""
    spec = importlib.util.spec_from_file_location("cli_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


@contextmanager
def _offline() -> Iterator[None]:
    """Any connection or name lookup fails the build that tries it: the site builds air-gapped."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the documentation build reached for the network")

    with pytest.MonkeyPatch.context() as patch:
        for owner, name in (
            (socket.socket, "connect"),
            (socket.socket, "connect_ex"),
            (socket, "create_connection"),
            (socket, "getaddrinfo"),
        ):
            patch.setattr(owner, name, refuse)
        yield


def _build(site: Path, **overrides: str) -> None:
    config = load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(site), **overrides)
    with _offline():
        build(config)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for the tests that read it."""
    out = tmp_path_factory.mktemp("site")
    _build(out)
    return out


def test_site_builds_with_warnings_as_errors_and_no_network(site: Path) -> None:
    for page in ("index.html", "reference/cli/index.html", "machines/dgx-spark/index.html"):
        assert (site / page).is_file(), page


def test_settings_page_holds_every_setting_as_the_program_has_it(site: Path) -> None:
    from orchestrator.app.config import FOLDER_SETTINGS
    from orchestrator.core.settings import SPECS

    page = (site / "reference" / "settings" / "index.html").read_text()
    assert "settings table: written by" not in page  # the marker was replaced
    rows = dict(re.findall(r"<tr>\s*<td><code>([a-z_]+)</code></td>(.*?)</tr>", page, re.S))
    assert set(rows) == set(SPECS)
    for name in SPECS:
        assert f"ORCHESTRATOR_{name.upper()}" in rows[name]
        assert (">yes<" in rows[name]) == (name in FOLDER_SETTINGS), name


def test_a_warning_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    with (docs / "index.md").open("a") as index:
        index.write("\nSee [a page that is not there](tasks/missing.md).\n")
    with pytest.raises(Abort, match="strict mode"):
        _build(tmp_path / "site", docs_dir=str(docs))


# The program's commands, walked here apart from the hook that writes the page.


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    parser: argparse.ArgumentParser

    @property
    def options(self) -> set[str]:
        return {s for a in self.parser._actions for s in a.option_strings}

    def sub(self) -> dict[str, argparse.ArgumentParser]:
        found = [a for a in self.parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(found[0].choices) if found else {}


def _commands() -> dict[tuple[str, ...], Command]:
    top = Command((), build_parser())
    found = {(): top}

    def walk(command: Command) -> None:
        found[command.words] = command
        for name, parser in command.sub().items():
            walk(Command((*command.words, name), parser))

    for name in top.sub():
        # A family's commands are added in full only when one of them is chosen.
        walk(Command((name,), Command((), build_parser(name)).sub()[name]))
    return found


def _sections(html: str) -> dict[str, str]:
    """Each h2 of a page by its id, with what follows it up to the next h2."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<h2 id="([^"]+)"', html)]
    ends = [s for s, _ in starts[1:]] + [len(html)]
    return {anchor: html[start:end] for (start, anchor), end in zip(starts, ends, strict=True)}


def test_cli_page_lists_every_command_and_its_options(site: Path) -> None:
    sections = _sections((site / "reference" / "cli" / "index.html").read_text())
    commands = _commands()
    assert {"model", "worker", "bases"} <= {w[0] for w in commands if len(w) == 2}
    for words, command in commands.items():
        anchor = "-".join(("orchestrator", *words))
        assert anchor in sections, f"no section for {' '.join(words) or 'orchestrator'}"
        text = sections[anchor]
        # Shared option groups are written once and linked from each command.
        for linked in re.findall(r'href="#([^"]+)"', text):
            text += sections.get(linked, "") if not linked.startswith("orchestrator") else ""
        missing = {o for o in command.options - {"-h", "--help"} if f"<code>{o}</code>" not in text}
        assert not missing, f"orchestrator {' '.join(words)}: {sorted(missing)} not on the page"


# Commands and options the pages name.

_CODE_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
_INVOCATION = re.compile(r"(?:^|(?<=[\s/]))orchestrator\s+(.*)", re.M)
_STOP = {"|", "||", "&&", ";", "#"}


def _code(text: str) -> list[str]:
    """Each line of the fenced blocks and each inline code span of a Markdown text."""
    lines = [line for block in _CODE_BLOCK.findall(text) for line in block.splitlines()]
    spans = [span.replace("\n", " ") for span in _CODE_SPAN.findall(_CODE_BLOCK.sub("", text))]
    return lines + spans


def _invocations(snippet: str) -> Iterator[list[str]]:
    """The words after each `orchestrator` a snippet runs, up to a shell separator or comment."""
    for match in _INVOCATION.finditer(snippet):
        words = []
        for raw in match.group(1).split():
            if raw in _STOP or raw.startswith("#"):
                break
            word = raw.strip("[](),")
            if word and word != "...":
                words.append(word)
        yield words


def _placeholder(word: str) -> bool:
    return re.fullmatch(r"[A-Z][A-Z_|]*", word) is not None


def _check_invocation(words: list[str], commands: dict[tuple[str, ...], Command]) -> str | None:
    """What is wrong with one named invocation, or None."""
    path: tuple[str, ...] = ()
    rest = list(words)
    while rest and not rest[0].startswith("-") and commands[path].sub():
        if _placeholder(rest[0]):
            return None
        if rest[0] not in commands[path].sub():
            return f"no command {' '.join(('orchestrator', *path, rest[0]))!r}"
        path = (*path, rest.pop(0))
    options = commands[path].options
    for word in rest:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--?[a-z][a-z0-9-]*", flag) and flag not in options:
            return f"'orchestrator {' '.join(path)}' has no option {flag}"
    return None


def test_every_command_and_option_the_pages_name_exists() -> None:
    commands = _commands()
    wrong = []
    for page in _pages():
        for snippet in _code(page.read_text()):
            for words in _invocations(snippet):
                problem = _check_invocation(words, commands)
                if problem:
                    wrong.append(f"{page.relative_to(ROOT)}: `orchestrator {' '.join(words)}`: {problem}")
    assert not wrong, "\n".join(wrong)


def _literals() -> str:
    """The project's own code outside the parser: what it passes to llama.cpp, its scripts' options."""
    places = [
        ROOT / "benchmarks",
        ROOT / "scripts",
        *(p for p in (ROOT / "orchestrator").iterdir() if p.name != "app"),
    ]
    files = [f for place in places for f in ([place] if place.is_file() else place.rglob("*")) if f.is_file()]
    return "\n".join(f.read_text(errors="replace") for f in files if f.suffix in {".py", ".sh", ""})


def test_every_flag_the_pages_name_is_the_programs_or_one_it_passes_on() -> None:
    """A `--flag` named alone is an option of some command, or a literal in the project's own code (one
    it hands to llama.cpp, or one of its scripts' options): a flag dropped from the parser is a flag
    dropped from the pages."""
    commands = _commands()
    options = {o for c in commands.values() for o in c.options}
    literals = _literals()
    wrong = []
    for page in _pages():
        for snippet in _code(page.read_text()):
            flag = re.match(r"--[a-z][a-z0-9-]*", snippet)
            if flag and flag.group() not in options and not re.search(rf"[\"']{flag.group()}[\"']", literals):
                wrong.append(f"{page.relative_to(ROOT)}: {flag.group()}")
    assert not wrong, "\n".join(wrong)


# Links.

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*(?:\{#([^}]+)\})?\s*$", re.M)


def _anchors(text: str) -> set[str]:
    """The ids Python-Markdown gives a page's headings (an explicit {#id}, or its slug)."""
    found: set[str] = set()
    for _, title, explicit in _HEADING.findall(_CODE_BLOCK.sub("", text)):
        if explicit:
            found.add(explicit)
            continue
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "").replace("\\", "")
        slug = base = slugify(plain, "-")
        n = 0
        while slug in found:
            n += 1
            slug = f"{base}_{n}"
        found.add(slug)
    return found


def test_every_relative_link_resolves() -> None:
    generated = DOCS / _hook().PAGE
    texts = {p.resolve(): p.read_text() for p in _pages()}
    wrong = []
    for page in _pages():
        prose = _CODE_SPAN.sub("", _CODE_BLOCK.sub("", page.read_text()))
        for target in _LINK.findall(prose):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # a URL, not a path in this repository
            path, _, fragment = target.partition("#")
            where = (page.parent / path).resolve() if path else page.resolve()
            if where == generated.resolve():
                text = _hook().render()
            elif where.is_file():
                text = texts.get(where) or where.read_text(errors="replace")
            elif where.is_dir():
                text = ""
            else:
                wrong.append(f"{page.relative_to(ROOT)}: {target}: no such file")
                continue
            if fragment and fragment not in _anchors(text):
                wrong.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert not wrong, "\n".join(wrong)


# The README.


def test_readme_stays_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < README_MOST_LINES, f"README.md has {len(lines)} lines; move the detail to docs/"


def test_readme_commands_point_at_what_exists() -> None:
    """The set-up command installs an extra the package has and runs scripts that are there; the test
    command is what CI runs."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), re.S | re.M)
    main, tests = blocks[0].strip(), blocks[1].strip()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r"'\.\[([a-z,]+)\]'", main):
        assert set(extra.split(",")) <= set(extras), extra
    for script in [*re.findall(r"(scripts/\S+\.sh)", main), tests]:
        mode = (ROOT / script).stat().st_mode
        assert mode & stat.S_IXUSR, f"{script} is not an executable file"
    assert f"exec {tests}" in (ROOT / ".ci" / "run").read_text()
