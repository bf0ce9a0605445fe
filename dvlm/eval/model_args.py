"""``--model_args`` of ``--model dvlm``: parsed once, each mistake one ``EvalError`` naming the field and what
it accepts (lmms-eval would otherwise surface a ``TypeError`` from deep inside its model factory).

lmms-eval hands the model its ``--model_args`` already split and typed (``k=v`` pairs; numerals become int or
float, ``true``/``false`` bools) plus ``batch_size``, ``max_batch_size`` and ``device`` from its own flags
(``--batch_size`` arrives as a string). Nothing here imports torch or lmms-eval.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from dvlm.core.errors import EvalError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
"""What ``device`` accepts: ``auto`` (CUDA when available, else CPU), a device type, or one GPU."""

DTYPES = ("auto", "float32", "bfloat16", "float16")
"""What ``dtype`` accepts: ``auto`` is bfloat16 on a GPU and the checkpoint's stored dtype on CPU."""

FIELDS = {
    "pretrained": "a checkpoint folder in any layout dvlm.load_pretrained reads (required)",
    "sampler": "a sampler preset name or a sampler spec file (default lavida)",
    "device": f"one of {', '.join(DEVICES)} (default auto)",
    "dtype": f"one of {', '.join(DTYPES)} (default auto)",
    "batch_size": "a positive integer: requests per generate batch (lmms-eval's --batch_size, default 1)",
    "mc_num": "a positive integer: Monte-Carlo samples per likelihood (default 128)",
    "mc_batch_size": "a positive integer dividing mc_num (default 16)",
    "seed": "an integer: the likelihood estimator's seed (default 0)",
    "max_batch_size": "accepted for lmms-eval's --max_batch_size and ignored (dvlm batches by batch_size)",
}
"""Every key ``--model dvlm`` takes, with what it accepts (the text of the errors)."""


@dataclass(frozen=True)
class ModelArgs:
    """The validated ``--model_args``."""

    pretrained: str
    sampler: str = "lavida"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 1
    mc_num: int = 128
    mc_batch_size: int = 16
    seed: int = 0


def _error(field: str, value: Any, extra: str = "") -> EvalError:
    return EvalError(f"--model_args {field}={value!r} is not accepted: {field} takes {FIELDS[field]}.{extra}")


def _integer(field: str, value: Any, minimum: int | None) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", text) or (minimum is not None and int(text) < minimum):
        raise _error(field, value)
    return int(text)


def parse_model_args(args: dict[str, Any]) -> ModelArgs:
    """``create_from_arg_string``'s keyword arguments -> ``ModelArgs``, or an ``EvalError`` naming the field."""
    unknown = sorted(set(args) - set(FIELDS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(FIELDS), n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise EvalError(f"--model_args: --model dvlm takes no {', '.join(map(repr, unknown))}.{hint} It takes: "
                        + "; ".join(f"{k} ({v})" for k, v in FIELDS.items()))
    if args.get("pretrained") in (None, ""):
        raise EvalError(f"--model_args: pretrained is required: {FIELDS['pretrained']}, e.g. "
                        "--model_args pretrained=/path/to/checkpoint")
    device = str(args.get("device", "auto")).strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise _error("device", args["device"])
    dtype = str(args.get("dtype", "auto")).strip().lower()
    if dtype not in DTYPES:
        close = difflib.get_close_matches(dtype, DTYPES, n=1, cutoff=0.5)
        raise _error("dtype", args["dtype"], f" Did you mean '{close[0]}'?" if close else "")
    sampler = args.get("sampler", "lavida")
    if not isinstance(sampler, str) or not sampler.strip():
        raise _error("sampler", sampler)
    parsed = ModelArgs(
        pretrained=str(args["pretrained"]),
        sampler=sampler.strip(),
        device=device,
        dtype=dtype,
        batch_size=_integer("batch_size", args.get("batch_size", 1), 1),
        mc_num=_integer("mc_num", args.get("mc_num", 128), 1),
        mc_batch_size=_integer("mc_batch_size", args.get("mc_batch_size", 16), 1),
        seed=_integer("seed", args.get("seed", 0), None),
    )
    if parsed.mc_num % min(parsed.mc_batch_size, parsed.mc_num):
        raise _error("mc_batch_size", parsed.mc_batch_size, f" {parsed.mc_batch_size} does not divide "
                     f"mc_num={parsed.mc_num}.")
    return parsed
