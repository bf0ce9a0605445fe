"""lmms-eval ``gen_kwargs`` -> dvlm sampler params (kept apart from the model class so it runs without
lmms-eval installed).

A task's ``generation_kwargs`` (merged with ``--gen_kwargs``) arrive as one flat dict:

- ``max_new_tokens`` sets the sampler's ``gen_length``; fields the user did not give follow it the way
  LaViDa's evaluation wrapper did: ``block_length`` becomes ``min(block_length, gen_length)`` (the largest
  divisor of ``gen_length`` not above it), and ``steps`` keeps the preset's NFE fraction
  (``steps / gen_length``, rounded to whole steps per block);
- ``until`` (a string or a list) is returned as stop strings: the answer is cut at the first one;
- ``temperature`` goes to the sampler (0 = greedy, the setting of every shipped preset);
- the autoregressive switches ``do_sample``, ``num_beams``, ``top_p`` and ``use_cache`` are ignored
  (LaViDa's wrapper ignored them too); set sampling through sampler fields instead;
- every other key is a sampler field: ``steps``, ``block_length``, ``cache=prefix``,
  ``schedule=shift``, and nested fields as ``schedule.alpha=0.33`` or LaViDa's ``schedule__alpha=0.33``.
  A key the sampler does not have is an error that lists its fields.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from dvlm.core.sampler_specs import resolve_sampler

IGNORED = frozenset({"do_sample", "num_beams", "top_p", "use_cache"})
"""Autoregressive decoding switches that tasks set and diffusion samplers have no use for."""

_STRINGS = (str, bytes)


def stop_strings(until: Any) -> list[str]:
    """``until`` as a list of non-empty strings (lmms-eval passes a string, a list, or a JSON-looking string)."""
    if until is None:
        return []
    if isinstance(until, str) and until.startswith("["):
        try:
            until = json.loads(until)
        except json.JSONDecodeError:
            pass
    items = [until] if isinstance(until, _STRINGS) else list(until)
    return [str(s) for s in items if s]


def cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` up to the first stop string, stripped of surrounding whitespace."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut].strip()


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def fit_to_length(preset: Mapping[str, Any], gen_length: int, given: set[str]) -> dict[str, Any]:
    """The preset's fields for answers of ``gen_length`` tokens (``given``: fields the user set, left alone)."""
    data = dict(preset)
    old_length = data.get("gen_length")
    data["gen_length"] = gen_length
    blocks = 1
    if data.get("block_length") is not None and "block_length" not in given:
        data["block_length"] = _largest_divisor(gen_length, data["block_length"])
    if data.get("block_length") is not None:
        blocks = gen_length // min(data["block_length"], gen_length)
    if data.get("steps") is not None and "steps" not in given and old_length:
        per_block = max(1, round(data["steps"] / old_length * gen_length / blocks))
        data["steps"] = per_block * blocks
    return data


def sampler_for(sampler: Any, gen_kwargs: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """``(validated sampler params, stop strings)`` for one request's ``gen_kwargs``."""
    kwargs = dict(gen_kwargs)
    stops = stop_strings(kwargs.pop("until", None))
    for key in IGNORED:
        kwargs.pop(key, None)
    overrides = {key.replace("__", "."): value for key, value in kwargs.items() if key != "max_new_tokens"}
    params = resolve_sampler(sampler)
    max_new_tokens = kwargs.get("max_new_tokens")
    if max_new_tokens is not None and "gen_length" not in overrides:
        given = {key.split(".")[0] for key in overrides}
        data = fit_to_length(params.model_dump(mode="json"), int(max_new_tokens), given)
        params = resolve_sampler(data)
    if "temperature" in overrides and "temperature" not in type(params).model_fields:
        overrides.pop("temperature")
    if "temperature" in overrides:
        overrides["temperature"] = float(overrides["temperature"])
    return resolve_sampler(params, overrides), stops
