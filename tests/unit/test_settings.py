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

    assert settings.profile == "long-context"
    assert settings.origin("profile") == str(user_file)
    assert settings.bases == "local"
    assert settings.origin("bases") == str(isolated_env / "work" / "orchestrator.yaml")
    assert settings.port == 9200 and settings.origin("port") == "env ORCHESTRATOR_PORT"
    assert settings.threads == 12 and settings.origin("threads") == "flag --threads"
    assert settings.target == "auto" and settings.origin("target") == "default"
    assert settings.models_dir == isolated_env / "data" / "step-flash-orchestrator" / "models"
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
    assert load_settings({}).port == 8080


def test_exposure_needs_a_key() -> None:
    base = default_layer(Path("/data"))
    check_exposure(merge_layers([base]))
    exposed = merge_layers([base, Layer("flag --host", {"host": "0.0.0.0"})])
    with pytest.raises(UsageError, match="without an API key"):
        check_exposure(exposed)
    check_exposure(merge_layers([base, Layer("flag", {"host": "0.0.0.0", "api_key_file": "/k"})]))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names this machine resolves, in place of its resolver (the unit tier asks no DNS)."""
    import socket

    known: dict[str, str] = {}

    def getaddrinfo(name: str, *_args: object, **_kwargs: object) -> list[tuple[object, ...]]:
        if name not in known:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (known[name], 0))]

    from orchestrator.app.config import resolve_host

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    resolve_host.cache_clear()
    return known


def test_host_is_an_address_and_loopback_is_decided_by_it(
    isolated_env: Path, resolver: dict[str, str]
) -> None:
    from orchestrator.core.exposure import is_loopback

    assert not is_loopback("127.evil.example") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and is_loopback("localhost")
    assert load_settings({"host": "::1"}).host == "::1"
    assert load_settings({"host": "localhost"}).host == "127.0.0.1"
    # A name is resolved once, stored as its address, and kept as a name the server answers to.
    resolver["spark.lan"] = "192.168.1.10"
    settings = load_settings({"host": "spark.lan"})
    assert settings.host == "192.168.1.10" and "spark.lan" in settings.host_names
    assert "spark.lan" in settings.origin("host")
    # 127.evil.example resolves nowhere here: one line, and it never counts as loopback.
    with pytest.raises(ConfigError, match="is not an IP address and does not resolve"):
        load_settings({"host": "127.evil.example"})
    # A name that resolves to a public address is exposure, with its rules.
    resolver["127.evil.example"] = "203.0.113.7"
    exposed = load_settings({"host": "127.evil.example"})
    with pytest.raises(UsageError, match="without an API key"):
        check_exposure(exposed)
    with pytest.raises(ConfigError, match="expected an IP address"):
        load_settings({"host": "not a host!"})


def test_the_data_directory_is_absolute_once_read(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", "relative/data")
    settings = load_settings({})
    assert settings.data_dir == isolated_env / "work" / "relative" / "data"
    assert settings.models_dir == isolated_env / "work" / "relative" / "data" / "models"
    assert settings.origin("data_dir") == "env ORCHESTRATOR_DATA_DIR"


def test_ui_takes_only_a_folder_holding_a_page(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.app.config import check_ui

    monkeypatch.setenv("HOME", str(isolated_env / "home"))
    (isolated_env / "home").mkdir()
    page = isolated_env / "home" / "webui"
    page.mkdir()
    (page / "index.html").write_text("<html></html>")
    check_ui(load_settings({"ui": str(page)}))
    check_ui(load_settings({"ui": "auto"}))
    empty = isolated_env / "empty"
    empty.mkdir()
    data = isolated_env / "data" / "step-flash-orchestrator"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "index.html").write_text("")
    cases = {
        "/": "the filesystem's root",
        str(isolated_env / "home"): "your home folder",
        str(isolated_env): "your home folder",
        str(data): "the data directory",
        str(data / "secrets"): "a folder of the data or models directory",
        str(isolated_env / "missing"): "is not a folder",
        str(empty): "holds no index.html",
    }
    for ui, words in cases.items():
        with pytest.raises(UsageError, match=words):
            check_ui(load_settings({"ui": ui}))
    # A link to the root is the root.
    (isolated_env / "root-link").symlink_to("/")
    with pytest.raises(UsageError, match="the filesystem's root"):
        check_ui(load_settings({"ui": str(isolated_env / "root-link")}))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--ui", "/"], "the filesystem's root"),
        (["--ui", "/no/such/page"], "is not a folder"),
        (["--host", "127.evil.example"], "does not resolve"),
    ],
)
def test_bad_ui_and_host_are_one_line_through_the_cli(
    isolated_env: Path,
    resolver: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    words: str,
) -> None:
    from orchestrator.app.cli import main

    assert main(["up", "--target", "cpu", "--port", "18124", *argv]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0]
    assert not (isolated_env / "data" / "step-flash-orchestrator" / "compose").exists()


def test_what_decides_which_images_run_never_comes_from_a_folders_config(isolated_env: Path) -> None:
    """A cloned repository's orchestrator.yaml may set ports and profiles, never the image lock, the
    registry or trust in a tag; the user's own file may."""
    folder = isolated_env / "work" / "orchestrator.yaml"
    own = isolated_env / "config" / "step-flash-orchestrator" / "orchestrator.yaml"
    for setting in (
        "image_lock: /tmp/foreign.lock.json",
        "registry: ghcr.io/someone",
        "trust_tag: true",
        "source: https://example.invalid/llama.cpp@0123456",
        "ui: ./page",
        "cors: https://evil.example",
        "host: 0.0.0.0",
        "rpc: 10.0.0.9:50052",
        "build_cache: type=registry,ref=evil.example/cache",
        "model: ./their.gguf",
    ):
        folder.write_text(f"port: 9100\n{setting}\n")
        with pytest.raises(ConfigError, match="may not decide what runs or who reaches it") as refused:
            load_settings({})
        assert str(own) in str(refused.value)
    folder.write_text("port: 9100\nprofile: long-context\n")
    own.parent.mkdir(parents=True)
    own.write_text("trust_tag: true\n")
    settings = load_settings({})
    assert settings.trust_tag is True and settings.port == 9100


