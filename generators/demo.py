"""Offline demo inputs: try `build-vg` and `build-nac` with no download and no GPU.

``vgrc demo --out DIR`` writes

- ``DIR/visual_genome/``: a hand-made Visual Genome folder in the real public format
  (``attributes.json``, ``image_data.json``, small JPEGs in ``VG_100K/`` and ``VG_100K_2/``)
  with every quirk the reader repairs (see :func:`vg_records`);
- ``DIR/tiny-flux/``: a tiny random FLUX pipeline in diffusers' format (the diffusers test
  suite's dummy components);
- ``DIR/tiny-qwen/``: a tiny random Qwen2.5-VL-Instruct (model + processor) whose answers
  "Yes"/"No" are single tokens, for the NAC judge and ``--relevance vlm``;
- ``DIR/tiny-llm/``: a tiny random instruct causal LM, for ``--object-parser llm``.

They load through the same ``from_pretrained`` paths as real checkpoints (DESIGN.md §3).
Their numbers mean nothing: random weights. The test suite builds its fixtures here too.

The Visual Genome folder, as written:
  A hand-made Visual Genome folder in the real public format, with every quirk.

  attributes.json (v1.2/v1.4 layout) holds 14 images (13 current-format records, 1 v1.0):

  - "car": red-pole synonyms in exactly 10 distinct images (1-10: "red", "reddish", "Red ",
    "red.", "  red  car-ish"...), green-pole in exactly 10 (1-10), so it qualifies for
    red/green at --min-images 10.
  - "bus": white in 10 images (1-10), black in only 9 (1-9): qualifies for white/black at
    --min-images 9, not 10.
  - "dog": white in 11 (with "whitish" on image 11), black in 10; image 12 carries both
    poles ("white", "black"): it is a positive in both directions, never a negative.
  - quirks: an object without "attributes", one with "name" (string), a v1.0 record
    ("id", "object_names"), mixed case, doubled/surrounding spaces, trailing '.', empty
    strings, a duplicate attribute, a non-dict object, a record without an id.

  image_data.json places images 2 and 4 in VG_100K_2.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_demo", "build_tiny_flux", "build_tiny_qwen", "build_tiny_causal_lm", "vg_records", "write_vg"]


PARTS = ("visual_genome", "tiny-flux", "tiny-qwen", "tiny-llm")


def check_demo_folder(out: str | Path) -> None:
    """``out`` is new, empty, or holds demo parts only (a rerun completes it). Writes nothing."""
    from vgrc.evaluators.ownership import check_parts_folder

    check_parts_folder(out, lambda name: name in PARTS or _partial(name), "demo")


def _partial(name: str) -> bool:
    return name.startswith(".") and name.split(".partial-")[0].lstrip(".") in PARTS


def write_demo(out: str | Path, *, on_progress=None) -> dict[str, Path]:
    """Write every demo input under ``out``; return ``{name: path}``. Each part is built in
    a hidden temporary folder and renamed into place when complete, so an interrupted run
    leaves no half-built model that looks whole; a rerun builds only the missing parts."""
    import os
    import shutil

    out = Path(out)
    check_demo_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    builders = {"visual_genome": lambda p: write_vg(p, images=True), "tiny-flux": build_tiny_flux,
                "tiny-qwen": build_tiny_qwen, "tiny-llm": build_tiny_causal_lm}
    for stale in out.iterdir():  # parts an interrupted run was building
        if stale.is_dir() and _partial(stale.name):
            shutil.rmtree(stale)
    made = {}
    for n, name in enumerate(PARTS, 1):
        path = out / name
        if not path.is_dir():
            tmp = out / f".{name}.partial-{os.getpid()}"
            builders[name](tmp)
            os.replace(tmp, path)
        made[name] = path
        if on_progress:
            on_progress(n, len(PARTS))
    return made


def build_tiny_flux(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
        num_hidden_layers=2, pad_token_id=1, vocab_size=1000, hidden_act="gelu", projection_dim=32,
    ))
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                             relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    vocab = {c: i for i, c in enumerate(sorted(set(bytes_to_unicode().values())))}
    for extra in ("<|startoftext|>", "<|endoftext|>"):
        vocab[extra] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in "▁abcdefghijklmnopqrstuvwxyz,.'"]
    tokenizer_2 = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1, latent_channels=1,
                        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                        tokenizer=tokenizer, tokenizer_2=tokenizer_2, transformer=transformer, vae=vae)
    pipe.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_qwen(folder: Path) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2Tokenizer, Qwen2VLImageProcessor
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(sorted(set(bytes_to_unicode().values())))}
    # " true" / " false" as real BPE tokens (Ġ is the byte-level space), reached by merges
    # under Qwen2's pre-tokenizer as in the real vocabulary, not as added tokens that would
    # match anywhere: the judge must read them where the model writes them
    merges = []
    for word in ("Ġtrue", "Ġfalse"):
        for end in range(2, len(word) + 1):
            merges.append((word[:end - 1], word[end - 1]))
            vocab.setdefault(word[:end], len(vocab))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    for s in specials:
        vocab[s] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         padding_side="left", model_max_length=4096)
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    tok.add_tokens(["Yes", "No"])
    kw = {}
    try:
        from transformers import Qwen2VLVideoProcessor

        kw["video_processor"] = Qwen2VLVideoProcessor()
    except ImportError:
        pass
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE, **kw)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}, max_position_embeddings=4096,
                         bos_token_id=None, eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=37, num_heads=4, out_hidden_size=32, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=28, fullatt_block_indexes=[0], in_chans=3),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_causal_lm(folder: Path) -> Path:
    """A tiny random Qwen2 instruct-style causal LM with a chat template (for --object-parser llm)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(sorted(set(bytes_to_unicode().values())))}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    for s in specials:
        vocab[s] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=2048)
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    tok.chat_template = CHAT_TEMPLATE
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=None, eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"])
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _obj(i, names, attrs=None, *, key="names"):
    o = {"object_id": i, "x": 10, "y": 20, "w": 30, "h": 40, key: names}
    if attrs is not None:
        o["attributes"] = attrs
    return o


