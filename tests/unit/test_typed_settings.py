"""Settings as a typed value: one field per setting, its parser's result of the field's type, made by
merge_layers alone; mypy checks every read (a misspelt or mistyped setting is a type error)."""

from __future__ import annotations

import textwrap
import types
from dataclasses import fields
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

import pytest

from orchestrator.core.settings import NAMES, SPECS, Layer, Settings, default_layer, merge_layers
from tests.conftest import REPO

# One value of each setting as an environment variable gives it: text, for the parser to read.
AS_TEXT = {
    "target": "cpu",
    "profile": "long-context",
    "source": "stepfun-fork",
    "model": "/models/step.gguf",
    "data_dir": "/srv/data",
    "models_dir": "/srv/models",
    "host": "0.0.0.0",
    "port": "9000",
    "api_key_file": "/srv/key",
    "tls": "off",
    "cors": "http://webui.lan:3000",
    "host_names": "spark.lan",
    "allow_plain_http": "true",
    "bases": "local",
    "image_repo": "mine",
    "registry": "ghcr.io/an-owner",
    "build": "never",
    "image_lock": "/srv/images.lock.json",
    "trust_tag": "yes",
    "project": "other",
    "platform": "linux/arm64",
    "ctx_size": "4096",
    "speculative": "mtp:2",
    "draft_model": "/models/mtp-step.gguf",
    "mmproj": "/models/mmproj-step.gguf",
    "reasoning": "high",
    "rpc": "10.0.0.2:50052",
    "threads": "8",
    "n_predict": "0",
    "native": "1",
    "memory_limit": "100g",
    "cuda_architectures": "121a-real;90-real",
    "gpu": "0,1",
    "gpu_passthrough": "false",
    "wait_timeout": "60",
    "idle": "30m",
    "ui": "off",
    "build_cache": "type=gha,scope=x",
}


def _of_type(value: object, hint: object) -> bool:
    if isinstance(hint, types.UnionType):
        return any(_of_type(value, h) for h in get_args(hint))
    if get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(_of_type(v, get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    assert isinstance(hint, type), hint
    return isinstance(value, hint)


def test_every_setting_is_a_field_with_a_parser_and_help() -> None:
    assert [f.name for f in fields(Settings)] == ["origins", *NAMES]
    assert all(SPECS[name].help for name in NAMES)
    assert sorted(AS_TEXT) == sorted(NAMES), "a value as text for each setting, below"


def test_the_lists_of_setting_names_elsewhere_name_settings() -> None:
    """The plan options and what a folder's orchestrator.yaml may set are lists of names: none misspelt."""
    from orchestrator.app.config import FOLDER_SETTINGS
    from orchestrator.app.plan_options import SETTING_FLAGS

    assert set(SETTING_FLAGS) <= set(NAMES) and set(FOLDER_SETTINGS) <= set(NAMES)


def test_defaults_and_values_from_any_source_are_of_the_fields_type() -> None:
    hints = get_type_hints(Settings)
    defaults = merge_layers([default_layer(Path("/data"))])
    given = merge_layers([default_layer(Path("/data")), Layer("env", AS_TEXT)])
    for name in NAMES:
        assert _of_type(getattr(defaults, name), hints[name]), (name, getattr(defaults, name))
        assert _of_type(getattr(given, name), hints[name]), (name, getattr(given, name))
        assert given.origin(name) == "env"
    assert given.port == 9000 and given.threads == 8 and given.native is True and given.idle == 1800
    assert defaults.models_dir == Path("/data/models") and defaults.model is None and defaults.rpc == ()


def test_a_replaced_value_is_parsed_and_says_where_it_came_from() -> None:
    base = merge_layers([default_layer(Path("/data"))])
    moved = base.with_value("port", "9000", "bench serve: a free port")
    assert moved.port == 9000 and moved.origin("port") == "bench serve: a free port"
    assert base.port == 8080 and base.origin("port") == "default"
    assert [row for row in moved.rows() if row[0] != "port"] == [
        row for row in base.rows() if row[0] != "port"
    ]
    assert ("port", "9000", "bench serve: a free port") in moved.rows()
    assert ("models_dir", "/data/models", "default (data_dir/models)") in base.rows()
    with pytest.raises(ValueError, match="between 1 and 65535"):
        base.with_value("port", "0", "a flag")
    with pytest.raises(KeyError):
        base.with_value("prot", 9000, "a flag")


def test_a_misspelt_or_mistyped_setting_is_a_mypy_error(tmp_path: Path) -> None:
    from mypy import api

    reads = tmp_path / "reads.py"
    reads.write_text(
        textwrap.dedent(
            """\
            from orchestrator.core.settings import Settings


            def port(settings: Settings) -> int:
                return settings.port


            def misspelt(settings: Settings) -> int:
                return settings.prot


            def mistyped(settings: Settings) -> str:
                return settings.port
            """
        )
    )
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nstrict = True\nfollow_imports = silent\nmypy_path = {REPO}\n")
    out, _err, status = api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(reads)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out
    assert {line.split(":")[1] for line in errors} == {"9", "13"}, out
    assert any('"Settings" has no attribute "prot"' in line for line in errors), out
    assert any('(got "int", expected "str")' in line for line in errors), out
