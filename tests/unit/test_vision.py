"""Images: the vision projector found beside the model or named with --mmproj, read from a real tiny
step3vl projector (tests/tiny_gguf.py), passed to llama-server (mounted read-only in the container),
counted by the memory plan, said by `plan` and `up`; the refusals; the proxy's request body limit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.exposure import exposure
from orchestrator.core.memory import MIB, Workload, estimate, vision_compute_bytes
from orchestrator.core.models import KNOWN_MODELS, published_projector
from orchestrator.core.plan.proxy import MAX_REQUEST_BODY, proxy_config
from tests.tiny_gguf import VisionShape, write_clip_gguf, write_tiny_step3vl_projector, write_tiny_step35
from tests.unit.conftest import Cli


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A tiny step35 model (embedding size 64) with its tiny step3vl projector beside it."""
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny_step3vl_projector(folder / "mmproj-tiny.gguf")
    return write_tiny_step35(folder / "tiny-step35.gguf", "no-heads", image_tokens=True)


def _plan(cli: Cli, *args: str) -> dict[str, Any]:
    ran = cli("plan", "--target", "cpu", *args, "--json")
    assert ran.returncode == 0, ran.stderr
    return dict(json.loads(ran.stdout))


def _mmproj(plan: dict[str, Any]) -> str | None:
    argv: list[str] = plan["server"]["argv"]
    return argv[argv.index("--mmproj") + 1] if "--mmproj" in argv else None


def test_a_projector_beside_the_model_is_passed_mounted_and_counted(cli: Cli, served: Path) -> None:
    plan = _plan(cli, "--model", str(served))
    # Beside the model: in the model's own read-only mount.
    assert _mmproj(plan) == "/models/mmproj-tiny.gguf"
    assert [str(served.parent), "/models", "ro"] in plan["container"]["volumes"]
    projector = plan["model"]["projector"]
    assert (projector["encoder"]["projector_type"], projector["n_embd_out"]) == ("step3vl", 64)
    server = plan["memory"]["rows"][0]
    assert server["use"] == "server" and server["vision_mib"] > 0
    assert "step3vl vision projector" in server["workload"]
    # The benchmarks load no projector.
    assert all(row["vision_mib"] == 0 for row in plan["memory"]["rows"][1:])


def test_plan_and_up_say_images_are_accepted(cli: Cli, served: Path, tmp_path: Path) -> None:
    shown = cli("plan", "--target", "cpu", "--model", str(served))
    assert shown.returncode == 0, shown.stderr
    assert "images" in shown.stdout and "accepted" in shown.stdout and "step3vl projector" in shown.stdout
    up = cli("up", "--target", "cpu", "--model", str(served), "--port", "18094")
    assert up.returncode == 0, up.stderr
    assert "accepted (OpenAI image_url, Anthropic image blocks, the page's upload)" in up.stdout
    text_only = cli("plan", "--target", "cpu", "--model", str(served), "--mmproj", "none")
    assert "not accepted: --mmproj none (text only)" in text_only.stdout


def test_a_linked_projector_is_served_from_the_file_it_names_and_a_folder_is_refused(
    cli: Cli, served: Path, tmp_path: Path
) -> None:
    """A link beside the model points out of the model's mount: the file it names is mounted instead."""
    elsewhere = tmp_path / "shared-vision"
    elsewhere.mkdir()
    target = write_tiny_step3vl_projector(elsewhere / "eyes.gguf")
    link = served.parent / "mmproj-linked.gguf"
    link.symlink_to(target)
    try:
        plan = _plan(cli, "--model", str(served), "--mmproj", str(link))
    finally:
        link.unlink()
    assert _mmproj(plan) == "/mmproj/eyes.gguf"
    assert [str(target), "/mmproj/eyes.gguf", "ro"] in plan["container"]["volumes"]
    folder = cli("plan", "--target", "cpu", "--model", str(served), "--mmproj", str(elsewhere))
    assert folder.returncode == 2 and "is a folder" in folder.stderr, folder.stderr
    assert len(folder.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["a second projector", "a damaged projector"])
