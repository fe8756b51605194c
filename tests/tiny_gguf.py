"""Tiny GGUFs llama.cpp really loads, made with the gguf package: a mixture-of-experts (qwen3moe), a dense
(llama) and a sliding-window (gemma3) model of a few hundred kilobytes. Slow backends (Vulkan on lavapipe)
run them in a fraction of a second; memory estimates are compared with what llama.cpp allocates for them.
Split sets are written by the gguf writer itself (split_max_tensors)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["moe", "dense", "swa"]
ARCH: dict[str, str] = {"moe": "qwen3moe", "dense": "llama", "swa": "gemma3"}


@dataclass(frozen=True)
class Shape:
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 16
    n_layer: int = 2
    n_ff: int = 128
    n_expert: int = 4
    n_expert_used: int = 2
    n_ff_exp: int = 32
    context: int = 512
    # Extra plain word tokens beyond the byte tokens: a bigger vocabulary gives bigger logits.
    extra_vocab: int = 10
    window: int = 128


def _vocab(extra: int) -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    words = ["the", "a", "hello", "world", "sky", "is", "blue", "red", "cat", "dog"]
    words += [f"w{i}" for i in range(max(extra - len(words), 0))]
    tokens += [f"\u2581{w}" for w in words[:extra]]
    scores = [0.0] * 259 + [-float(i) for i in range(len(tokens) - 259)]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259)
    return tokens, scores, types


def _add_vocab(writer: Any, tokens: list[str], scores: list[float], types: list[int]) -> None:
    """A sentencepiece-style vocabulary with <unk>, <s> and </s> at 0, 1 and 2."""
    writer.add_string("tokenizer.ggml.model", "llama")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.scores", scores)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_uint32("tokenizer.ggml.bos_token_id", 1)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 2)
    writer.add_uint32("tokenizer.ggml.unknown_token_id", 0)


def write_tiny(
    path: Path,
    kind: Kind = "moe",
    shape: Shape = Shape(),
    seed: int = 0,
    split_max_tensors: int = 0,
    leave_out: tuple[str, ...] = (),
) -> Path:
    """Write the model; with split_max_tensors the writer makes `<stem>-0000N-of-0000M.gguf` parts and
    the first part's path is returned. Tensors named in leave_out are not written: a well-formed file
    that llama.cpp refuses to load."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab(shape.extra_vocab)
    n_vocab = len(tokens)
    arch = ARCH[kind]
    writer = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    writer.add_name(f"tiny-{kind}")
    writer.add_uint32(f"{arch}.context_length", shape.context)
    writer.add_uint32(f"{arch}.embedding_length", shape.n_embd)
    writer.add_uint32(f"{arch}.block_count", shape.n_layer)
    ff = shape.n_ff_exp * shape.n_expert_used if kind == "moe" else shape.n_ff
    writer.add_uint32(f"{arch}.feed_forward_length", ff)
    writer.add_uint32(f"{arch}.attention.head_count", shape.n_head)
    writer.add_uint32(f"{arch}.attention.head_count_kv", shape.n_head_kv)
    writer.add_uint32(f"{arch}.attention.key_length", shape.head_dim)
    writer.add_uint32(f"{arch}.attention.value_length", shape.head_dim)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_float32(f"{arch}.rope.freq_base", 10000.0)
    if kind == "moe":
        writer.add_uint32(f"{arch}.expert_count", shape.n_expert)
        writer.add_uint32(f"{arch}.expert_used_count", shape.n_expert_used)
        writer.add_uint32(f"{arch}.expert_feed_forward_length", shape.n_ff_exp)
    if kind == "swa":
        writer.add_uint32(f"{arch}.attention.sliding_window", shape.window)
    _add_vocab(writer, tokens, scores, types)

    def tensor(name: str, *ne: int) -> None:
        if name in leave_out:
            return
        # numpy shapes are ggml's ne reversed.
        writer.add_tensor(name, (rng.standard_normal(tuple(reversed(ne))) * 0.05).astype(np.float32))

    e, hd = shape.n_embd, shape.head_dim
    tensor("token_embd.weight", e, n_vocab)
    tensor("output_norm.weight", e)
    tensor("output.weight", e, n_vocab)
    for i in range(shape.n_layer):
        tensor(f"blk.{i}.attn_norm.weight", e)
        tensor(f"blk.{i}.attn_q.weight", e, shape.n_head * hd)
        tensor(f"blk.{i}.attn_k.weight", e, shape.n_head_kv * hd)
        tensor(f"blk.{i}.attn_v.weight", e, shape.n_head_kv * hd)
        tensor(f"blk.{i}.attn_output.weight", shape.n_head * hd, e)
        if kind != "dense":
            tensor(f"blk.{i}.attn_q_norm.weight", hd)
            tensor(f"blk.{i}.attn_k_norm.weight", hd)
        tensor(f"blk.{i}.ffn_norm.weight", e)
        if kind == "moe":
            tensor(f"blk.{i}.ffn_gate_inp.weight", e, shape.n_expert)
            tensor(f"blk.{i}.ffn_gate_exps.weight", e, shape.n_ff_exp, shape.n_expert)
            tensor(f"blk.{i}.ffn_down_exps.weight", shape.n_ff_exp, e, shape.n_expert)
            tensor(f"blk.{i}.ffn_up_exps.weight", e, shape.n_ff_exp, shape.n_expert)
        else:
            tensor(f"blk.{i}.ffn_gate.weight", e, shape.n_ff)
            tensor(f"blk.{i}.ffn_up.weight", e, shape.n_ff)
            tensor(f"blk.{i}.ffn_down.weight", shape.n_ff, e)
        if kind == "swa":
            tensor(f"blk.{i}.post_attention_norm.weight", e)
            tensor(f"blk.{i}.post_ffw_norm.weight", e)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        parts = sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))
        return parts[0]
    return path


