#!/usr/bin/env bash
# LaViDa-LLaDA's main table (jacklishufan/LaViDa eval/run.sh @284ef5c; lavida.md §6), one task per run because
# the answer budgets differ (--gen_kwargs applies to every task of a run).
#
#   MODEL=/models/lavida-llada-v1.0-instruct bash benchmarks/eval/lavida_llada.sh
#
# Sampler: the `lavida` preset = LaViDa's lmms-eval wrapper: NFE 100% (one token per step), blocks of
# min(128, L), greedy low-confidence remasking, temperature 0, linear schedule (run.sh; irrelevant at K = L).
# Budgets L (max_new_tokens): LaViDa's edited task YAMLs (lavida.md §5 of lmms_eval.md): VQAv2/TextVQA/MMMU 16,
# DocVQA/InfoVQA 32, COCO 32, MathVista/MathVerse 100, MMBench 100 (stop at "ASSISTANT:"); the other tasks keep
# the lmms-eval 0.7.3 YAML's own budget (MME, ChartQA, AI2D, ScienceQA: 16).
# Departures:
# - cache: the preset runs LaViDa's Prefix-DLM cache (the paper's method). run.sh passed `refix_lm=True`, a
#   typo, so the published LLaDA numbers ran without it: CACHE=none reproduces that run.
# - MMBench: run.sh used LaViDa's mmbench_en_dev_lite copy; the 0.7.3 task of that name asks for 1024 tokens,
#   the recipe sets LaViDa's 100.
# - MathVista/MathVerse are scored by an OpenAI judge in lmms-eval (needs an API key).
here=$(dirname "${BASH_SOURCE[0]}"); source "$here/_common.sh"
OUT=${OUT:-results/eval/lavida_llada}
cache=${CACHE:-prefix}

lmms_task mme                                 lavida "cache=$cache"
lmms_task mmmu_val                            lavida "cache=$cache,max_new_tokens=16"
lmms_task vqav2_val_lite                      lavida "cache=$cache,max_new_tokens=16"
lmms_task mmbench_en_dev_lite                 lavida "cache=$cache,max_new_tokens=100,until=ASSISTANT:"
lmms_task textvqa_val                         lavida "cache=$cache,max_new_tokens=16"
lmms_task docvqa_val                          lavida "cache=$cache,max_new_tokens=32"
lmms_task chartqa_lite                        lavida "cache=$cache"
lmms_task infovqa_val_lite                    lavida "cache=$cache,max_new_tokens=32"
lmms_task scienceqa_full                      lavida "cache=$cache"
lmms_task ai2d                                lavida "cache=$cache"
lmms_task coco2017_cap_val_lite               lavida "cache=$cache,max_new_tokens=32"
lmms_task mathverse_testmini_vision_dominant  lavida "cache=$cache,max_new_tokens=100"
lmms_task mathvista_testmini_format           lavida "cache=$cache,max_new_tokens=100"
