"""The seeds' evaluation recipes (``benchmarks/eval/*.sh``): their commands, printed with ``DRY_RUN=1``, name
tasks that lmms-eval 0.7.3 has, and sampler settings that dvlm accepts, parsed the way lmms-eval parses them."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from dvlm.eval.gen_kwargs import sampler_for
from dvlm.eval.model_args import parse_model_args

RECIPES = Path(__file__).resolve().parents[2] / "benchmarks" / "eval"
SCRIPTS = ["lavida_llada.sh", "lavida_dream.sh", "lavida_coco.sh", "llada_v.sh"]


def commands(script: str, **env: str) -> list[list[str]]:
    done = subprocess.run(["bash", str(RECIPES / script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DRY_RUN": "1", "MODEL": "/models/checkpoint", **env})
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines()]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.fixture(scope="module")
def parse_args_string():
    pytest.importorskip("lmms_eval")
    from lmms_eval.utils import simple_parse_args_string

    return simple_parse_args_string


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_command_is_a_dvlm_run_with_settings_dvlm_accepts(script, parse_args_string):
    runs = commands(script, NPROC="8")
    assert runs
    for command in runs:
        model_args = parse_model_args(parse_args_string(flag(command, "--model_args")))
        assert model_args.pretrained == "/models/checkpoint"
        params, _ = sampler_for(model_args.sampler, parse_args_string(flag(command, "--gen_kwargs")))
        assert params.temperature == 0  # every seed evaluated greedily
        assert flag(command, "--model") == "dvlm" and "--log_samples" in command
        launcher = command[: command.index("-m")]
        if script == "lavida_coco.sh":  # latency per image: one process
            assert launcher == ["python"]
        else:
            assert launcher == ["accelerate", "launch", "--multi_gpu", "--num_processes", "8"]


def test_recipes_carry_the_seeds_settings(parse_args_string):
    def settings(script, **env):
        out = {}
        for command in commands(script, **env):
            model_args = parse_model_args(parse_args_string(flag(command, "--model_args")))
            out[flag(command, "--output_path")] = sampler_for(model_args.sampler,
                                                              parse_args_string(flag(command, "--gen_kwargs")))
        return {Path(path).name if "coco" not in path else path: value for path, value in out.items()}

    coco = settings("lavida_coco.sh", STEPS="32 8")  # one run per K, each in its own folder
    assert {path: (p.gen_length, p.steps, p.block_length, p.cache.kind, p.schedule.alpha)
            for path, (p, _) in coco.items()} == {
        "results/eval/lavida_coco/K32/coco2017_cap_val_lite": (32, 32, 32, "prefix", 0.33),
        "results/eval/lavida_coco/K8/coco2017_cap_val_lite": (32, 8, 32, "prefix", 0.33)}
    dream_coco = settings("lavida_coco.sh", DREAM="1")
    (p, _), = dream_coco.values()
    assert (p.kind, p.alg, p.gen_length, p.steps, p.schedule.alpha) == ("dream", "topk_margin", 32, 16, 0.33)
    llada = settings("lavida_llada.sh", CACHE="none")  # run.sh's typo'd run: no prefix cache
    mmmu, _ = llada["mmmu_val"]
    assert (mmmu.gen_length, mmmu.steps, mmmu.cache.kind) == (16, None, "none")
    assert llada["mmbench_en_dev_lite"][1] == ["ASSISTANT:"]
    dream = settings("lavida_dream.sh")
    assert all(p.alg == "topk_margin" and p.cache.kind == "prefix" and p.steps == p.gen_length
               for p, _ in dream.values())
    llada_v = settings("llada_v.sh")
    assert (llada_v["mmmu_val"][0].gen_length, llada_v["mmmu_val"][0].steps) == (2, 2)
    chart, stops = llada_v["chartqa"]
    assert (chart.gen_length, chart.block_length, chart.steps, stops) == (16, 16, 16, ["\n"])
    assert (llada_v["mathvista_testmini"][0].gen_length, llada_v["mathvista_testmini"][0].steps) == (96, 48)


def test_tasks_filter_and_limit(parse_args_string):
    runs = commands("llada_v.sh", TASKS="mme chartqa", LIMIT="5", NPROC="1")
    assert [flag(c, "--tasks") for c in runs] == ["mme", "chartqa"]
    assert all(flag(c, "--limit") == "5" and c[0] == "python" for c in runs)


@pytest.mark.slow
def test_every_recipe_task_is_an_lmms_eval_task():
    pytest.importorskip("lmms_eval")
    from lmms_eval.tasks import TaskManager

    known = set(TaskManager("ERROR").all_tasks)
    missing = {flag(c, "--tasks") for script in SCRIPTS for c in commands(script)} - known
    assert not missing, f"not tasks of the installed lmms-eval: {sorted(missing)}"
