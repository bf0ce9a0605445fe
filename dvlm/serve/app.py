"""``dvlm serve``: a local page that shows an answer being denoised, step by step.

The user uploads an image, writes a prompt and picks a sampler preset; the server runs ``dvlm.generate``
with an ``on_step`` callback and streams every ``StepEvent`` to the page as one JSON line (NDJSON over a
plain streamed HTTP response). The page draws the answer window: masked positions fill in as the sampler
commits them, each coloured by its confidence, with NFE, tokens per forward and latency.

Why a small ASGI app (Starlette under uvicorn) and not Gradio: the page is one form plus one stream of
events, which is a few routes and a page of plain JavaScript. Starlette, uvicorn and python-multipart are
small pure-Python packages from PyPI (under 2 MB together); Gradio would bring FastAPI, pandas, a large
front-end bundle and usage analytics, and its components would have to be bent to draw a per-token canvas.

Samplers: the page picks one of the presets or of the sampler specs given to ``dvlm serve`` at start, with
a bounded number of ``key=value`` overrides and ``gen_length``/``steps`` within ``--max-gen-length``; a
request never names a file, so the server reads none for it and no error can echo one.

Errors: input a user can get wrong (no image for a vision model, a file that is not an image, a prompt or
sampler setting that does not fit) is refused with HTTP 400 and one message; an exception while generating
becomes an ``error`` event with its message, the traceback goes to the server log, and the server keeps
serving. One generation runs at a time (the model is shared).

Shapes: G answer length (the sampler's ``gen_length``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from dvlm.core.errors import DvlmError, ImageError, PromptError, SpecError
from dvlm.core.sampler_specs import preset_names, resolve_sampler

log = logging.getLogger("dvlm.serve")
PAGE = Path(__file__).resolve().parent / "page.html"
DONE = object()
MAX_GEN_LENGTH = 1024
"""Default bound on ``gen_length`` and ``steps`` a page request may ask for (``--max-gen-length``)."""
MAX_OVERRIDES, MAX_OVERRIDE_CHARS = 16, 400


class Demo:
    """The loaded model and what the page needs from it: token pieces and one generation at a time."""

    def __init__(self, model: Any, name: str, samplers: dict[str, Any], default_sampler: str,
                 default_overrides: str = "", max_gen_length: int = MAX_GEN_LENGTH) -> None:
        self.model, self.name = model, name
        self.tokenizer = model.tokenizer
        self.tokens = model.special_tokens
        self.needs_image = getattr(model, "vision", None) is not None
        self.samplers = samplers
        """Name -> resolved sampler params: the presets and the specs given at start, the page's only choices."""
        self.default_sampler, self.default_overrides = default_sampler, default_overrides
        self.max_gen_length = max_gen_length
        self.lock = threading.Lock()
        self._pieces: dict[int, str] = {}

    def info(self) -> dict[str, Any]:
        return {"checkpoint": self.name, "needs_image": self.needs_image, "presets": list(self.samplers),
                "sampler": self.default_sampler, "overrides": self.default_overrides,
                "max_gen_length": self.max_gen_length}

    def sampler(self, name: str, overrides: str) -> Any:
        """A sampler the page may run: one of ``self.samplers`` (never a path: the server reads no file a request
        names), with at most ``MAX_OVERRIDES`` overrides and lengths within ``max_gen_length``."""
        if name not in self.samplers:
            raise SpecError(f"unknown sampler; this server offers: {', '.join(self.samplers)}")
        if len(overrides) > MAX_OVERRIDE_CHARS or len(overrides.replace(",", " ").split()) > MAX_OVERRIDES:
            raise SpecError(f"too many overrides: at most {MAX_OVERRIDES} key=value pairs "
                            f"({MAX_OVERRIDE_CHARS} characters)")
        params = resolve_sampler(self.samplers[name], overrides.replace(",", " ").split())
        for field in ("gen_length", "steps"):
            value = getattr(params, field, None)
            if value is not None and value > self.max_gen_length:
                raise SpecError(f"{field}={value} is above this server's limit of {self.max_gen_length} "
                                f"(dvlm serve --max-gen-length)")
        return params

    def piece(self, token_id: int) -> str:
        """The text of one token (cached): what a committed cell shows."""
        if token_id not in self._pieces:
            self._pieces[token_id] = self.tokenizer.decode([token_id])
        return self._pieces[token_id]

    def cells(self, row: list[int]) -> list[list[Any]]:
        """``[G]`` ids -> ``[[text, state], ...]``; state ``m`` masked, ``e`` end of answer/padding, ``t`` text."""
        ends = {t for t in (self.tokens.eos_id, self.tokens.eot_id, self.tokens.pad_id) if t is not None}
        out = []
        for token in row:
            if token == self.tokens.mask_id:
                out.append(["", "m"])
            elif token in ends:
                out.append(["", "e"])
            else:
                out.append([self.piece(token), "t"])
        return out

    def check(self, image: bytes | None, prompt: str, sampler: str, overrides: str,
              filename: str = "the file") -> tuple[Any, list]:
        """Validate a request before anything runs: ``(sampler params, loaded images)`` or a DvlmError."""
        if not prompt.strip():
            raise PromptError("Write a prompt (for example: What color are the shapes?).")
        if self.needs_image and not image:
            raise ImageError("This model answers questions about an image: choose an image file (PNG, JPEG, ...) "
                             "before pressing Generate.")
        if image and not self.needs_image:
            raise ImageError(f"{self.name} has no vision encoder, so it cannot look at images; remove the image.")
        try:
            images = self.model.load_images([image]) if image else []
        except ImageError as err:
            raise ImageError(f"'{filename}' cannot be used: {err}") from None
        params = self.sampler(sampler, overrides)
        from dvlm.core.plugins import get_registry

        get_registry().build("samplers", params)  # settings that cannot run (e.g. steps vs blocks) fail here
        return params, images

    def stream(self, prompt: str, images: list, params: Any) -> Iterator[bytes]:
        """Run the sampler in a worker thread; yield its events as JSON lines as they come."""
        events: queue.Queue = queue.Queue()

        def on_step(event) -> None:
            committed = event.committed[0].nonzero().flatten().tolist()
            confidence = event.confidence[0].float()
            events.put({"type": "step", "step": event.step, "block": event.block, "nfe": event.nfe,
                        "cells": self.cells(event.tokens[0].tolist()), "committed": committed,
                        "confidence": [round(float(confidence[i]), 4) for i in committed]})

        def work() -> None:
            import dvlm

            began = time.perf_counter()
            try:
                with self.lock:
                    result = dvlm.generate(self.model, prompt=prompt, images=images or None, sampler=params,
                                           on_step=on_step)
                events.put({"type": "done", "text": result.text[0], "nfe": result.nfe,
                            "tokens_per_forward": round(result.tokens_per_forward, 4),
                            "latency_s": round(time.perf_counter() - began, 4),
                            "answer_tokens": result.answer_lengths[0]})
            except DvlmError as err:
                events.put({"type": "error", "message": str(err)})
            except Exception as err:  # a server error: say so on the page, keep serving
                log.error("generation failed:\n%s", traceback.format_exc())
                events.put({"type": "error", "message": f"Server error while generating ({type(err).__name__}: "
                                                        f"{err}). The server is still running; see its log."})
            finally:
                events.put(DONE)

        yield _line({"type": "start", "gen_length": params.gen_length, "sampler": params.kind,
                     "cells": [["", "m"]] * params.gen_length})
        threading.Thread(target=work, daemon=True).start()
        while (event := events.get()) is not DONE:
            yield _line(event)


