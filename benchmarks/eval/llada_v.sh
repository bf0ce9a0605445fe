#!/usr/bin/env bash
# LLaDA-V's evaluation (ML-GSAI/LLaDA-V eval/scripts/evaluate.sh @2252769; backbones.md §5.7): one run per task
# with its gen_length / block_length / steps, greedy, low-confidence remasking, no CFG, stop at <|eot_id|>.
#
#   MODEL=/models/LLaDA-V bash benchmarks/eval/llada_v.sh
#
# Sampler: the `llada-v` preset (no cache, stop at <|eot_id|> with early stop, eos/bos/header tokens banned at
# masked positions) with each task's lengths from evaluate.sh:
#   multiple choice and short answers: 2 / 2 / 2;  chartqa: 16 / 16 / 16, stop at "\n";
#   docvqa_val, infovqa_val: 32 / 32 / 16;  mathvista_testmini: 96 / 96 / 48;  mathverse_testmini_vision: 64 / 64 / 32.
# Departures:
# - think_mode: evaluate.sh appended " /no_think" (" /think" for MathVista/MathVerse) to each question;
#   lmms-eval 0.7.3 has no flag for it: add it to the `post_prompt` of a local copy of the task to match.
# - LLaDA-V stripped a trailing "." from answers; dvlm does not (it matters only to exact-match scorers).
# - videomme and mlvu_dev need their videos in HF_HOME (lmms-eval skips the download when the folder exists).
# - MathVista/MathVerse are scored by an OpenAI judge in lmms-eval (needs an API key).
# - mathverse.sh's Fast-dLLM variant: use the `fast-dllm` sampler preset instead (a different sampler kind).
here=$(dirname "${BASH_SOURCE[0]}"); source "$here/_common.sh"
OUT=${OUT:-results/eval/llada_v}
short="max_new_tokens=2,block_length=2,steps=2"

for task in mmmu_val mmmu_pro_standard mmmu_pro_vision mmstar ai2d seedbench mmbench_en_dev muirbench videomme \
            mlvu_dev mme realworldqa; do
  lmms_task "$task" llada-v "$short"
done
lmms_task chartqa                    llada-v 'max_new_tokens=16,block_length=16,steps=16,until=["\n"]'
lmms_task docvqa_val                 llada-v "max_new_tokens=32,block_length=32,steps=16"
lmms_task infovqa_val                llada-v "max_new_tokens=32,block_length=32,steps=16"
lmms_task mathvista_testmini         llada-v "max_new_tokens=96,block_length=96,steps=48"
lmms_task mathverse_testmini_vision  llada-v "max_new_tokens=64,block_length=64,steps=32"
