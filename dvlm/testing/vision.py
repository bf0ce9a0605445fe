"""Conformance checks of the multimodal families, run on the object a kind's factory builds from ``for_tests()``
params (see ``dvlm.testing.conformance.FAMILY_CHECKS``)."""

from __future__ import annotations

from typing import Any

#: the dimensions a projector is built with by the conformance kit: ``factory(params, in_dim, out_dim)``
PROJECTOR_DIMS = (12, 16)


def check_vision_encoder(encoder: Any) -> None:
    """Views ``[N, 3, S, S]`` -> ``[N, g*g, C]``, finite; the preprocessing is declared; views are independent."""
    import torch

    from dvlm.core.image import Preprocess
    from dvlm.core.interfaces import VisionEncoder

    assert isinstance(encoder, VisionEncoder), "missing VisionEncoder attributes (dvlm.core.interfaces)"
    assert isinstance(encoder.preprocess, Preprocess), "an encoder declares its preprocessing (dvlm.core.image)"
    side, grid, width = encoder.image_size, encoder.grid_size, encoder.feature_dim
    assert encoder.preprocess.image_size == side, "the preprocessing makes views of the encoder's image_size"
    pixels = torch.randn(2, 3, side, side)
    with torch.no_grad():
        features = encoder(pixels)
        alone = encoder(pixels[1:])
    assert features.shape == (2, grid * grid, width), f"expected {(2, grid * grid, width)}, got {features.shape}"
    assert torch.isfinite(features).all()
    torch.testing.assert_close(alone[0], features[1], rtol=1e-3, atol=1e-4)


def check_projector(projector: Any) -> None:
    """``[..., in_dim] -> [..., out_dim]`` for the dimensions it was built with."""
    import torch

    from dvlm.core.interfaces import Projector

    assert isinstance(projector, Projector)
    in_dim, out_dim = PROJECTOR_DIMS
    with torch.no_grad():
        out = projector(torch.randn(3, 5, in_dim))
    assert out.shape == (3, 5, out_dim), f"expected (3, 5, {out_dim}), got {tuple(out.shape)}"


def check_image_layout(layout: Any) -> None:
    """Views for any image size; the token count computed from the size equals the merged sequence length."""
    import torch
    from PIL import Image

    from dvlm.core.image import Preprocess
    from dvlm.core.interfaces import ImageLayout

    assert isinstance(layout, ImageLayout), "missing ImageLayout methods (dvlm.core.interfaces)"
    preprocess = Preprocess(28, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    for size in [(28, 28), (50, 30), (20, 90), (1, 1), (300, 200)]:
        pixels, grid = layout.views(Image.new("RGB", size, (120, 30, 200)), preprocess)
        assert pixels.shape[1:] == (3, 28, 28), pixels.shape
        assert pixels.shape[0] == layout.num_views(size, 28)
        tokens = layout.merge(torch.randn(pixels.shape[0], 16, 6), grid, torch.zeros(6))
        assert tokens.shape == (layout.num_tokens(size, 28, 4), 6), (size, tokens.shape)
    assert isinstance(layout.uses_newline, bool)


def _tokenizer_with_chat_template() -> Any:
    """A tiny tokenizer carrying a ChatML ``chat_template``, for templates that render the tokenizer's own."""
    from transformers import PreTrainedTokenizerFast

    from dvlm.core.tiny_tokenizer import UNK, build_tiny_tokenizer

    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokens = {"<|im_start|>": 128, "<|im_end|>": 129, UNK: 130}
    return PreTrainedTokenizerFast(tokenizer_object=build_tiny_tokenizer(tokens), chat_template=chatml)


def check_chat_template(template: Any) -> None:
    """A string or a message list renders to a string that keeps the ``<image>`` placeholder and the text."""
    from dvlm.core.interfaces import ChatTemplate

    assert isinstance(template, ChatTemplate), "missing ChatTemplate attributes (dvlm.core.interfaces)"
    tokenizer = _tokenizer_with_chat_template()
    one = template.render("<image>\nWhat is it?", tokenizer=tokenizer)
    many = template.render([{"role": "user", "content": "<image>\nWhat is it?"},
                            {"role": "assistant", "content": "A cat."}, {"role": "user", "content": "Sure?"}],
                           tokenizer=tokenizer)
    for text in (one, many):
        assert isinstance(text, str) and text.count("<image>") == 1 and "What is it?" in text
    assert "A cat." in many and "Sure?" in many
