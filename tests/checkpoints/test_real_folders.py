"""Real published folders (tests/checkpoints/conftest.py) load the way a user expects: with their own tokenizer
and chat template, token-identical prompts to transformers' rendering of the same files, and each quirk of the
real files handled (issue #12, items 1-8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from PIL import Image

import dvlm
from tests.checkpoints.conftest import (TEXT, build_multimodal_folder, build_text_folder, chat_ids,
                                        llava_tokenizer_image_token, reference_tokenizer, run_cli)

FAST = ["gen_length=8", "steps=4", "block_length=8"]
SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual content that the "
          "user provides, and assist the user with a variety of tasks using natural language.")
CONVERSATIONS = ["What is 2+2?", [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "  Name a colour.  "}]]


def load(folder, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dvlm.load_pretrained(folder, **kwargs)


def prompt_ids(model, conversation, **kwargs) -> list[int]:
    return model.prompt_batch(conversation, **kwargs).input_ids[0].tolist()


def dvlm_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dvlm", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


# -- items 2, 3, 4, 5: text-only folders carry their tokenizer and render its own chat template -------------------


@pytest.mark.parametrize("layout", list(TEXT))
def test_text_folder_loads_with_its_tokenizer_and_chat_template(real_folder, layout):
    model = load(real_folder(layout))
    assert model.tokenizer is not None and model.spec.chat_template.kind == "tokenizer"
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # item 7: stored dtype, no fp32 blow-up
    out = dvlm.generate(model, prompt="What is 2+2?", sampler="llada-reference", overrides=FAST)
    assert out.token_ids.shape == (1, 8) and isinstance(out.text[0], str)


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["string", "messages"])
@pytest.mark.parametrize("layout", list(TEXT))
def test_prompt_ids_equal_transformers_apply_chat_template(real_folder, layout, conversation):
    folder = real_folder(layout)
    messages = [{"role": "user", "content": conversation}] if isinstance(conversation, str) else conversation
    expected = chat_ids(reference_tokenizer(folder), messages)
    assert prompt_ids(load(folder), conversation) == expected
    if layout == "dream":  # Dream's own template adds its default system turn (item 4)
        assert "You are a helpful assistant." in reference_tokenizer(folder).decode(
            chat_ids(reference_tokenizer(folder), [{"role": "user", "content": "hi"}]))


def test_llada_instruct_prompt_has_no_vision_system_prompt(real_folder):
    model = load(real_folder("llada"))
    text = model.tokenizer.decode(prompt_ids(model, "What is 2+2?"))
    assert text.startswith("<|startoftext|><|start_header_id|>user") and "vision" not in text


@pytest.mark.parametrize("layout", list(TEXT))
def test_raw_skips_the_template(real_folder, layout):
    model = load(real_folder(layout))
    assert prompt_ids(model, "What is 2+2?", raw=True) == reference_tokenizer(real_folder(layout)).encode(
        "What is 2+2?", add_special_tokens=False)


def test_dream_tokenizer_is_built_without_remote_code(real_folder):
    folder = real_folder("dream")
    assert not (folder / "tokenizer.json").exists() and not list(folder.glob("*.py"))
    model = load(folder)
    reference = reference_tokenizer(folder)
    text = "Ünïcode  spaces\n\nand 12345 <|im_start|> tokens <|mask|>"
    assert model.tokenizer.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)
    assert model.backbone.special_tokens.mask_id == 151666 and model.backbone.special_tokens.eot_id == 151645


# -- item 1: LLaDA-V's bos 128000 ------------------------------------------------------------------------------


def test_out_of_vocabulary_bos_falls_back_to_generation_config_with_a_warning(real_folder):
    folder = real_folder("llada-llama")
    assert json.loads((folder / "config.json").read_text())["bos_token_id"] == 128000
    with pytest.warns(UserWarning, match="128000 is outside the 126464-token vocabulary"):
        model = dvlm.load_pretrained(folder)
    assert model.backbone.special_tokens.bos_id == 126080
    result = dvlm_cli("generate", "--checkpoint", folder, "--prompt", "Hi", "--set", "gen_length=8", "--set",
                      "steps=4", "--set", "block_length=8", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert len(json.loads(result.stdout)["token_ids"][0]) == 8


def test_disagreeing_sources_warn_and_config_wins(tmp_path):
    folder = build_text_folder(tmp_path / "dream", "dream")
    with pytest.warns(UserWarning, match="bos_token_id: using config.json bos_token_id = 151643; other sources "
                                         r"disagree \(tokenizer_config.json <\|beginoftext\|> = 151665\)"):
        model = dvlm.load_pretrained(folder)
    assert model.backbone.special_tokens.bos_id == 151643


# -- item 3: the CLI feeds the templated prompt ------------------------------------------------------------------


@pytest.mark.parametrize("flag", [[], ["--raw"]])
def test_cli_generate_uses_the_chat_template_unless_raw(real_folder, flag):
    folder = real_folder("llada")
    result = run_cli("generate", "--checkpoint", folder, "--prompt", "What is 2+2?", "--sampler", "llada-reference",
                     "--set", "gen_length=8", "--set", "steps=4", "--set", "block_length=8", "--json", *flag)
    assert result.exit_code == 0, result.output
    model = load(folder)
    expected = dvlm.generate(model, prompt="What is 2+2?", sampler="llada-reference", overrides=FAST, raw=bool(flag))
    assert json.loads(result.stdout)["token_ids"] == expected.token_ids.tolist()


@pytest.mark.parametrize("preset", ["llada-reference", "lavida", "lavida-coco", "fast-dllm", "llada-v", "dream"])
def test_every_preset_runs_on_a_real_folder(real_folder, preset):
    model = load(real_folder("dream" if preset == "dream" else "llada"))
    budget = ["block_length=8"] if preset == "fast-dllm" else ["steps=4"]  # parallel decoding has no step count
    out = dvlm.generate(model, prompt="Hi", sampler=preset, overrides=["gen_length=8", *budget])
    assert out.token_ids.shape == (1, 8)


# -- multimodal: LLaVA conversation formatting, items 5, 6, 8 -----------------------------------------------------


def image(width=40, height=30):
    return Image.new("RGB", (width, height), (200, 40, 90))


@pytest.mark.parametrize("layout", ["lavida-llada", "llada-v", "lavida-dream"])
def test_multimodal_prompt_ids_equal_llava_formatting(real_folder, layout):
    folder = real_folder(layout)
    model = load(folder)
    assert model.spec.text_after_image == "llava_inference"
    question = "What is it?"
    tokenizer = reference_tokenizer(folder)
    text = tokenizer.apply_chat_template([{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": "<image>\n" + question}],
                                         add_generation_prompt=True, tokenize=False)
    reference = llava_tokenizer_image_token(text, tokenizer)
    picture = image()
    slots = model.count_image_tokens(picture)
    pad = model.special_tokens.pad_id
    expected = [t for r in reference for t in ([pad] * slots if r == -200 else [r])]
    assert prompt_ids(model, question, images=[picture]) == expected
    newline = tokenizer.encode("\n", add_special_tokens=False)
    after = reference[reference.index(-200) + 1:]
    if layout == "lavida-dream":  # no BOS in ChatML: LLaVA keeps the newline
        assert after[: len(newline)] == newline
    else:  # item 8: the reference inference drops the \n after <image>
        assert after[: len(newline)] != newline
    kept = load(folder, text_after_image="keep")
    keep_ids = prompt_ids(kept, question, images=[picture])
    start = keep_ids.index(pad) + slots
    assert keep_ids[start: start + len(newline)] == newline
    out = dvlm.generate(model, prompt=question, images=[picture], sampler="lavida", overrides=FAST)
    assert out.token_ids.shape == (1, 8)


def test_both_pinpoint_forms_give_the_same_model(tmp_path):
    strings = load(build_multimodal_folder(tmp_path / "a", "llada-v"))
    pairs_folder = build_multimodal_folder(tmp_path / "b", "llada-v", pinpoints_as_pairs=True)
    assert isinstance(json.loads((pairs_folder / "config.json").read_text())["image_grid_pinpoints"], list)
    pairs = load(pairs_folder)
    assert pairs.spec.image_layout == strings.spec.image_layout
    assert (pairs.spec.image_layout.max_grid, pairs.spec.image_layout.max_views) == (6, 4)


# -- item 7: convert keeps tokenizer files and dtype --------------------------------------------------------------


@pytest.mark.parametrize("layout", ["llada", "dream", "lavida-dream"])
def test_convert_keeps_tokenizer_dtype_logits_and_tokens(real_folder, tmp_path, layout):
    source = real_folder(layout)
    result = run_cli("convert", source, tmp_path / "out")
    assert result.exit_code == 0, result.output
    original, converted = load(source), load(tmp_path / "out")
    assert {p.dtype for p in converted.parameters()} == {torch.bfloat16}
    assert converted.spec.chat_template == original.spec.chat_template
    images = [image()] if original.vision is not None else None
    assert prompt_ids(converted, "What is it?", images=images) == prompt_ids(original, "What is it?", images=images)
    ids = torch.randint(0, 1000, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(converted(ids), original(ids))
    kwargs = dict(prompt="What is it?", images=images, sampler="llada-reference", overrides=FAST)
    assert torch.equal(dvlm.generate(converted, **kwargs).token_ids, dvlm.generate(original, **kwargs).token_ids)


def test_dtype_override_on_load_and_in_the_cli(real_folder):
    model = load(real_folder("llada"), dtype="float32")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    result = run_cli("generate", "--checkpoint", real_folder("llada"), "--prompt", "Hi", "--dtype", "float16",
                     "--set", "gen_length=8", "--set", "steps=4", "--set", "block_length=8", "--json")
    assert result.exit_code == 0, result.output
    bad = dvlm_cli("generate", "--checkpoint", real_folder("llada"), "--prompt", "Hi", "--dtype", "float8")
    assert bad.returncode == 1 and "unsupported dtype 'float8'" in bad.stderr and "Traceback" not in bad.stderr
