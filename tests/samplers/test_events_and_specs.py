"""The per-step event stream, the result fields, presets, spec overrides and every user error."""

import json

import pytest
import torch

import dvlm
from dvlm.core.sampler_specs import preset_names, resolve_sampler
from tests.samplers.conftest import prompts

MASK = 250


def test_events_stream_every_commit_once_and_end_at_the_result(llada):
    streamed = []
    result = dvlm.generate(llada, prompts(2, 8, seed=20), on_step=streamed.append, trace=True,
                           sampler={"kind": "fixed_count", "gen_length": 16, "steps": 8, "block_length": 8})
    assert streamed == result.steps and len(streamed) == result.nfe == 8
    committed = torch.stack([e.committed for e in streamed])  # [steps, B, G]
    assert torch.equal(committed.sum(0), torch.ones(2, 16, dtype=torch.long))  # each position exactly once
    assert [e.block for e in streamed] == [0] * 4 + [1] * 4
    for previous, event in zip(streamed, streamed[1:]):
        new = (previous.tokens == MASK) & (event.tokens != MASK)
        assert torch.equal(new, event.committed)
        assert torch.equal(torch.isnan(event.confidence), ~event.committed)
    assert torch.equal(streamed[-1].tokens, result.token_ids)


def test_result_counts_answer_tokens_per_forward_without_end_padding(llada):
    from tests.samplers.conftest import with_tokens

    model = with_tokens(llada, eot_token_id=252)
    draft = torch.tensor([[MASK] * 5 + [252]])
    result = dvlm.generate(model, prompts(1, 6, seed=21), draft=draft,
                           sampler={"kind": "fixed_count", "gen_length": 16, "steps": 16, "early_stop": True})
    assert result.answer_lengths == [6] and result.nfe == 5
    assert result.tokens_per_forward == pytest.approx(6 / 5)
    assert result.text is None and result.wall_time_s > 0


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_runs(llada, dream, name):
    params = resolve_sampler(name)
    model = dream if params.kind == "dream" else llada
    small = {"gen_length": 16}
    if params.kind == "fixed_count" and params.steps is not None:
        small["steps"] = 8
    if params.kind == "dream":
        small["steps"] = 8
    result = dvlm.generate(model, prompts(1, 5, seed=22), sampler=name, overrides=small)
    assert result.token_ids.shape == (1, 16) and MASK not in result.token_ids.flatten().tolist()


def test_presets_carry_the_reference_settings():
    coco = resolve_sampler("lavida-coco")
    assert (coco.gen_length, coco.steps, coco.block_length, coco.cache.kind) == (32, 16, 32, "prefix")
    assert coco.schedule.kind == "shift" and coco.schedule.alpha == 0.33  # run_coco.sh's value, not 1/3
    fast = resolve_sampler("fast-dllm")
    assert (fast.kind, fast.block_length, fast.cache.kind) == ("parallel", 32, "dual")
    assert (fast.commit_rule.kind, fast.commit_rule.threshold) == ("threshold", 0.9)
    assert resolve_sampler("lavida").steps is None  # K = L
    assert resolve_sampler("llada-v").early_stop


def test_the_coco_preset_runs_run_coco_shs_integer_schedule():
    """LaViDa run_coco.sh: L = 32, K = 16, schedule__shift=0.33 -> lavida.md:411's counts (1/3 gives
    [6,4,4,2,3,...]: issue #14)."""
    from dvlm.core.plugins import get_registry

    coco = resolve_sampler("lavida-coco")
    counts = get_registry().build("schedules", coco.schedule).counts(torch.tensor([32]), coco.steps)
    assert counts[0].tolist() == [6, 4, 4, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]


