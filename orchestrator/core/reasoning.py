"""Reasoning, pure: the `reasoning` setting (low, medium, high) and what llama-server is told of it.

Step-3.7-Flash has three reasoning levels (low, medium, high), chosen per request on StepFun's own API with
`reasoning_effort` (chat completions) or `output_config.effort` (messages), where `medium` is its "default
recommendation" (StepFun's developer guide, "Reasoning effort control", as stored at
stepfun2.mintlify.app/en/guides/developer/reasoning; not checked on platform.stepfun.ai). The model's own
chat template reads the level from the template variable `reasoning_effort` (the project's fact sheet; the
template itself was not found in any public copy searchable from here, so its default level is unknown).

At the pinned llama.cpp (common/arg.cpp) `--reasoning-effort LEVEL` sets the template kwarg
`reasoning_effort` for every request; a request's own `reasoning_effort` or `chat_template_kwargs`
replaces it (tools/server/server-common.cpp, applied after the server's defaults; the Anthropic endpoint
passes `chat_template_kwargs` through, tools/server/server-chat.cpp). `--reasoning-format deepseek` (the
pin's default, written out so a changed default cannot merge thoughts into the answer) puts the thoughts
in `message.reasoning_content` on chat completions and in `thinking` blocks on /v1/messages.

Unset, nothing is passed: the template's own default. A level needs the Jinja template engine: a model
served with a built-in template by name (the demo's `gemma`) has no variable to set, and the level is left
out with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("low", "medium", "high")
# llama-server's --reasoning-format value that keeps thoughts apart from the answer on both APIs.
SEPARATE_THOUGHTS = "deepseek"


def parse_level(value: object) -> str:
    """A reasoning level; ValueError naming the levels on anything else."""
    text = str(value).strip().lower()
    if text not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}")
    return text


@dataclass(frozen=True)
class Reasoning:
    """What the server does with reasoning: the level it puts in every prompt (None: the template's own),
    how it hands thoughts back (None: it does not parse them), and what the owner should know of it (a
    level left out, a source not checked)."""

    level: str | None
    thoughts: str | None
    warning: str | None = None

    def server_args(self) -> list[str]:
        args = ["--reasoning-format", self.thoughts] if self.thoughts else []
        return args + (["--reasoning-effort", self.level] if self.level else [])

    def describe(self) -> str:
        if self.thoughts is None:
            return "not parsed: the model's built-in template (no Jinja) takes no level, thoughts stay in content"
        level = f"level {self.level} for every request" if self.level else "the chat template's default level"
        return (
            f"{level} (a request's reasoning_effort or chat_template_kwargs overrides it); thoughts come back "
            "apart from the answer (reasoning_content, Anthropic thinking blocks)"
        )


def resolve_reasoning(level: str | None, *, jinja: bool, source: str, source_checked: bool) -> Reasoning:
    """The reasoning a server runs for a model served with (jinja) or without the Jinja engine, built from
    a source whose llama-server was (source_checked: the pinned commit) or was not read for the flag."""
    if not jinja:
        warning = (
            f"--reasoning {level}: the model is served with a built-in chat template (no Jinja), which takes "
            "no reasoning level; it is left out"
            if level
            else None
        )
        return Reasoning(None, None, warning)
    if level and not source_checked:
        return Reasoning(
            level,
            SEPARATE_THOUGHTS,
            warning=f"--reasoning {level}: llama.cpp source {source!r} was not checked for llama-server's "
            "--reasoning-effort (read at the pinned upstream only); if the server refuses the flag, drop "
            "--reasoning",
        )
    return Reasoning(level, SEPARATE_THOUGHTS)