def test_origins_on_the_schemes_default_port_are_written_as_browsers_send_them() -> None:
    from orchestrator.core.exposure import exposure, parse_origins

    assert parse_origins("https://webui.lan:443,http://webui.lan:80,http://webui.lan:3000") == (
        "https://webui.lan",
        "http://webui.lan",
        "http://webui.lan:3000",
    )
    reach = exposure(
        "0.0.0.0", 443, "auto", (), ("llm.lan",), hostname="spark", fqdn="spark", addresses=("192.168.1.5",)
    )
    assert "https://llm.lan" in reach.origins and "https://llm.lan:443" not in reach.origins


def _given(name: str, value: object) -> object:
    """A setting as a flag gives it, read the one way every source's values are (merge_layers)."""
    from orchestrator.core.settings import Layer, default_layer, merge_layers

    return getattr(merge_layers([default_layer(Path("/data")), Layer(f"flag --{name}", {name: value})]), name)


def _refusal(name: str, value: object) -> str:
    with pytest.raises(ConfigError) as refused:
        _given(name, value)
    return str(refused.value)


def test_a_text_setting_is_a_word_or_a_number_never_empty_a_flag_or_a_list() -> None:
    assert _given("target", " cpu ") == "cpu" and _given("profile", 7) == "7"
    for bad in (True, "  ", ["cpu"], {"cpu": 1}):
        assert (
            _refusal("target", bad)
            == f"bad value {bad!r} for target in flag --target: expected a non-empty string"
        )


def test_a_whole_number_is_zero_or_more_and_never_a_flag() -> None:
    assert _given("threads", "0") == 0 and _given("threads", " 12 ") == 12
    assert (
        _refusal("threads", True) == "bad value True for threads in flag --threads: expected a whole number"
    )
    assert (
        _refusal("threads", "1.5") == "bad value '1.5' for threads in flag --threads: expected a whole number"
    )
    assert _refusal("threads", "-1") == "bad value '-1' for threads in flag --threads: expected a number >= 0"


@pytest.mark.parametrize("port", ["1", "65535"])
def test_a_port_at_either_end_of_the_range_is_taken(port: str) -> None:
    assert _given("port", port) == int(port)


@pytest.mark.parametrize("port", ["0", "65536"])
def test_a_port_beyond_the_range_is_refused(port: str) -> None:
    assert (
        _refusal("port", port)
        == f"bad value {port!r} for port in flag --port: expected a port between 1 and 65535"
    )


@pytest.mark.parametrize(
    ("words", "value"),
    [(("1", "true", "Yes", " ON", True), True), (("0", "false", "no", "Off", False), False)],
)
def test_a_yes_or_no_setting_takes_each_word_for_it(words: tuple[object, ...], value: bool) -> None:
    assert [_given("native", w) for w in words] == [value] * len(words)


def test_a_yes_or_no_setting_refuses_anything_else() -> None:
    assert (
        _refusal("native", "maybe") == "bad value 'maybe' for native in flag --native: expected true or false"
    )


def test_a_project_name_is_composes_and_the_refusal_says_its_rule() -> None:
    assert _given("project", "lab-2_b") == "lab-2_b"
    assert _refusal("project", "Lab") == (
        "bad value 'Lab' for project in flag --project: expected lowercase letters, digits, '-' and '_', "
        "starting with a letter or digit"
    )