def write_tiny_moe(path: Path, seed: int = 0) -> Path:
    return write_tiny(path, "moe", seed=seed)


def write_step35_metadata(
    path: Path, layers: int = 48, full_attention: tuple[int, ...] | None = None
) -> Path:
    """A GGUF that carries Step-3.5-Flash's metadata the way upstream's step35 loader reads it (per-layer
    arrays, a sliding_window_pattern array, 3 MTP layers on top of 45) and a single small tensor: enough
    to be read, registered and planned, not to be run. full_attention: the layers that attend to the
    whole context, written out by the caller."""
    import gguf

    arch = "step35"
    full = full_attention if full_attention is not None else (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44)
    swa = [il not in full for il in range(layers)]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(f"{arch}.block_count", layers)
    writer.add_uint32(f"{arch}.nextn_predict_layers", 3)
    writer.add_uint32(f"{arch}.context_length", 262144)
    writer.add_uint32(f"{arch}.embedding_length", 4096)
    writer.add_array(f"{arch}.attention.head_count", [64 if not s else 96 for s in swa])
    writer.add_array(f"{arch}.attention.head_count_kv", [8] * layers)
    writer.add_uint32(f"{arch}.attention.key_length", 128)
    writer.add_uint32(f"{arch}.attention.value_length", 128)
    writer.add_uint32(f"{arch}.attention.sliding_window", 512)
    writer.add_array(f"{arch}.attention.sliding_window_pattern", swa)
    writer.add_uint32(f"{arch}.expert_count", 288)
    writer.add_uint32(f"{arch}.expert_used_count", 8)
    writer.add_array(f"{arch}.expert_feed_forward_length", [1280] * layers)
    writer.add_array(f"{arch}.feed_forward_length", [11264] * 3 + [0] * (layers - 3))
    writer.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(128896)])
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


Step35Layout = Literal["combined", "trunk-only", "mtp-only", "no-heads"]