def test_the_presets_readme_gives_a_source_for_every_field_of_every_preset():
    import re

    from dvlm.core.sampler_specs import PRESET_DIR, preset_names
    from dvlm.core.specs import read_document

    readme = (PRESET_DIR / "README.md").read_text()
    for name in preset_names():
        section = readme.split(f"**`{name}`**", 1)[1].split("**`", 1)[0]
        listed = {field for cell in re.findall(r"^\| ([^|]+) \|", section, flags=re.M)
                  for field in re.findall(r"`(\w+)`", cell)}
        fields = set(read_document(PRESET_DIR / f"{name}.yaml")) - {"spec", "kind"}
        assert fields <= listed, f"{name}: no source row for {sorted(fields - listed)}"
        for row in re.findall(r"^\| `.*\|$", section, flags=re.M):  # each row cites a file and line
            assert re.search(r"\w+\.md:\d+|:\d+\)", row), row


def test_spec_sources_and_overrides(tmp_path, llada):
    path = tmp_path / "mine.yaml"
    path.write_text("spec: sampler\nkind: llada\ngen_length: 8\nsteps: 4\nschedule: cosine\n")
    params = resolve_sampler(path, ["cache=prefix", "schedule.kind=shift", "schedule.alpha=0.5", "top_k=null"])
    assert params.kind == "fixed_count" and params.cache.kind == "prefix" and params.schedule.alpha == 0.5
    same = resolve_sampler({"kind": "fixed_count", "gen_length": 8, "steps": 4, "cache": "prefix",
                            "schedule": {"kind": "shift", "alpha": 0.5}})
    assert dvlm.spec_hash(params) == dvlm.spec_hash(same)
    assert resolve_sampler(params) is params
    assert resolve_sampler(params, {"steps": 8}).steps == 8


def test_setting_a_components_kind_starts_from_that_kinds_defaults():
    """The README's line: a preset without a commit rule gets one; switching kind drops the old kind's fields."""
    params = resolve_sampler("lavida-coco", ["commit_rule.kind=threshold", "commit_rule.threshold=0.8"])
    assert params.commit_rule.kind == "threshold" and params.commit_rule.threshold == 0.8
    assert resolve_sampler("lavida-coco", ["schedule.kind=linear"]).schedule.kind == "linear"  # alpha dropped
    assert resolve_sampler("fast-dllm", ["commit_rule.kind=fixed_count"]).commit_rule.kind == "fixed_count"


@pytest.mark.parametrize("sampler,overrides,message", [
    ("lavida-coco", ["commit_rule.threshold=0.8"], "--set commit_rule.threshold: no kind given"),
    ("lavida-coco", ["commit_rule.kind=threshhold"], "threshhold"),
    ("lavda", [], "unknown sampler preset 'lavda'.*Did you mean 'lavida'"),
    ("lavida", ["stepz=4"], "--set stepz: sampler kind 'fixed_count' has no field 'stepz'.*Did you mean 'steps'"),
    ("lavida-coco", ["schedule.alpah=4"], "schedule kind 'shift' has no field 'alpah'.*Did you mean 'alpha'"),
    ("lavida", ["steps"], "expected key=value"),
    ("lavida", ["gen_length.x=1"], "'gen_length' is a plain value"),
    ("lavida", ["cache=prefx"], "cache.*'prefx'.*prefix"),
    ("fast-dllm", ["factor=1.0"], "set the commit rule once \\(got factor, commit_rule\\).*commit_rule.factor=1.0"),
    ("missing.yaml", [], "missing.yaml does not exist"),
    ("dream", ["alg=origin", "schedule=shift"], "'origin'.*takes no schedule"),
])
def test_spec_mistakes_give_one_clear_message(sampler, overrides, message):
    with pytest.raises(dvlm.DvlmError, match=message):
        resolve_sampler(sampler, overrides)


