from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.app.config import load_settings
from orchestrator.core.settings import Layer, check_exposure, default_layer, merge_layers
from orchestrator.errors import ConfigError, UsageError


def test_precedence_and_origins(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_file = isolated_env / "config" / "step-flash-orchestrator" / "orchestrator.yaml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("port: 9000\nprofile: long-context\nhost: 127.0.0.2\nthreads: 4\n")
    (isolated_env / "work" / "orchestrator.yaml").write_text("port: 9100\nbases: local\nthreads: 6\n")
    monkeypatch.setenv("ORCHESTRATOR_PORT", "9200")
    monkeypatch.setenv("ORCHESTRATOR_THREADS", "8")
    settings = load_settings({"threads": "12", "target": None})

    assert settings["profile"] == "long-context"
    assert settings.origin("profile") == str(user_file)
    assert settings["bases"] == "local"
    assert settings.origin("bases") == str(isolated_env / "work" / "orchestrator.yaml")
    assert settings["port"] == 9200 and settings.origin("port") == "env ORCHESTRATOR_PORT"
    assert settings["threads"] == 12 and settings.origin("threads") == "flag --threads"
    assert settings["target"] == "auto" and settings.origin("target") == "default"
    assert settings["models_dir"] == isolated_env / "data" / "step-flash-orchestrator" / "models"
    assert settings.origin("models_dir") == "default (data_dir/models)"


def test_unknown_key_in_file_suggests_the_right_one(isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot'.*did you mean 'port'"):
        load_settings({})


def test_unknown_env_variable(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_TARGTE", "cpu")
    with pytest.raises(ConfigError, match=r"ORCHESTRATOR_TARGTE.*did you mean 'target'"):
        load_settings({})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("port: [1, 2\n", "not valid YAML"),
        ("- port\n- 8080\n", "must be a mapping"),
        ("port: 70000\n", "between 1 and 65535"),
        ("native: maybe\n", "true or false"),
        ("bases: cloud\n", "one of upstream, local"),
        ("threads: -1\n", ">= 0"),
    ],
)
def test_malformed_config(isolated_env: Path, text: str, says: str) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_settings({})


def test_empty_config_file_is_fine(isolated_env: Path) -> None:
    (isolated_env / "work" / "orchestrator.yaml").write_text("# nothing yet\n")
    assert load_settings({})["port"] == 8080


def test_exposure_needs_a_key() -> None:
    base = default_layer(Path("/data"))
    check_exposure(merge_layers([base]))
    exposed = merge_layers([base, Layer("flag --host", {"host": "0.0.0.0"})])
    with pytest.raises(UsageError, match="without an API key"):
        check_exposure(exposed)
    check_exposure(merge_layers([base, Layer("flag", {"host": "0.0.0.0", "api_key_file": "/k"})]))
