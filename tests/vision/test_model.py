"""The multimodal model end to end: build from a spec, splice image features at the placeholders, generate
(batch >= 1, several images per prompt), swap encoders by changing one spec field, and the prompt errors."""

from __future__ import annotations

import pytest
import torch

import dvlm
from dvlm.core.errors import ImageError, PromptError, SpecError
from dvlm.core.tokenizer import encode
from tests.vision.conftest import ENCODERS, sharpen

FAST = ["gen_length=8", "steps=4"]


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_swapping_the_encoder_is_one_spec_field(vlm_spec, image, encoder):
    base, swapped = vlm_spec(encoder="siglip"), vlm_spec(encoder=encoder)
    assert {k for k in base if base[k] != swapped[k] and k != "tokenizer"} <= {"vision_encoder"}
    torch.manual_seed(0)
    model = dvlm.build(swapped)
    out = dvlm.generate(model, prompt="What is in the picture?", images=[image(), image(30, 70)],
                        sampler="lavida", overrides=FAST)
    assert out.token_ids.shape == (1, 8) and out.nfe >= 1 and isinstance(out.text[0], str)


def test_image_features_are_spliced_at_the_placeholders(vlm_spec, image):
    torch.manual_seed(0)
    model = dvlm.build(vlm_spec(chat_template=None))
    pictures = [image(), image(20, 60)]
    batch = model.prompt_batch("A <image> and B <image>!", pictures)
    with torch.no_grad():
        features = model.encode_images(model.load_images(pictures))
    pieces = [encode(model.tokenizer, "A "), features[0], encode(model.tokenizer, " and B "), features[1],
              encode(model.tokenizer, "!")]
    position = 0
    embeds, ids = batch.inputs_embeds[0], batch.input_ids[0]
    for piece in pieces:
        if isinstance(piece, list):
            n = len(piece)
            assert ids[position:position + n].tolist() == piece
            torch.testing.assert_close(embeds[position:position + n], model.backbone.embed(torch.tensor([piece]))[0])
        else:
            n = len(piece)
            torch.testing.assert_close(embeds[position:position + n], piece)
            assert (ids[position:position + n] == model.special_tokens.pad_id).all()
        position += n
    assert position == ids.shape[0] and batch.attention_mask is None
    assert features[0].shape[0] == model.count_image_tokens(model.load_images(pictures)[0])


def test_images_are_encoded_once_per_batch(vlm_spec, image):
    model = dvlm.build(vlm_spec())
    calls = []
    model.vision.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    dvlm.generate(model, prompt=["one <image>", "two <image> <image>"], images=[[image()], [image(), image(9, 9)]],
                  sampler="lavida", overrides=FAST)
    views = sum(model.image_layout.num_views(size, 28) for size in [(50, 30), (50, 30), (9, 9)])
    assert calls == [views]


@pytest.mark.parametrize("backbone,sampler", [("llada", "lavida"), ("llada", "llada-reference"), ("dream", "dream")])
def test_ragged_batch_gives_the_same_tokens_as_one_by_one(vlm_spec, image, backbone, sampler):
    model = sharpen(dvlm.build(vlm_spec(backbone=backbone)))
    prompts = ["Describe the image in detail please.", "Compare <image> with <image>", "No image here."]
    pictures = [[image()], [image(40, 40), image(30, 80, (0, 0, 250))], []]
    together = dvlm.generate(model, prompt=prompts, images=pictures, sampler=sampler, overrides=FAST)
    assert len({tuple(row) for row in together.token_ids.tolist()}) == 3  # the rows really differ
    for row, (prompt, row_images) in enumerate(zip(prompts, pictures)):
        alone = dvlm.generate(model, prompt=prompt, images=row_images, sampler=sampler, overrides=FAST)
        assert together.token_ids[row].tolist() == alone.token_ids[0].tolist()


def test_the_answer_depends_on_the_image(vlm_spec, image):
    model = sharpen(dvlm.build(vlm_spec()))
    answers = {tuple(dvlm.generate(model, prompt="Colour?", images=[image(colour=colour)], sampler="lavida",
                                   overrides=FAST).token_ids[0].tolist())
               for colour in [(250, 0, 0), (0, 0, 250), (0, 250, 0)]}
    assert len(answers) > 1


def test_text_only_model_takes_prompts_but_not_images(vlm_spec, image):
    spec = vlm_spec()
    for part in ("vision_encoder", "projector", "image_layout"):
        spec.pop(part)
    model = dvlm.build(spec)
    assert model.vision is None and model.image_newline is None
    assert dvlm.generate(model, prompt="Hello", sampler="lavida", overrides=FAST).token_ids.shape == (1, 8)
    with pytest.raises(PromptError, match="no vision encoder"):
        dvlm.generate(model, prompt="Hello <image>", images=[image()], sampler="lavida", overrides=FAST)


