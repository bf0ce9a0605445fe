"""Params of the built-in evaluation tasks (light: imported while the registry assembles)."""

from typing import Literal

from pydantic import Field

from dvlm.core.specs import ComponentParams, non_semantic


class _LocalSet(ComponentParams):
    root: str | None = non_semantic(None)
    """Dataset folder. None: the folder of the run being evaluated (the bench passes its training data)."""
    limit: int | None = Field(None, ge=1)
    """Evaluate only the first N samples (None: all)."""
    gen_length: int | None = Field(None, ge=1)
    """Answer window for this task; None: the sampler's ``gen_length``."""


class ShapesVqaParams(_LocalSet):
    """Synthetic-shapes questions (``dvlm data synth-shapes``), scored by exact match."""

    kind: Literal["shapes_vqa"] = "shapes_vqa"
    split: Literal["train", "val", "test"] = "val"
    """Which split's ``{split}.json`` to read."""


class ShapesCaptionParams(_LocalSet):
    """Synthetic-shapes captions (``{split}_captions.json``), scored by CIDEr-D."""

    kind: Literal["shapes_caption"] = "shapes_caption"
    split: Literal["train", "val", "test"] = "val"
    """Which split's ``{split}_captions.json`` to read."""


class ShapesCaptionInfillParams(_LocalSet):
    """Synthetic-shapes captions with the last word fixed (infilling under a constraint), scored by
    constraint satisfaction and CIDEr-D."""

    kind: Literal["shapes_caption_infill"] = "shapes_caption_infill"
    split: Literal["train", "val", "test"] = "val"
    """Which split's ``{split}_captions.json`` to read."""


class LlavaJsonParams(_LocalSet):
    """Any local LLaVA-format JSON (``image``, ``conversations``): the first human turn is the prompt, the
    first gpt turn the reference."""

    kind: Literal["llava_json"] = "llava_json"
    file: str = "val.json"
    """The JSON file, relative to ``root`` (or absolute)."""
    image_folder: str = ""
    """Image paths in the rows are relative to ``root/image_folder``."""
    metric: Literal["exact_match", "cider"] = "exact_match"
    """How answers are scored."""

    @classmethod
    def for_tests(cls) -> "LlavaJsonParams":
        return cls(root="/nonexistent")
