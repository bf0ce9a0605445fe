"""A conversation -> token ids and labels: the prompt is context, each supervised answer a target.

The chat template decides the text; this module decides what is supervised. For every assistant
turn the template renders, the text splits into:

- the prompt before it (system, user turns, the assistant header): labels ``IGNORE_INDEX``;
- the answer and the template's end of turn (``<|eot_id|>``, ``<|im_end|>``, ``\\n`` for plain):
  targets when the round is supervised, context otherwise.

Each piece is found by rendering prefixes of the conversation (``render(turns[:k])``), so any template
whose renderings of a conversation's prefixes are prefixes of each other works unchanged. End-of-
sequence padding, the third kind of target, is added by ``collate``.

Multi-turn policy (``MultiTurn``):
- ``sample_round`` (LaViDa's code): one round drawn uniformly; its question is the prompt, the
  history is dropped;
- ``sample_round_with_history`` (LaViDa's paper): one round drawn uniformly; the rounds before it
  are kept as unsupervised context;
- ``all_rounds`` (LLaDA-V): the whole conversation, every answer supervised.

LaViDa-FIM (``fim``) rewrites supervised answers: ``[S]`` fillers are targets, ``[FIM]`` is context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvlm.core.errors import DataError
from dvlm.core.interfaces import SpecialTokens
from dvlm.core.masked_batch import IGNORE_INDEX
from dvlm.core.tokenizer import encode
from dvlm.data.llava import IMAGE_TOKEN, MultiTurn, Record
from dvlm.plugins.masking.fim import FimParams, fim_augment


IMAGE_SLOT = -200
"""The id standing for an ``<image>`` placeholder in ``input_ids`` (LLaVA's ``IMAGE_TOKEN_INDEX``): not a
vocabulary id; the model replaces it with that image's feature tokens."""


@dataclass(frozen=True)
class Encoded:
    """One training example: ids (``image_token_id`` where an image's features go) and labels."""

    input_ids: list[int]
    labels: list[int]
    images: tuple[Path, ...] = ()


class ConversationEncoder:
    """``Record`` -> ``Encoded`` with a chat template, a tokenizer and the backbone's special tokens."""

    def __init__(self, tokenizer: Any, template: Any, special_tokens: SpecialTokens, *,
                 multi_turn: MultiTurn = "sample_round", fim: FimParams | None = None,
                 image_token_id: int | None = None) -> None:
        self.tokenizer, self.template, self.multi_turn, self.fim = tokenizer, template, multi_turn, fim
        self.image_token_id = image_token_id
        self.bos = getattr(tokenizer, "bos_token", None)  # what DiffusionVLM.render passes the template too
        self.special_texts = {token.content for token in getattr(tokenizer, "added_tokens_decoder", {}).values()
                              if token.special} | set(getattr(tokenizer, "all_special_tokens", []))
        self.fim_ids = None
        if fim is not None:
            missing = [role for role in ("fim", "fim_filler") if role not in special_tokens.extra]
            if missing:
                raise DataError(
                    f"FIM augmentation needs the backbone's special tokens {missing} (extra_token_ids in its "
                    f"params, e.g. LaViDa's <|reserved_token_1|> / <|reserved_token_2|>); set them or drop data.fim"
                )
            self.fim_ids = (special_tokens.extra["fim"], special_tokens.extra["fim_filler"])

    def __call__(self, record: Record, rng: random.Random) -> Encoded:
        if record.images and self.image_token_id is None:
            raise DataError(f"row {record.id} has an image but the model has no vision encoder; "
                            f"train a vision-language model or use text-only data")
        turns = [{"role": role, "content": text} for role, text in record.turns]
        answers = [i for i, t in enumerate(turns) if t["role"] == "assistant"]
        if self.multi_turn == "all_rounds":
            supervised = set(answers)
        else:
            chosen = rng.choice(answers)
            supervised = {chosen}
            if self.multi_turn == "sample_round":
                system = turns[:1] if turns[0]["role"] == "system" else []
                turns, supervised = [*system, turns[chosen - 1], turns[chosen]], {len(system) + 1}
            else:
                turns = turns[: chosen + 1]
        ids: list[int] = []
        labels: list[int] = []
        for text, target in self.pieces(turns, supervised, record.id):
            piece = self.tokenize(text, target, rng)
            ids += piece
            labels += [IGNORE_INDEX if not target or token == self.image_token_id else token for token in piece]
        if self.fim_ids is not None:  # [FIM] is visible context, never a target
            labels = [IGNORE_INDEX if token == self.fim_ids[0] else label for token, label in zip(ids, labels)]
        return Encoded(ids, labels, record.images)

    def prompt(self, record: Record) -> tuple[list[dict], str]:
        """Evaluation: the messages before the last answer of ``record`` (as much history as the multi-turn
        policy keeps) and that answer's text."""
        turns = [{"role": role, "content": text} for role, text in record.turns]
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        context = turns[:last]
        if self.multi_turn == "sample_round":
            context = [*(turns[:1] if turns[0]["role"] == "system" else []), turns[last - 1]]
        return context, turns[last]["content"]

    def pieces(self, turns: list[dict], supervised: set[int], row_id: str) -> list[tuple[str, bool]]:
        """(text, is_target) pieces of the rendered conversation, in order.

        The text after the last end of turn is context, unless the template writes it whatever
        ``add_generation_prompt`` says (LLaDA's own chat_template always ends with the assistant header)."""
        out: list[tuple[str, bool]] = []
        consumed = through = ""
        for k in (i for i, t in enumerate(turns) if t["role"] == "assistant"):
            before = self.render(turns[:k], add_generation_prompt=True)
            through = self.render(turns[: k + 1], add_generation_prompt=False)
            cut = self.answer_end(through[len(before):], turns[k]["content"]) if through.startswith(before) else None
            if cut is None or not before.startswith(consumed):
                raise DataError(f"row {row_id}: the chat template's renderings of this conversation's prefixes "
                                f"are not prefixes of each other, so its answers cannot be located")
            out += [(before[len(consumed):], False), (through[len(before):][:cut], k in supervised)]
            consumed = before + through[len(before):][:cut]
        tail = through[len(consumed):]
        if through != self.render(turns, add_generation_prompt=True):
            out.append((tail, False))
        return [(text, target) for text, target in out if text]

    def answer_end(self, answer: str, content: str) -> int | None:
        """Where the target ends in ``answer`` (the rendered turn after the assistant header): after the
        template's end of turn; for the ``tokenizer`` template (no declared end), after the special token
        that follows the answer's text (``<|eot_id|>``, ``<|im_end|>``). None when it cannot be found."""
        end = self.template.end_of_turn
        if end:
            return answer.rindex(end) + len(end) if end in answer else None
        text = content.strip()
        start = answer.find(text)
        if start < 0:
            return None
        cut = start + len(text)
        following = [token for token in self.special_texts if answer.startswith(token, cut)]
        return cut + max(map(len, following), default=0)

    def render(self, turns: list[dict], add_generation_prompt: bool) -> str:
        """The template's text for ``turns``, as ``DiffusionVLM.render`` gets it (the tokenizer's BOS text and,
        for the ``tokenizer`` template, its own chat_template)."""
        return self.template.render(turns, bos_token=self.bos, add_generation_prompt=add_generation_prompt,
                                    tokenizer=self.tokenizer)

    def tokenize(self, text: str, target: bool, rng: random.Random) -> list[int]:
        """Ids of a piece: ``<image>`` -> the image slot id; a supervised answer may get FIM markers."""
        if target and self.fim is not None:
            ends = [self.template.end_of_turn] if self.template.end_of_turn else self.special_texts
            end = max((token for token in ends if text.endswith(token)), key=len, default="")
            content = text[: len(text) - len(end)]
            ids: list[int] = []
            for piece in fim_augment(content, rng, *self.fim_ids, self.fim):
                ids += encode(self.tokenizer, piece) if isinstance(piece, str) else list(piece)
            return ids + encode(self.tokenizer, end)
        parts = text.split(IMAGE_TOKEN)
        ids = encode(self.tokenizer, parts[0])
        for part in parts[1:]:
            if self.image_token_id is None:
                raise DataError(f"the text has an {IMAGE_TOKEN} placeholder but the model has no vision encoder")
            ids += [self.image_token_id, *encode(self.tokenizer, part)]
        return ids
