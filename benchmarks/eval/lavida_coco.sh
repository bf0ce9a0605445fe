#!/usr/bin/env bash
# LaViDa's COCO captioning speed/quality setting (jacklishufan/LaViDa eval/run_coco.sh and run_coco_dream.sh
# @284ef5c; paper Table 3, lavida.md §6): 500 val2017 images (coco2017_cap_val_lite), L = 32 tokens in one block,
# Prefix-DLM cache, shift schedule alpha = 0.33 (run_coco.sh), one process, batch 1 (the paper's latency is per image).
#
#   MODEL=/models/lavida-llada-v1.0-instruct bash benchmarks/eval/lavida_coco.sh            # K = 16 (NFE 50%)
#   MODEL=/models/lavida-llada-v1.0-instruct STEPS="32 24 16 8" bash benchmarks/eval/lavida_coco.sh  # the sweep
#   MODEL=/models/lavida-dream-v1.0-instruct DREAM=1 bash benchmarks/eval/lavida_coco.sh    # run_coco_dream.sh
#
# Sampler: the `lavida-coco` preset (LLaDA) = run_coco.sh's `prefix_lm=True, step_ratio=0.5, schedule=shift,
# schedule__shift=0.33`; with DREAM=1 the `dream` preset with run_coco_dream.sh's `alg=topk_margin` and the same
# cache, schedule and steps. Each K writes its own results folder and dvlm summary (samples/s beside CIDEr).
# Departure: lmms-eval's coco_* metrics need java; without it, use the java-free CIDEr task copy (README).
here=$(dirname "${BASH_SOURCE[0]}"); source "$here/_common.sh"
NPROC=${NPROC_COCO:-1}
for steps in ${STEPS:-16}; do
  OUT=${OUT_BASE:-results/eval/lavida_coco}/K${steps}
  if [ -n "${DREAM:-}" ]; then
    lmms_task coco2017_cap_val_lite dream \
      "max_new_tokens=32,steps=${steps},alg=topk_margin,cache=prefix,schedule=shift,schedule.alpha=0.33"
  else
    lmms_task coco2017_cap_val_lite lavida-coco "max_new_tokens=32,steps=${steps}"
  fi
done
