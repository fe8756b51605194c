"""Every file the tool reads back answers a wrong shape or type with one line naming the file and what to
do, and overwrites nothing: models.json, the deployments, pulled.json, the TLS files, a GGUF's metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.app.cli import main

DATA = Path("data") / "step-flash-orchestrator"


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert "Traceback" not in err[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"models": [1, 2]}',
        '{"models": {"a": "x"}}',
        "[1]",
        '{"models": {"a": {"name": 1, "path": "p", "origin": "o", "managed": true}}}',
        '{"models": {"a": {"name": "a", "path": "p", "origin": "o", "managed": true, "files": [{"name": "f", "size": "big"}]}}}',
    ],
)
def test_model_list_over_a_models_json_of_the_wrong_shape(
    isolated_env: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    registry = isolated_env / DATA / "models" / "models.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(text)
    assert main(["model", "list"]) == 2
    _one_line_error(capsys, str(registry), "move it aside")
    assert registry.read_text() == text


@pytest.mark.parametrize("line", ["[1, 2]", '{"id": "x"}', '"deployment"'])
def test_history_over_a_deployments_line_of_the_wrong_shape(
    isolated_env: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    from orchestrator.executors.deployment_history import read_history

    history = isolated_env / DATA / "deployments" / "step-flash.jsonl"
    history.parent.mkdir(parents=True)
    history.write_text(line + "\n")
    assert main(["history", "--target", "cpu"]) == 2
    _one_line_error(capsys, str(history), "line 1")
    assert history.read_text() == line + "\n"
    # A last line cut short by a crash is no deployment, and no error either.
    history.write_text('{"id": 1, "wh')
    assert read_history(isolated_env / DATA, "step-flash") == []


def _gguf_with_a_word_for(path: Path, key: str) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for name, value in {"block_count": 1, "context_length": 128, "embedding_length": 8}.items():
        if name == key:
            writer.add_string(f"llama.{name}", "many")
        else:
            writer.add_uint32(f"llama.{name}", value)
    writer.add_uint32("llama.attention.head_count", 2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("key", ["block_count", "context_length"])
def test_a_gguf_with_a_word_for_a_number_is_one_line(
    isolated_env: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    model = _gguf_with_a_word_for(isolated_env / "odd.gguf", key)
    before = model.read_bytes()
    assert main(["model", "verify", str(model)]) == 3
    _one_line_error(capsys, str(model), "wrong type")
    assert main(["plan", "--target", "cpu", "--model", str(model), "--json"]) in (0, 3)
    assert "Traceback" not in capsys.readouterr().err
    assert model.read_bytes() == before


def test_a_record_of_pulled_images_of_the_wrong_shape_is_not_overwritten(isolated_env: Path) -> None:
    from orchestrator.errors import ConfigError
    from orchestrator.executors.published import remember_pulled

    record = isolated_env / "images" / "pulled.json"
    record.parent.mkdir(parents=True)
    record.write_text("[1]")
    with pytest.raises(ConfigError, match="move it aside"):
        remember_pulled(isolated_env, "tag", "sha256:x", "ref", None)
    assert record.read_text() == "[1]"


def test_up_with_a_garbage_certificate_authority_is_one_line(tmp_path: Path) -> None:
    from orchestrator.core.exposure import exposure
    from orchestrator.core.plan.proxy import tls_files
    from orchestrator.errors import UsageError
    from orchestrator.executors import certificates

    files = tls_files(tmp_path, "step-flash")
    reach = exposure(
        "0.0.0.0", 8080, "auto", (), (), hostname="spark", fqdn="spark", addresses=("192.168.1.5",)
    )
    certificates.prepare(reach, files)
    files.ca_cert.write_text("not a certificate\n")
    with pytest.raises(UsageError, match="not this tool's certificate authority") as refused:
        certificates.prepare(reach, files)
    assert "\n" not in str(refused.value) and files.ca_cert.read_text() == "not a certificate\n"
    # A garbage server certificate is made again from the authority, as an expired one is.
    files.ca_cert.unlink()
    files.ca_key.unlink()
    certificates.prepare(reach, files)
    files.server_cert.write_text("garbage\n")
    certificates.prepare(reach, files)
    assert files.server_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_up_over_a_garbage_ca_crt_is_refused_before_anything_runs(
    isolated_env: Path, model: Path, fake_executors: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fakes import FakeEngine

    assert isinstance(fake_executors, FakeEngine)
    key = isolated_env / "key"
    key.write_text("k\n")
    key.chmod(0o600)
    ca = isolated_env / DATA / "tls" / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text("garbage\n")
    (ca.parent / "ca.key").write_text("garbage\n")
    argv = ["up", "--target", "cpu", "--model", str(model), "--host", "0.0.0.0", "--port", "18125"]
    assert main([*argv, "--api-key-file", str(key)]) == 2
    _one_line_error(capsys, str(ca), "not this tool's certificate authority")
    assert fake_executors.names() == [] or "compose_up" not in fake_executors.names()
    assert "build" not in fake_executors.names() and ca.read_text() == "garbage\n"


def test_a_deployment_recorded_after_a_crash_cut_the_last_line_is_kept(tmp_path: Path) -> None:
    from orchestrator.core.deployments import Deployment
    from orchestrator.executors.deployment_history import history_file, read_history, record

    def made(number: int) -> Deployment:
        return Deployment(number, "t", "up", "p", "image", None, "s", None, None, "m", None, "e", compose="c")

    record(tmp_path, made(1))
    history = history_file(tmp_path, "p")
    history.write_text(history.read_text()[:-20])  # the power went while the line was written
    record(tmp_path, made(2))
    record(tmp_path, made(3))
    assert [d.id for d in read_history(tmp_path, "p")] == [2, 3]


def test_lines_a_crash_left_are_passed_over_and_named(tmp_path: Path) -> None:
    from orchestrator.core.deployments import Deployment
    from orchestrator.executors.deployment_history import history_file, passed_over, read_history, record

    record(tmp_path, Deployment(1, "t", "up", "p", "i", None, "s", None, None, "m", None, "e", compose="c"))
    history = history_file(tmp_path, "p")
    # A cut that ends on a brace, a blank line, and NULs after a power loss.
    history.write_text(history.read_text() + '{"id": 2, "figures": {}\n\n' + "\x00" * 8 + "\n")
    record(tmp_path, Deployment(3, "t", "up", "p", "i", None, "s", None, None, "m", None, "e", compose="c"))
    assert [d.id for d in read_history(tmp_path, "p")] == [1, 3]
    assert passed_over(tmp_path, "p") == [2]
