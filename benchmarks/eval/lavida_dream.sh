#!/usr/bin/env bash
# LaViDa-Dream's main table (jacklishufan/LaViDa eval/run_dream.sh @284ef5c; lavida.md §3, §6): the task list
# and budgets of lavida_llada.sh with LaViDa's Dream sampler.
#
#   MODEL=/models/lavida-dream-v1.0-instruct bash benchmarks/eval/lavida_dream.sh
#
# Sampler: the `dream` preset with run_dream.sh's `alg=topk_margin, prefix_lm=True`: margin confidence, the
# Prefix-DLM cache, steps = max_new_tokens (NFE 100%: the preset keeps its steps / gen_length fraction),
# temperature 0 (the wrapper forces it). Dream decodes the whole answer as one block.
# Departure: dvlm applies no top-k filter (Dream under transformers < 5 silently used top_k = 50; greedy
# decoding makes it moot).
here=$(dirname "${BASH_SOURCE[0]}"); source "$here/_common.sh"
OUT=${OUT:-results/eval/lavida_dream}
dream="alg=topk_margin,cache=prefix"

lmms_task mme                                 dream "$dream"
lmms_task mmmu_val                            dream "$dream,max_new_tokens=16"
lmms_task vqav2_val_lite                      dream "$dream,max_new_tokens=16"
lmms_task mmbench_en_dev_lite                 dream "$dream,max_new_tokens=100,until=ASSISTANT:"
lmms_task textvqa_val                         dream "$dream,max_new_tokens=16"
lmms_task docvqa_val                          dream "$dream,max_new_tokens=32"
lmms_task chartqa_lite                        dream "$dream"
lmms_task infovqa_val_lite                    dream "$dream,max_new_tokens=32"
lmms_task scienceqa_full                      dream "$dream"
lmms_task ai2d                                dream "$dream"
lmms_task coco2017_cap_val_lite               dream "$dream,max_new_tokens=32"
lmms_task mathverse_testmini_vision_dominant  dream "$dream,max_new_tokens=100"
lmms_task mathvista_testmini_format           dream "$dream,max_new_tokens=100"