@pytest.mark.parametrize("spec,message", [
    ({"kind": "fixed_count", "gen_length": 24, "block_length": 16},
     "gen_length=24 is not a multiple of block_length=16"),
    ({"kind": "fixed_count", "gen_length": 32, "block_length": 8, "steps": 10},
     "steps=10 cannot be split evenly over 4 blocks"),
    ({"kind": "fixed_count", "gen_length": 8, "steps": 8, "step_ratio": 0.1}, "leaves 0 steps per block"),
    ({"kind": "parallel", "gen_length": 20, "block_length": 8}, "not a multiple of block_length=8"),
    ({"kind": "dream", "gen_length": 16, "steps": 4, "step_ratio": 0.5}, "gives 8 steps.*between 1 and steps=4"),
])
def test_lengths_that_do_not_fit_are_clear_errors(llada, spec, message):
    with pytest.raises(dvlm.DvlmError, match=message):
        dvlm.generate(llada, prompts(1, 4, seed=0), sampler=spec)


def test_prompt_text_without_a_tokenizer_is_a_clear_error(llada):
    with pytest.raises(dvlm.DvlmError, match="no tokenizer"):
        dvlm.generate(llada, prompt="hello")


def test_cli_generate_json_and_errors():
    import subprocess
    import sys

    from typer.testing import CliRunner

    from dvlm.core.cli import app
    from tests.samplers.conftest import FIXTURES

    checkpoint = ["generate", "--checkpoint", str(FIXTURES / "llada_tiny")]
    ok = subprocess.run([sys.executable, "-m", "dvlm", *checkpoint, "--input-ids", "1,2,3,4,5;6,7", "--sampler",
                         "lavida-coco", "--set", "gen_length=16", "--set", "steps=8", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert len(out["token_ids"]) == 2 and len(out["token_ids"][0]) == 16
    assert out["nfe"] == 9 and out["tokens_per_forward"] == pytest.approx(16 / 9) and out["text"] is None
    bad = subprocess.run([sys.executable, "-m", "dvlm", *checkpoint, "--prompt", "hi"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "has no tokenizer files" in bad.stderr and "Traceback" not in bad.stderr
    for args, message in [
        (("--input-ids", "1,2", "--sampler", "lavda"), "unknown sampler preset 'lavda'"),
        (("--input-ids", "1,2", "--set", "stepz=3"), "has no field 'stepz'"),
        (("--input-ids", "1,x"), "comma-separated integers"),
        (("--input-ids", "1,2", "--prompt", "hi"), "exactly one of --prompt"),
    ]:
        result = CliRunner().invoke(app, [*checkpoint, *args])
        assert isinstance(result.exception, dvlm.DvlmError) and message in str(result.exception)


def test_cli_prompt_text_with_a_tokenizer_in_the_checkpoint(tmp_path, llada):
    import shutil

    from typer.testing import CliRunner

    from dvlm.core.cli import app
    from dvlm.core.tiny_tokenizer import save_tiny_tokenizer_for
    from tests.samplers.conftest import FIXTURES

    for name in ("config.json", "model.safetensors"):
        shutil.copy(FIXTURES / "llada_tiny" / name, tmp_path / name)
    save_tiny_tokenizer_for(tmp_path, llada.params)
    result = CliRunner().invoke(app, ["generate", "--checkpoint", str(tmp_path), "--prompt", "Hello there",
                                      "--sampler", "llada-reference", "--set", "gen_length=8", "--set", "steps=8",
                                      "--set", "block_length=8", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert isinstance(out["text"][0], str) and len(out["token_ids"][0]) == 8


def test_prompt_and_draft_shapes_the_api_accepts(llada):
    spec = {"kind": "fixed_count", "gen_length": 8, "steps": 8}
    one = dvlm.generate(llada, [5, 6, 7], sampler=spec)  # one prompt as a plain list
    same = dvlm.generate(llada, torch.tensor([5, 6, 7]), sampler=spec)
    assert torch.equal(one.token_ids, same.token_ids) and one.token_ids.shape == (1, 8)
    both = dvlm.generate(llada, [[5, 6, 7], [8, 9]], draft=[[11, MASK, 12]], sampler=spec)  # one draft, two rows
    assert both.token_ids[:, 0].tolist() == [11, 11] and both.token_ids[:, 2].tolist() == [12, 12]