def test_the_page_is_auto_off_or_a_folder_made_absolute() -> None:
    assert _given("ui", "off") == "off" and _given("ui", "auto") == "auto"
    assert _given("ui", "page") == str(Path.cwd() / "page")


def test_a_memory_cap_is_a_size_as_docker_takes_it_and_its_bytes_are_exact() -> None:
    from orchestrator.core.settings import memory_bytes

    assert _given("memory_limit", "100G") == "100g"
    assert _refusal("memory_limit", "0g") == (
        "bad value '0g' for memory_limit in flag --memory_limit: expected a size such as 48m or 100g"
    )
    assert [memory_bytes(s) for s in ("1024", "12b", "48k", "48m", "100g")] == [
        1024,
        12,
        48 << 10,
        48 << 20,
        100 << 30,
    ]


def test_a_duration_of_zero_is_off_and_a_bad_one_says_what_is_taken() -> None:
    assert _given("idle", "0") == 0 and _given("idle", "OFF") == 0
    assert _refusal("idle", "00") == (
        "bad value '00' for idle in flag --idle: expected a duration such as 90s, 30m or 2h, or off"
    )


def test_gpus_are_all_or_indices_written_without_spaces() -> None:
    assert _given("gpu", "0, 1") == "0,1" and _given("gpu", "all") == "all"
    assert _refusal("gpu", "first") == (
        "bad value 'first' for gpu in flag --gpu: expected all, or GPU indices such as 0 or 0,1"
    )


def test_cuda_architectures_are_a_cmake_list_and_commas_are_taken_for_its_semicolons() -> None:
    assert _given("cuda_architectures", "121a-real,90-real") == "121a-real;90-real"
    assert _refusal("cuda_architectures", "sm_90") == (
        "bad value 'sm_90' for cuda_architectures in flag --cuda_architectures: expected CMake CUDA "
        "architectures such as 121a-real or 121a-real;90-real"
    )


def test_plan_shows_nothing_for_an_unset_setting_and_a_list_comma_separated() -> None:
    from orchestrator.core.settings import Layer, default_layer, merge_layers

    settings = merge_layers([default_layer(Path("/data")), Layer("flag", {"rpc": "10.0.0.2:1,10.0.0.3:1"})])
    rows = settings.rows()
    assert ("model", "", "default") in rows and ("rpc", "10.0.0.2:1,10.0.0.3:1", "flag") in rows


def test_an_unknown_setting_names_the_closest_or_lists_them_all() -> None:
    from orchestrator.core.settings import NAMES, Layer, default_layer, merge_layers

    with pytest.raises(ConfigError) as close:
        merge_layers([default_layer(Path("/data")), Layer("flag --prot", {"prot": 1})])
    assert str(close.value) == "unknown setting 'prot' in flag --prot; did you mean 'port'?"
    with pytest.raises(ConfigError) as far:
        merge_layers([default_layer(Path("/data")), Layer("env", {"zzz": 1})])
    assert str(far.value) == f"unknown setting 'zzz' in env; known keys: {', '.join(NAMES)}"


def test_never_compiling_needs_a_registry_to_pull_from_unless_built_on_the_host() -> None:
    from orchestrator.core.settings import check_settings

    def settings(**values: object) -> object:
        return merge_layers([default_layer(Path("/data")), Layer("flag", values)])

    with pytest.raises(UsageError) as refused:
        check_settings(settings(build="never", registry="none"))  # type: ignore[arg-type]
    assert str(refused.value) == (
        "--no-build needs a registry to pull the image from, and registry is none: set one"
    )
    check_settings(settings(build="never", registry="ghcr.io/an-owner"))  # type: ignore[arg-type]
    check_settings(settings(build="never", registry="none", native=True))  # type: ignore[arg-type]
    check_settings(settings(build="auto", registry="none"))  # type: ignore[arg-type]


def test_exposure_in_clear_needs_its_confirmation_and_a_key_to_come_defers_the_key() -> None:
    from orchestrator.core.settings import check_settings

    def settings(**values: object) -> object:
        return merge_layers([default_layer(Path("/data")), Layer("flag", {"host": "0.0.0.0", **values})])

    with pytest.raises(UsageError, match="would cross the network in clear"):
        check_exposure(settings(api_key_file="/k", tls="off"))  # type: ignore[arg-type]
    check_exposure(settings(api_key_file="/k", tls="off", allow_plain_http=True))  # type: ignore[arg-type]
    check_settings(settings(), key_to_come=True)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="without an API key"):
        check_settings(settings())  # type: ignore[arg-type]