def write_tiny_step35(
    path: Path,
    layout: Step35Layout = "combined",
    heads: int = 2,
    vocab: str = "default",
    n_layer: int = 2,
    split_max_tensors: int = 0,
    image_tokens: bool = False,
    chat_template: str | None = None,
) -> Path:
    """A runnable step35 model with MTP ("nextn") blocks, written from the tensor names and shapes
    upstream's loader reads: the trunk with its heads (combined), the trunk with the heads declared but
    absent (trunk-only), the heads alone (mtp-only, the sidecar upstream's converter writes as
    mtp-<name>.gguf), or a step35 without heads. Every tensor's random values come from its name, so the
    same trunk and heads are written whichever the layout: a trunk-only file plus its sidecar is the
    combined file split in two. vocab="other" gives a smaller vocabulary (a sidecar of another model).
    split_max_tensors: written in parts as write_tiny does (the first part's path is returned).

    image_tokens: the control tokens a step3vl projector's images are framed with (mtmd.cpp looks them up
    by text: <im_start>, <im_end>, <patch_start>, <patch_end>, <patch_newline>), appended to the
    vocabulary, so the tiny model can be served with write_tiny_step3vl_projector.

    chat_template: a Jinja chat template the file carries (tokenizer.chat_template)."""
    import zlib

    import gguf

    arch = "step35"
    e, n_head, n_kv, hd, n_exp, used, ff_exp, ff_sh = 64, 4, 2, 16, 4, 2, 32, 32
    declared = 0 if layout == "no-heads" else heads
    n_all = n_layer + declared
    # Layer 0 attends to the whole context, the others slide (heads included), as in Step-3.5-Flash.
    swa = [il != 0 for il in range(n_all)]
    tokens, scores, types = _vocab(10 if vocab == "default" else 4)
    if image_tokens:
        tokens += list(STEP3VL_IMAGE_TOKENS)
        scores += [0.0] * len(STEP3VL_IMAGE_TOKENS)
        types += [3] * len(STEP3VL_IMAGE_TOKENS)
    writer = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    writer.add_name(f"tiny-step35-{layout}")
    writer.add_uint32(f"{arch}.context_length", 8192)
    writer.add_uint32(f"{arch}.embedding_length", e)
    writer.add_uint32(f"{arch}.block_count", n_all)
    if declared:
        writer.add_uint32(f"{arch}.nextn_predict_layers", declared)
    writer.add_array(f"{arch}.feed_forward_length", [ff_exp] * n_all)
    writer.add_array(f"{arch}.attention.head_count", [n_head] * n_all)
    writer.add_array(f"{arch}.attention.head_count_kv", [n_kv] * n_all)
    writer.add_uint32(f"{arch}.attention.key_length", hd)
    writer.add_uint32(f"{arch}.attention.value_length", hd)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    writer.add_uint32(f"{arch}.attention.sliding_window", 128)
    writer.add_array(f"{arch}.attention.sliding_window_pattern", swa)
    writer.add_float32(f"{arch}.rope.freq_base", 10000.0)
    writer.add_uint32(f"{arch}.expert_count", n_exp)
    writer.add_uint32(f"{arch}.expert_used_count", used)
    writer.add_array(f"{arch}.expert_feed_forward_length", [ff_exp] * n_all)
    writer.add_uint32(f"{arch}.expert_shared_feed_forward_length", ff_sh)
    _add_vocab(writer, tokens, scores, types)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def tensor(name: str, *ne: int, scale: float = 0.02) -> None:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        writer.add_tensor(name, (rng.standard_normal(tuple(reversed(ne))) * scale).astype(np.float32))

    def block(il: int) -> None:
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{il}.{norm}.weight", np.ones(e, dtype=np.float32))
        for norm in ("attn_q_norm", "attn_k_norm"):
            writer.add_tensor(f"blk.{il}.{norm}.weight", np.ones(hd, dtype=np.float32))
        tensor(f"blk.{il}.attn_q.weight", e, n_head * hd)
        tensor(f"blk.{il}.attn_k.weight", e, n_kv * hd)
        tensor(f"blk.{il}.attn_v.weight", e, n_kv * hd)
        tensor(f"blk.{il}.attn_output.weight", n_head * hd, e)
        tensor(f"blk.{il}.ffn_gate_inp.weight", e, n_exp)
        tensor(f"blk.{il}.ffn_gate_exps.weight", e, ff_exp, n_exp)
        tensor(f"blk.{il}.ffn_down_exps.weight", ff_exp, e, n_exp)
        tensor(f"blk.{il}.ffn_up_exps.weight", e, ff_exp, n_exp)
        writer.add_tensor(f"blk.{il}.exp_probs_b.bias", np.zeros(n_exp, dtype=np.float32))
        tensor(f"blk.{il}.ffn_gate_shexp.weight", e, ff_sh)
        tensor(f"blk.{il}.ffn_up_shexp.weight", e, ff_sh)
        tensor(f"blk.{il}.ffn_down_shexp.weight", ff_sh, e)

    # The output projection is the embedding itself and the blocks add little to the residual stream, so
    # the model repeats its last token with a wide margin (random weights of the usual size put greedy
    # choices on near-ties, seen: top two log-probabilities -2.5051 and -2.5115, where batched draft
    # verification may round the other way). Each MTP head passes its token's embedding through, so it
    # drafts what the trunk will say: drafts are accepted.
    embedding = np.random.default_rng(zlib.crc32(b"token_embd")).standard_normal((len(tokens), e))
    writer.add_tensor("token_embd.weight", embedding.astype(np.float32))
    writer.add_tensor("output_norm.weight", np.ones(e, dtype=np.float32))
    if layout != "mtp-only":
        writer.add_tensor("output.weight", embedding.astype(np.float32))
        for il in range(n_layer):
            block(il)
    if layout in ("combined", "mtp-only"):
        for il in range(n_layer, n_all):
            block(il)
            # numpy (out, in): the first half of the input is the normed token embedding.
            passthrough = np.zeros((e, 2 * e), dtype=np.float32)
            passthrough[:, :e] = np.eye(e, dtype=np.float32)
            writer.add_tensor(f"blk.{il}.nextn.eh_proj.weight", passthrough)
            # Each head's own LM head (a sidecar has no output.weight to fall back on).
            writer.add_tensor(f"blk.{il}.nextn.shared_head_head.weight", embedding.astype(np.float32))
            for norm in ("enorm", "hnorm", "shared_head_norm"):
                writer.add_tensor(f"blk.{il}.nextn.{norm}.weight", np.ones(e, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        return sorted(path.parent.glob(f"{path.stem}-*-of-*.gguf"))[0]
    return path


STEP3VL_IMAGE_TOKENS = ("<im_start>", "<im_end>", "<patch_start>", "<patch_end>", "<patch_newline>")


@dataclass(frozen=True)
class VisionShape:
    """A tiny step3vl encoder: 8 x 8 patches of 14 pixels (an image of 112), width 32, two layers. The
    two stride-2 downsamplers leave 2 x 2 = 4 image tokens."""

    image_size: int = 112
    patch_size: int = 14
    n_embd: int = 32
    n_head: int = 2
    n_ff: int = 64
    n_layer: int = 2


def write_tiny_step3vl_projector(
    path: Path, n_embd_out: int = 64, shape: VisionShape = VisionShape(), arch: str = "clip"
) -> Path:
    """A vision projector of the pinned step3vl type with random weights, written from what clip.cpp's
    loader reads at the pin (load_hparams: the clip.vision.* keys, projector.scale_factor 4 for the two
    stride-2 downsamplers; load_tensors and models/step3vl.cpp: the patch convolution, learned position
    embeddings of (image_size / patch_size)^2 positions, pre-norm, layers with fused q/k/v and layer
    scales, the downsamplers mm.0 (d -> 2d) and mm.1 (2d -> 4d), 3 x 3 convolutions with a bias per
    channel, and mm.model.fc (4d -> n_embd_out)). n_embd_out is the embedding size it writes: the tiny
    step35's 64 to match it. arch: another general.architecture makes a file that is not a projector."""
    import zlib

    import gguf

    d, f = shape.n_embd, shape.n_ff
    positions = (shape.image_size // shape.patch_size) ** 2
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name("tiny-step3vl-projector")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_string("clip.projector_type", "step3vl")
    writer.add_uint32("clip.vision.projection_dim", n_embd_out)
    writer.add_uint32("clip.vision.image_size", shape.image_size)
    writer.add_uint32("clip.vision.patch_size", shape.patch_size)
    writer.add_uint32("clip.vision.embedding_length", d)
    writer.add_uint32("clip.vision.feed_forward_length", f)
    writer.add_uint32("clip.vision.block_count", shape.n_layer)
    writer.add_uint32("clip.vision.attention.head_count", shape.n_head)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    writer.add_uint32("clip.vision.projector.scale_factor", 4)

    def tensor(name: str, *ne: int, scale: float = 0.02) -> None:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        writer.add_tensor(name, (rng.standard_normal(tuple(reversed(ne))) * scale).astype(np.float32))

    def ones(name: str, n: int) -> None:
        writer.add_tensor(name, np.ones(n, dtype=np.float32))

    tensor("v.patch_embd.weight", shape.patch_size, shape.patch_size, 3, d)
    tensor("v.position_embd.weight", d, positions)
    ones("v.pre_ln.weight", d)
    tensor("v.pre_ln.bias", d)
    for il in range(shape.n_layer):
        for norm in ("ln1", "ln2"):
            ones(f"v.blk.{il}.{norm}.weight", d)
            tensor(f"v.blk.{il}.{norm}.bias", d)
        tensor(f"v.blk.{il}.attn_qkv.weight", d, 3 * d)
        tensor(f"v.blk.{il}.attn_qkv.bias", 3 * d)
        tensor(f"v.blk.{il}.attn_out.weight", d, d)
        tensor(f"v.blk.{il}.attn_out.bias", d)
        tensor(f"v.blk.{il}.ffn_up.weight", d, f)
        tensor(f"v.blk.{il}.ffn_up.bias", f)
        tensor(f"v.blk.{il}.ffn_down.weight", f, d)
        tensor(f"v.blk.{il}.ffn_down.bias", d)
        ones(f"v.blk.{il}.ls1.weight", d)
        ones(f"v.blk.{il}.ls2.weight", d)
    tensor("mm.0.weight", 3, 3, d, 2 * d)
    tensor("mm.0.bias", 2 * d)
    tensor("mm.1.weight", 3, 3, 2 * d, 4 * d)
    tensor("mm.1.bias", 4 * d)
    tensor("mm.model.fc.weight", 4 * d, n_embd_out)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_clip_gguf(path: Path, fields: dict[str, str | bool], tensors: dict[str, tuple[int, ...]]) -> Path:
    """A 'clip' GGUF with the given metadata and zero f32 tensors: for projectors that are not whole ones."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "clip")
    for key, value in fields.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        else:
            writer.add_string(key, value)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
