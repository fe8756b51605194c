"""`orchestrator report` through the recording fakes: what it gathers (doctor, the plan, the image's
labels, the devices, a short benchmark next to the publisher's row) and what it takes out (the API key,
hub tokens, the user's name and home folder). The redaction itself is pure and tested on its own."""

from __future__ import annotations

import getpass
import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.app.commands.bench.owner_report import SHORT_NPL, SHORT_NPP, SHORT_NTG, owner_report
from orchestrator.core.plan import make_plan
from orchestrator.core.plan.programs import BenchOverride
from orchestrator.core.redact import redact
from tests.fakes import FakeEngine, FakeHost, Notes, executors, target_plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "devices"
CPU_LOG = (FIXTURES / "cpu-server-ngl99.log").read_text().splitlines()
KEY = "sk-test-0123456789abcdef"
TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWx"


def _row(pp: int, tg: int) -> str:
    return json.dumps(
        {"pp": pp, "tg": tg, "pl": 1, "n_kv": pp + tg, "t_pp": 0.1, "speed_pp": 500.0, "t_tg": 1.0,
         "speed_tg": 40.0, "t": 1.1, "speed": 100.0}
    )  # fmt: skip


def test_redact_takes_out_secrets_tokens_home_and_user() -> None:
    text = (
        f"key {KEY} in /home/alice/keys/api, token {TOKEN}, header Authorization: Bearer abc.def, "
        "alice ran it; alicexyz and malice stay"
    )
    out = redact(text, [KEY], "/home/alice", "alice")
    assert KEY not in out and TOKEN not in out and "abc.def" not in out
    assert "/home/alice" not in out and "~/keys/api" in out
    assert "[user] ran it" in out and "alicexyz" in out and "malice" in out


def test_a_report_made_with_a_key_file_and_hf_token_contains_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tiny_gguf import write_tiny_moe

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model = tmp_path / "models" / "tiny-moe.gguf"
    model.parent.mkdir()
    write_tiny_moe(model)
    key = tmp_path / "api-key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    plan = target_plan("cpu", tmp_path / "data", model, host="0.0.0.0", api_key_file=key)
    plan = make_plan(replace(plan.inputs, bench_override=BenchOverride(SHORT_NPP, SHORT_NTG, SHORT_NPL)))
    # The short benchmark's own output: the CPU load log, a line that shows the key (as a log might), rows.
    output = [
        *CPU_LOG,
        f"request with Authorization: Bearer {KEY} from {Path.home()}",
        _row(0, 128),
        _row(512, 128),
    ]
    engine = FakeEngine(outputs=[output])
    done = owner_report(
        plan,
        executors(engine, FakeHost()),
        Notes().reporter(),
        out=tmp_path / "reports",
        spec=False,
        decisions={},
    )
    for path in (done.markdown, done.data):
        text = path.read_text()
        assert KEY not in text and TOKEN not in text
        assert str(Path.home()) + "/" not in text
        assert f" {getpass.getuser()} " not in text
    data = json.loads(done.data.read_text())
    assert [d["name"] for d in data["devices"]["devices"]] == ["CPU"]
    assert data["bench"]["rows"][0]["speed_tg"] == 40.0
    assert {c["name"] for c in data["doctor"]}
    assert data["plan"]["target"] == "cpu"
    markdown = done.markdown.read_text()
    assert "## Devices (from llama.cpp's own log)" in markdown and "| CPU |" in markdown
    assert "| 512 | 128 | 1 | 500.00 | 40.00 |" in markdown
