"""dvlm serve: the denoising page end to end in headless Chromium, its error handling over HTTP, and the CLI."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

import dvlm
from dvlm.eval import TASKS_DIR
from tests.eval.conftest import ARTIFACTS, ONE_THREAD

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

IMAGE = TASKS_DIR / "data" / "images" / "000181.png"  # a blue triangle
QUESTION = "What color are the shapes?"
OVERRIDES = "gen_length=8 steps=8 block_length=8"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo(trained_checkpoint):
    from dvlm.serve.app import load_demo

    return load_demo(trained_checkpoint, overrides=OVERRIDES)


@pytest.fixture(scope="module")
def server(demo):
    """The app under uvicorn on a free local port, in a thread of this process."""
    import uvicorn

    from dvlm.serve.app import create_app

    instance = uvicorn.Server(uvicorn.Config(create_app(demo), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def expected_answer(demo):
    result = dvlm.generate(demo.model, prompt=QUESTION, images=[IMAGE], sampler="llada-reference",
                           overrides=OVERRIDES.split())
    return result.text[0]


class BrokenHead(torch.nn.Module):
    """A fault in the model (a layer of the wrong width): every forward raises inside torch."""

    def forward(self, hidden):
        return torch.nn.functional.linear(hidden, torch.zeros(3, hidden.shape[-1] + 1))


# -- over HTTP ------------------------------------------------------------------------------------------------


def post(client, **fields):
    files = {"image": (fields.pop("filename", "x.png"), fields.pop("image"), "image/png")} if "image" in fields else None
    return client.post("/generate", data=fields, files=files)


def events(response):
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_the_stream_carries_every_step_and_the_final_answer(demo):
    from starlette.testclient import TestClient

    from dvlm.serve.app import create_app

    client = TestClient(create_app(demo))
    info = client.get("/info").json()
    assert info["needs_image"] and "llada-reference" in info["presets"]
    stream = events(post(client, image=IMAGE.read_bytes(), prompt=QUESTION, sampler="llada-reference",
                         overrides=OVERRIDES))
    kinds = [e["type"] for e in stream]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") >= 2
    steps = [e for e in stream if e["type"] == "step"]
    masked = [sum(state == "m" for _, state in e["cells"]) for e in steps]
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0 and stream[0]["gen_length"] == 8
    assert all(len(e["committed"]) == len(e["confidence"]) >= 1 for e in steps)
    done = stream[-1]
    assert done["text"] == expected_answer(demo) and done["nfe"] == steps[-1]["nfe"]
    assert done["latency_s"] > 0 and done["tokens_per_forward"] > 0


def test_bad_input_gets_one_clear_message_and_the_server_keeps_serving(demo):
    from starlette.testclient import TestClient

    from dvlm.serve.app import create_app

    client = TestClient(create_app(demo))
    no_image = client.post("/generate", data={"prompt": QUESTION})
    assert no_image.status_code == 400 and "choose an image file" in no_image.json()["error"]
    not_image = post(client, image=b"this is not a picture", filename="notes.png", prompt=QUESTION)
    assert not_image.status_code == 400 and "'notes.png' cannot be used" in not_image.json()["error"]
    bad_sampler = post(client, image=IMAGE.read_bytes(), prompt=QUESTION, overrides="gen_length=8 steps=3 block_length=4")
    assert bad_sampler.status_code == 400 and "steps=3" in bad_sampler.json()["error"]
    head = demo.model.backbone.lm_head
    demo.model.backbone.lm_head = BrokenHead()
    try:
        failed = events(post(client, image=IMAGE.read_bytes(), prompt=QUESTION, overrides=OVERRIDES))
    finally:
        demo.model.backbone.lm_head = head
    assert failed[-1]["type"] == "error" and "Server error while generating (RuntimeError" in failed[-1]["message"]
    after = events(post(client, image=IMAGE.read_bytes(), prompt=QUESTION, overrides=OVERRIDES))
    assert after[-1]["type"] == "done"


def test_the_page_runs_only_the_offered_samplers_with_bounded_overrides(demo, tmp_path):
    """Issue #14: the sampler field took any server-side path and validation errors echoed the file."""
    from starlette.testclient import TestClient

    from dvlm.serve.app import create_app

    client = TestClient(create_app(demo))
    secret = tmp_path / "secret.yaml"
    secret.write_text("kind: fixed_count\ngen_length: 8\nnot_a_field: TOP-SECRET-VALUE\n")
    for name in (str(secret), "/etc/passwd", "../../../etc/hostname", "lavida.yaml"):
        refused = post(client, image=IMAGE.read_bytes(), prompt=QUESTION, sampler=name, overrides=OVERRIDES)
        assert refused.status_code == 400 and "this server offers: " in refused.json()["error"]
        assert "TOP-SECRET" not in refused.text and "root:" not in refused.text
    big = post(client, image=IMAGE.read_bytes(), prompt=QUESTION, overrides="gen_length=100000 steps=8 block_length=8")
    assert big.status_code == 400 and "gen_length=100000 is above this server's limit of 1024" in big.json()["error"]
    many = post(client, image=IMAGE.read_bytes(), prompt=QUESTION, overrides=" ".join(["steps=8"] * 17))
    assert many.status_code == 400 and "too many overrides" in many.json()["error"]


