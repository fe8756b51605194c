"""Reasoning levels for real, whatever runs the server (the cpu image, or a native build): a tiny step35
GGUF carrying a chat template that reads `reasoning_effort` (the pinned llama.cpp's StepFun-3.5-Flash
template, which opens a `<think>` block for the answer, with the level put before the conversation as the
Step-3.7 template is described to: "Reasoning: <level>"), served by `up --reasoning high` behind the proxy.

What it shows, all through the proxy:
- the level reaches the rendered prompt (llama-server's /apply-template), and a request's own
  `chat_template_kwargs` or `reasoning_effort` wins over the server's;
- the thoughts come back apart from the answer: `message.reasoning_content` and `message.content` on chat
  completions (the tiny model's output forced by a grammar to "thoughts</think>answer"), and a `thinking`
  block on /v1/messages (Anthropic's API takes no grammar: the tiny model's own words, all of them thoughts
  since it never closes the block, come back in the thinking block and never as text).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration import cli_env, free_port, run_cli
from tests.tiny_gguf import write_tiny_step35

# Put before the conversation: the Step-3.7 template inserts "Reasoning: <level>" (the fact sheet; its
# published text was not found from here).
LEVEL_LINE = (
    "{%- if reasoning_effort is defined and reasoning_effort %}"
    "{{- '<|im_start|>system\\nReasoning: ' + reasoning_effort + '<|im_end|>\\n' }}{%- endif %}"
)
THOUGHTS, ANSWER = "pondering", "done"


# The pinned template opens the answer's thinking block with "<think>\n"; the tiny model repeats its last
# token, and a thinking block of newlines alone is taken for an answer (seen: llama-server hands unclosed
# whitespace back as content, unclosed words as reasoning_content). Without the newline it repeats ">",
# which the server must hand back as thoughts.
GENERATION = "'<|im_start|>assistant\\n<think>\\n'"


def reasoning_template(llama_cpp: Path) -> str:
    """The pinned StepFun-3.5-Flash template with the level line after its BOS, its thinking block
    opened without the newline."""
    pinned = (llama_cpp / "models" / "templates" / "StepFun3.5-Flash.jinja").read_text()
    assert "{{bos_token}}" in pinned and GENERATION in pinned, "the pinned StepFun template changed"
    opened = pinned.replace(GENERATION, GENERATION.removesuffix("\\n'") + "'")
    return opened.replace("{{bos_token}}", "{{bos_token}}" + LEVEL_LINE, 1)


def reasoning_model(folder: Path, llama_cpp: Path) -> Path:
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    return write_tiny_step35(
        folder / "tiny-step35-reasoning.gguf", "no-heads", chat_template=reasoning_template(llama_cpp)
    )


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        data: dict[str, Any] = json.loads(answer.read())
        return data


MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


def check_reasoning(args: tuple[str, ...], model: Path, project: str) -> dict[str, object]:
    """Serve model with --reasoning high under args, check all the above, stop it; what was seen."""
    port = free_port()
    env = cli_env(ORCHESTRATOR_WAIT_TIMEOUT="300", ORCHESTRATOR_PROJECT=project)
    served = (*args, "--model", str(model), "--port", str(port))
    seen: dict[str, object] = {}
    try:
        up = run_cli("up", *served, "--reasoning", "high", env=env, timeout=1800)
        assert up.returncode == 0, up.stderr + up.stdout
        plan = json.loads(run_cli("plan", *served, "--reasoning", "high", "--json", env=env).stdout)
        assert plan["reasoning"]["level"] == "high" and "--reasoning-effort high" in plan["server"]["shell"]
        root = f"http://127.0.0.1:{port}"

        # (a) the server's level in the prompt; (b) a request's own wins, by either field.
        prompt = _post(f"{root}/apply-template", {"messages": MESSAGES})["prompt"]
        assert "Reasoning: high" in prompt and prompt.rstrip().endswith("<think>"), prompt
        kwargs = _post(
            f"{root}/apply-template",
            {"messages": MESSAGES, "chat_template_kwargs": {"reasoning_effort": "low"}},
        )["prompt"]
        assert "Reasoning: low" in kwargs and "Reasoning: high" not in kwargs, kwargs
        field = _post(f"{root}/apply-template", {"messages": MESSAGES, "reasoning_effort": "medium"})[
            "prompt"
        ]
        assert "Reasoning: medium" in field and "Reasoning: high" not in field, field
        seen["prompt"] = prompt

        # (c) OpenAI chat completions: thoughts in reasoning_content, the answer alone in content.
        from openai import OpenAI

        client = OpenAI(base_url=f"{root}/v1", api_key="none")
        reply = client.chat.completions.create(
            model="tiny",
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=64,
            temperature=0,
            extra_body={"grammar": f'root ::= "{THOUGHTS}" "\\n</think>\\n" "{ANSWER}"'},
        )
        message = reply.choices[0].message
        reasoning = (message.model_extra or {}).get("reasoning_content")
        seen["openai"] = {"content": message.content, "reasoning_content": reasoning}
        assert reasoning is not None and reasoning.strip() == THOUGHTS, seen
        assert (message.content or "").strip() == ANSWER, seen

        # (c) Anthropic messages: the thoughts in a thinking block, never in a text block.
        import anthropic

        claude = anthropic.Anthropic(base_url=root, api_key="none")
        answer = claude.messages.create(model="tiny", max_tokens=24, messages=MESSAGES)  # type: ignore[arg-type]
        blocks = [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in answer.content]
        seen["anthropic"] = blocks
        thinking = [text for kind, text in blocks if kind == "thinking"]
        assert thinking and thinking[0], seen
        assert not any("<think>" in (text or "") or "</think>" in (text or "") for _, text in blocks), seen
        return seen
    finally:
        run_cli("down", *served, env=env, timeout=300)