def test_a_vision_encoder_needs_its_projector_and_layout(vlm_spec):
    spec = vlm_spec()
    spec.pop("image_layout")
    with pytest.raises(SpecError, match="needs image_layout"):
        dvlm.build(spec)


@pytest.mark.parametrize("prompt,count,message", [
    ("two <image> <image> but one image", 1, "2 <image> placeholder\\(s\\) but 1 image"),
    ("one <image> placeholder and no image", 0, "1 <image> placeholder\\(s\\) but 0 image"),
])
def test_placeholder_count_must_match_the_images(vlm_spec, image, prompt, count, message):
    model = dvlm.build(vlm_spec())
    with pytest.raises(PromptError, match=message):
        model.prompt_batch(prompt, [image()] * count)


def test_missing_placeholders_are_put_before_the_question(vlm_spec, image):
    model = dvlm.build(vlm_spec())
    explicit = model.prompt_batch("<image> <image>\nWhat?", [image(), image()])
    implicit = model.prompt_batch("What?", [image(), image()])
    assert torch.equal(explicit.input_ids, implicit.input_ids)
    torch.testing.assert_close(explicit.inputs_embeds, implicit.inputs_embeds)


def test_batch_images_must_be_one_list_per_prompt(vlm_spec, image):
    model = dvlm.build(vlm_spec())
    with pytest.raises(PromptError, match="one per prompt"):
        model.prompt_batch(["a <image>", "b"], [image(), image()])


def test_prompt_longer_than_the_context_is_an_error_unless_truncation_is_asked(vlm_spec, image):
    backbone = vlm_spec()["backbone"] | {"max_sequence_length": 64}
    model = dvlm.build({**vlm_spec(), "backbone": backbone})
    # 50x30 with anyres on 28-px views (2x2 tokens pooled to 1x1): a few image tokens; the text is long
    long_prompt = "word " * 20
    with pytest.raises(PromptError, match="exceeds the backbone's context of 64 tokens"):
        dvlm.generate(model, prompt=long_prompt, images=[image()], sampler="lavida", overrides=FAST)
    for side in ("left", "right"):
        truncated = dvlm.build({**vlm_spec(), "backbone": backbone, "truncation": side})
        batch = truncated.prompt_batch(long_prompt, [image()], gen_length=8)
        assert batch.input_ids.shape[1] == 64 - 8
        full = truncated.prompt_batch(long_prompt, [image()], gen_length=0)
        kept = full.input_ids[0, : 64 - 8] if side == "right" else full.input_ids[0, -(64 - 8):]
        assert torch.equal(batch.input_ids[0], kept)
    with pytest.raises(PromptError, match="no room for a prompt"):
        model.prompt_batch("hi", [], gen_length=64)


def test_bad_image_files_surface_as_one_clear_error(vlm_spec, tmp_path):
    model = dvlm.build(vlm_spec())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError, match="broken.png"):
        dvlm.generate(model, prompt="<image>", images=[broken], sampler="lavida", overrides=FAST)
    tiny = dvlm.build({**vlm_spec(), "max_image_pixels": 100})
    from PIL import Image

    with pytest.raises(ImageError, match="above the limit of 100"):
        dvlm.generate(tiny, prompt="<image>", images=[Image.new("RGB", (20, 20))], sampler="lavida", overrides=FAST)


def test_one_pixel_image_generates(vlm_spec, image):
    model = dvlm.build(vlm_spec())
    out = dvlm.generate(model, prompt="What is this?", images=[image(1, 1)], sampler="lavida", overrides=FAST)
    assert out.token_ids.shape == (1, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generation_on_gpu_matches_cpu(vlm_spec, image):
    model = sharpen(dvlm.build(vlm_spec()))
    prompts, pictures = ["one <image>", "two <image> <image>"], [[image()], [image(30, 60), image(9, 9)]]
    with torch.no_grad():
        cpu = model.prompt_batch(prompts, pictures)
        gpu = model.to("cuda").prompt_batch(prompts, pictures)
    assert gpu.inputs_embeds.device.type == "cuda" and torch.equal(cpu.input_ids, gpu.input_ids.cpu())
    torch.testing.assert_close(gpu.inputs_embeds.cpu(), cpu.inputs_embeds, rtol=1e-2, atol=1e-2)  # TF32 convs
    out = dvlm.generate(model, prompt=prompts, images=pictures, sampler="lavida", overrides=FAST)
    assert out.token_ids.shape == (2, 8)