def _line(event: dict) -> bytes:
    return (json.dumps(event) + "\n").encode()


def create_app(demo: Demo) -> Starlette:
    """The ASGI app: ``GET /`` the page, ``GET /info`` the model and presets, ``POST /generate`` the stream."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(demo.info())

    async def generate(request: Request):
        try:
            form = await request.form()
            upload = form.get("image")
            image = await upload.read() if hasattr(upload, "read") else None
            prompt = str(form.get("prompt") or "")
            sampler = str(form.get("sampler") or demo.default_sampler)
            overrides = str(form.get("overrides") or "")
            filename = getattr(upload, "filename", None) or "the file"
            params, images = demo.check(image, prompt, sampler, overrides, filename)
        except DvlmError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        except Exception as err:
            log.error("bad request:\n%s", traceback.format_exc())
            return JSONResponse({"error": f"Server error while reading the request ({type(err).__name__}: {err})."},
                                status_code=500)
        return StreamingResponse(demo.stream(prompt, images, params), media_type="application/x-ndjson")

    return Starlette(routes=[Route("/", page), Route("/info", info),
                             Route("/generate", generate, methods=["POST"])])


def load_demo(checkpoint: str | Path, device: str = "cpu", sampler: str | Sequence[str] = "llada-reference",
              overrides: str = "", max_gen_length: int = MAX_GEN_LENGTH) -> Demo:
    """Load a checkpoint for the page (a model without a tokenizer cannot show text: refused here).

    ``sampler``: one or more presets or sampler spec files, read now; the page offers these and the presets
    (a file under its stem), the first selected when it opens."""
    import dvlm
    from dvlm.core.errors import CheckpointError

    model = dvlm.load_pretrained(checkpoint, device=device)
    if getattr(model, "tokenizer", None) is None or not hasattr(model, "prompt_batch"):
        raise CheckpointError(f"{checkpoint}: dvlm serve needs a vision-language (or chat) checkpoint with its "
                              f"tokenizer files, e.g. one written by dvlm train or a LaViDa / LLaDA-V folder")
    samplers = {name: resolve_sampler(name) for name in preset_names()}
    given = [sampler] if isinstance(sampler, str) else list(sampler)
    names = [name if name in samplers else Path(name).stem for name in given]
    for name, source in zip(names, given):
        if source not in samplers:
            samplers[name] = resolve_sampler(source)  # a spec file: read once, at start
    demo = Demo(model.eval(), Path(checkpoint).name, samplers, names[0], overrides, max_gen_length)
    demo.sampler(names[0], overrides)  # fail before serving
    return demo