def test_a_projector_problem_stops_up_but_not_down_status_or_logs(
    cli: Cli, served: Path, damage: str
) -> None:
    """Which projector to serve is up's question; a server already running can be reached and stopped."""
    args = ("--target", "cpu", "--model", str(served), "--port", "18095")
    assert cli("up", *args).returncode == 0
    if damage == "a second projector":
        write_tiny_step3vl_projector(served.parent / "mmproj-other.gguf")
    else:
        (served.parent / "mmproj-tiny.gguf").write_bytes(b"GGUF" + bytes(60))
    refused = cli("up", *args)
    assert refused.returncode in (2, 3) and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for command in ("status", "logs", "down"):
        ran = cli(command, *args)
        assert ran.returncode == 0, (command, ran.stderr)


def test_a_projector_mounted_alone_needs_only_itself_readable(cli: Cli, served: Path, tmp_path: Path) -> None:
    """Its folder (the owner's home, say) is not mounted, so it stays closed; the file must be readable by
    the container's user."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    projector = write_tiny_step3vl_projector(private / "eyes.gguf")
    projector.chmod(0o644)
    args = ("--target", "cpu", "--model", str(served), "--mmproj", str(projector), "--port", "18096")
    assert cli("up", *args).returncode == 0
    assert cli("down", *args).returncode == 0
    projector.chmod(0o600)
    refused = cli("up", *args)
    assert refused.returncode == 2 and f"chmod o+r {projector}" in refused.stderr, refused.stderr
    assert "o+rx" not in refused.stderr


def test_mmproj_none_serves_text_only(cli: Cli, served: Path) -> None:
    plan = _plan(cli, "--model", str(served), "--mmproj", "none")
    assert _mmproj(plan) is None and plan["model"]["projector"] is None
    assert plan["memory"]["rows"][0]["vision_mib"] == 0


def test_a_projector_elsewhere_gets_its_own_read_only_mount(cli: Cli, served: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "vision"
    elsewhere.mkdir()
    projector = write_tiny_step3vl_projector(elsewhere / "eyes.gguf")
    plan = _plan(cli, "--model", str(served), "--mmproj", str(projector))
    assert _mmproj(plan) == "/mmproj/eyes.gguf"
    # The file alone, not the folder it is in.
    assert [str(elsewhere / "eyes.gguf"), "/mmproj/eyes.gguf", "ro"] in plan["container"]["volumes"]
    assert not [v for v in plan["container"]["volumes"] if v[0] == str(elsewhere)]
    native = _plan(cli, "--model", str(served), "--mmproj", str(projector), "--native")
    assert _mmproj(native) == str(projector)


def test_a_model_without_a_projector_plans_text_only(cli: Cli, model: Path) -> None:
    plan = _plan(cli, "--model", str(model))
    assert _mmproj(plan) is None
    assert "mmproj" not in " ".join(plan["server"]["argv"])


def _refused(cli: Cli, *args: str) -> str:
    ran = cli("plan", "--target", "cpu", *args)
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr and ran.stdout == ""
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, ran.stderr
    return lines[0]


def test_a_file_that_is_not_a_projector_is_refused_in_one_line(
    cli: Cli, served: Path, tmp_path: Path
) -> None:
    # A language model given as the projector.
    said = _refused(cli, "--model", str(served), "--mmproj", str(served))
    assert "is not a vision projector (general.architecture 'step35'" in said and "--mmproj none" in said
    # A clip file with no projector type.
    other = write_tiny_step3vl_projector(tmp_path / "not-clip.gguf", arch="llama")
    said = _refused(cli, "--model", str(served), "--mmproj", str(other))
    assert "is not a vision projector (general.architecture 'llama'" in said
    said = _refused(cli, "--model", str(served), "--mmproj", str(tmp_path / "nowhere.gguf"))
    assert "does not exist" in said


def test_a_projector_for_another_embedding_size_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = write_tiny_step35(folder / "tiny-step35.gguf", "no-heads")
    wrong = write_tiny_step3vl_projector(folder / "mmproj-big.gguf", n_embd_out=128)
    said = _refused(cli, "--model", str(model))
    assert said.endswith(
        f"{wrong.name} is a projector for a model of embedding size 128, but tiny-step35.gguf has 64: it "
        "belongs to another model; give this model's own mmproj, or --mmproj none"
    )
    # Told to leave it, the model is served text only.
    assert _mmproj(_plan(cli, "--model", str(model), "--mmproj", "none")) is None


def test_two_projectors_beside_the_model_ask_which(cli: Cli, served: Path) -> None:
    write_tiny_step3vl_projector(served.parent / "mmproj-other.gguf")
    said = _refused(cli, "--model", str(served))
    assert "2 vision projectors beside tiny-step35.gguf" in said and "--mmproj PATH" in said


def test_a_projector_is_not_taken_for_the_model_in_a_folder(cli: Cli, served: Path) -> None:
    plan = _plan(cli, "--model", str(served.parent))
    assert plan["model"]["path"] == str(served)


def test_the_memory_plan_counts_weights_and_compute_buffer(served: Path) -> None:
    from orchestrator.models.gguf import read_projector

    projector = read_projector(served.parent / "mmproj-tiny.gguf")
    assert projector.weights_bytes == sum(4 * n for n in _tiny_projector_elements(VisionShape(), 64))
    arch = KNOWN_MODELS["step-3.5-flash"].arch
    assert arch is not None
    work = Workload(ctx=4096, batch=2048, ubatch=512)
    plain = estimate(arch, 10, work)
    seeing = estimate(arch, 10, Workload(ctx=4096, batch=2048, ubatch=512, projector=projector))
    compute = vision_compute_bytes(projector, flash_attn=True)
    assert seeing.total - plain.total == projector.weights_bytes + compute == seeing.vision
    # The tiny encoder: a picture of 112 pixels, 64 patches of 14 and width 32: the input moment (the
    # picture, the patch convolution's im2col and output) is the largest; 0.29 MiB planned where
    # llama-server reported 0.22 MiB at the pin.
    assert compute == 4 * (3 * 112 * 112 + 3 * 14 * 14 * 64 + 64 * 32)
    assert round(compute / MIB, 2) == 0.29
    assert vision_compute_bytes(projector, flash_attn=False) == compute


def test_step37_encoder_compute_buffer_from_its_published_shape() -> None:
    """Step-3.7-Flash's encoder as upstream's converter asserts it (728 px, width 1536; n_ff from its
    default ratio 8960/1536): 2704 patches of 14 pixels, the feed-forward moment."""
    projector = published_projector(KNOWN_MODELS["step-3.7-flash"], Path("/m"))
    assert projector is not None and projector.path == Path("/m/mmproj-step3.7-flash-f16.gguf")
    assert (projector.projector_type, projector.n_embd_out, projector.weights_bytes) == (
        "step3vl",
        4096,
        3_972_828_768,
    )
    assert round(vision_compute_bytes(projector, flash_attn=True) / MIB, 1) == 200.7
    # Without flash attention the scores of every head (two n x n matrices each) outweigh it.
    n = 2704
    with_heads = replace(projector, encoder=replace(projector.encoder, n_head=16))
    assert vision_compute_bytes(with_heads, flash_attn=False) == 4 * (5 * n * 1536 + 2 * 16 * n * n)
    # A model published without an encoder's shape plans no projector before its pull.
    assert published_projector(replace(KNOWN_MODELS["step-3.7-flash"], vision=None), Path("/m")) is None


def _tiny_projector_elements(shape: VisionShape, out: int) -> list[int]:
    d, f = shape.n_embd, shape.n_ff
    positions = (shape.image_size // shape.patch_size) ** 2
    layer = [d, d, d, d, 3 * d * d, 3 * d, d * d, d, d * f, f, f * d, d, d, d]
    return [
        shape.patch_size**2 * 3 * d,
        d * positions,
        d,
        d,
        *(layer * shape.n_layer),
        9 * d * 2 * d,
        2 * d,
        9 * 2 * d * 4 * d,
        4 * d,
        4 * d * out,
    ]


def test_the_proxy_limits_request_bodies_to_a_few_screenshots() -> None:
    reach = exposure("127.0.0.1", 8080, "auto", (), (), hostname="box", fqdn="box", addresses=())
    config = proxy_config(reach, ":8443", "unix//run/x.sock", fallback_page=False)
    routes = config["apps"]["http"]["servers"]["step-flash"]["routes"]
    # In the first route, which every request passes, before anything reaches llama-server.
    assert "match" not in routes[0]
    assert {"handler": "request_body", "max_size": MAX_REQUEST_BODY} in routes[0]["handle"]
    assert MAX_REQUEST_BODY == 32 * 1024 * 1024
    # A body that says it is larger is answered 413 before any of it is passed on (the limit alone lets
    # the first 32 MiB through and answers 502, seen with Caddy 2.6.2), before the routes to llama-server.
    refuse = next(i for i, r in enumerate(routes) if r["handle"][0].get("status_code") == 413)
    assert routes[refuse]["terminal"] and routes[refuse]["match"] == [
        {
            "expression": '{http.request.header.Content-Length} != "" && int({http.request.header.Content-Length}) > 33554432'
        }
    ]
    upstream = [i for i, r in enumerate(routes) if any(h["handler"] == "reverse_proxy" for h in r["handle"])]
    assert upstream and refuse < min(upstream)


def test_the_readme_says_the_body_limit() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "up to 32 MiB" in readme and "--mmproj" in readme


def test_when_only_text_fits_the_fix_says_mmproj_none(served: Path) -> None:
    from dataclasses import replace

    from orchestrator.core.plan import with_model
    from orchestrator.models.gguf import read_projector
    from tests.planning import fixed_model, fixed_plan

    big = replace(read_projector(served.parent / "mmproj-tiny.gguf"), weights_bytes=40 * 2**30)
    plan = fixed_plan("dgx-spark", "default")
    seeing = with_model(plan, replace(fixed_model("dgx-spark"), projector=big))
    (row,) = seeing.memory.failing()
    assert row.fit.fixes[0] == "text only, no images: --mmproj none"
    assert not plan.memory.failing()


def test_a_replaced_projector_makes_the_running_server_stale(cli: Cli, served: Path) -> None:
    """The model's identity (what a running server was started from) covers its projector: a projector
    replaced in place restarts the server on the next up, as a replaced model does."""
    before = _plan(cli, "--model", str(served))["model"]["identity"]
    projector = served.parent / "mmproj-tiny.gguf"
    write_tiny_step3vl_projector(projector, shape=VisionShape(n_layer=3))
    after = _plan(cli, "--model", str(served))["model"]["identity"]
    assert before and after and before != after
    assert _plan(cli, "--model", str(served), "--mmproj", "none")["model"]["identity"] != after


def test_a_projector_with_a_damaged_size_is_refused_in_one_line(
    cli: Cli, served: Path, tmp_path: Path
) -> None:
    damaged = write_clip_gguf(
        tmp_path / "mmproj-damaged.gguf",
        {"clip.projector_type": "mlp", "clip.has_vision_encoder": True, "clip.vision.projection_dim": "wide"},
        {"v.patch_embd.weight": (2, 2)},
    )
    said = _refused(cli, "--model", str(served), "--mmproj", str(damaged))
    assert "clip.vision.projection_dim is 'wide', not a number; the file is damaged" in said


def test_a_projector_named_as_the_pull_names_it_is_found(cli: Cli, tmp_path: Path) -> None:
    """What `model pull` takes as a projector (mmproj anywhere in the name) is what plan finds."""
    folder = tmp_path / "models"
    folder.mkdir()
    model = write_tiny_step35(folder / "tiny-step35.gguf", "no-heads", image_tokens=True)
    write_tiny_step3vl_projector(folder / "Tiny-MMPROJ-F16.gguf")
    assert _mmproj(_plan(cli, "--model", str(model))) == "/models/Tiny-MMPROJ-F16.gguf"


def test_up_refuses_a_projector_the_container_user_cannot_read(cli: Cli, served: Path) -> None:
    projector = served.parent / "mmproj-tiny.gguf"
    projector.chmod(0o600)
    up = cli("up", "--target", "cpu", "--model", str(served), "--port", "18095")
    assert up.returncode != 0
    assert up.stderr.strip().endswith(
        f"cannot read {projector}: chmod o+r {projector} (the model stays read-only)"
    )
    assert len(up.stderr.strip().splitlines()) == 1