def vg_records() -> list:
    recs = []
    red = ["red", "reddish", "Red ", "red.", "RED", "red", "reddish", "red", "  red", "red"]
    for i in range(1, 14):
        objs = []
        if i <= 10:
            objs.append(_obj(i * 100 + 1, ["car"], [red[i - 1], "green" if i % 2 else "greenish", ""]))
            objs.append(_obj(i * 100 + 2, ["Bus"], ["white"] + (["black"] if i <= 9 else [])))
        if i <= 10 or i == 11:
            objs.append(_obj(i * 100 + 3, ["dog"], ["whitish" if i == 11 else "white  "]))
        if i <= 10:
            objs.append(_obj(i * 100 + 4, ["dog"], ["black", "black"]))  # duplicate attribute
        if i == 12:
            objs.append(_obj(1201, ["dog"], ["white", "black"]))
        if i == 13:
            objs.append(_obj(1301, ["tree"]))  # no attributes key
            objs.append(_obj(1302, "bench", ["Wooden."], key="name"))  # name as a string
            objs.append("not an object")
            objs.append(_obj(1303, [""], ["tall"]))  # no usable name
        recs.append({"image_id": i, "attributes": objs})
    recs.append({"id": 14, "attributes": [_obj(1401, ["Sky"], ["Blue", "clear"], key="object_names")]})  # v1.0 keys
    recs.append({"attributes": []})  # no image id: dropped
    return recs


def write_vg(folder: Path, *, image_data: bool = True, images: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attributes.json").write_text(json.dumps(vg_records()))
    if image_data:
        data = [{"image_id": i, "url": f"https://example.org/rak248/{'VG_100K_2' if i in (2, 4) else 'VG_100K'}/{i}.jpg", "width": 800, "height": 600} for i in range(1, 15)]
        (folder / "image_data.json").write_text(json.dumps(data))
    if images:
        from PIL import Image

        for i in range(1, 14):  # image 14 is missing on disk
            sub = folder / ("VG_100K_2" if i in (2, 4) else "VG_100K")
            sub.mkdir(exist_ok=True)
            Image.new("RGB", (24, 16), ((40 * i) % 256, (90 * i) % 256, (150 * i) % 256)).save(sub / f"{i}.jpg", format="JPEG")
    return folder