def test_sampler_specs_given_at_start_are_offered_under_their_name(trained_checkpoint, tmp_path):
    from starlette.testclient import TestClient

    from dvlm.serve.app import create_app, load_demo

    spec = tmp_path / "my-sampler.yaml"
    spec.write_text("spec: sampler\nkind: fixed_count\ngen_length: 8\nsteps: 4\nblock_length: 8\n")
    demo = load_demo(trained_checkpoint, sampler=[str(spec), "lavida"], max_gen_length=64)
    client = TestClient(create_app(demo))
    info = client.get("/info").json()
    assert info["sampler"] == "my-sampler" and {"my-sampler", "lavida", "llada-reference"} <= set(info["presets"])
    stream = events(post(client, image=IMAGE.read_bytes(), prompt=QUESTION, sampler="my-sampler"))
    assert stream[0]["gen_length"] == 8 and stream[-1]["type"] == "done" and stream[-1]["nfe"] == 4
    lavida = post(client, image=IMAGE.read_bytes(), prompt=QUESTION, sampler="lavida")  # 256 tokens > 64
    assert lavida.status_code == 400 and "gen_length=256 is above this server's limit of 64" in lavida.json()["error"]


# -- in the browser -------------------------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium "
                                             "chromium-driver; the Makefile's setup does this as root)")
def test_page_in_headless_chromium(server, demo, tmp_path):
    """Upload, submit, watch: the final text appears, the step view advanced; bad input shows a message."""
    sync_api = pytest.importorskip("playwright.sync_api")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        assert page.input_value("#overrides") == OVERRIDES
        page.fill("#prompt", QUESTION)

        page.click("#go")  # no image yet
        assert "choose an image file" in page.inner_text("#error")

        page.set_input_files("#image", str(not_an_image))
        page.click("#go")
        page.wait_for_function("document.querySelector('#error').textContent.includes('cannot be used')")

        page.set_input_files("#image", str(IMAGE))
        head = demo.model.backbone.lm_head
        demo.model.backbone.lm_head = BrokenHead()
        try:
            page.click("#go")
            page.wait_for_function("document.querySelector('#error').textContent.includes('Server error')")
        finally:
            demo.model.backbone.lm_head = head
        page.wait_for_function("!document.querySelector('#go').disabled")

        page.select_option("#sampler", "llada-reference")
        page.click("#go")  # the server is still up: this one succeeds
        page.wait_for_selector("#answer[data-done='1']", timeout=30_000)
        assert page.inner_text("#answer") == expected_answer(demo)
        assert not page.is_visible("#error")
        last = int(page.get_attribute("#scrub", "max"))
        assert last >= 2 and page.inner_text("#s-step") == f"{last} / {last}"
        assert page.inner_text("#s-masked") == "0" and page.locator("#canvas .cell.m").count() == 0
        assert float(page.inner_text("#s-tpf")) > 0 and page.inner_text("#s-lat").endswith("ms")
        page.screenshot(path=str(ARTIFACTS / "serve_final.png"), full_page=True)

        page.fill("#scrub", "0")  # replay from the start: everything masked again
        assert page.locator("#canvas .cell.m").count() == 8
        page.fill("#scrub", str(last // 2))
        assert 0 < page.locator("#canvas .cell.m").count() < 8
        page.screenshot(path=str(ARTIFACTS / "serve_midway.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "serve_final.png").stat().st_size > 0


# -- the command ----------------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dvlm_serve_command_serves_the_page(trained_checkpoint):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dvlm", "serve", "--checkpoint", str(trained_checkpoint),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=2) as response:
                    info = json.loads(response.read())
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "dvlm serve did not answer within 60 s"
                time.sleep(0.2)
        assert info["checkpoint"] == Path(trained_checkpoint).name and info["needs_image"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert "denoising view" in response.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_checkpoint_without_tokenizer_is_refused_before_serving(tmp_path):
    from dvlm.core.checkpoint import save_pretrained
    from dvlm.core.errors import CheckpointError
    from dvlm.serve.app import load_demo
    from tests.eval.test_likelihood import TINY_LLADA

    params = dvlm.registry().get("backbones", "llada").params.model_validate(TINY_LLADA)
    save_pretrained(dvlm.registry().build("backbones", params), tmp_path)
    with pytest.raises(CheckpointError, match="needs a vision-language .* checkpoint with its tokenizer files"):
        load_demo(tmp_path)
