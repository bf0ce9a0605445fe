# Shared by the evaluation recipes in this folder (sourced, not run).
#
#   MODEL=/models/<checkpoint folder>   (required) any folder dvlm.load_pretrained reads
#   NPROC=8                             processes = GPUs (default: every GPU nvidia-smi lists, else 1)
#   OUT=results/eval/<recipe>           where lmms-eval writes <date>_results.json (+ dvlm's <date>_dvlm_summary.json)
#   TASKS="mme mmmu_val"                run only these tasks of the recipe
#   LIMIT=20                            first N documents per task (a smoke test; not a real score)
#   BATCH=1                             generate batch per process (the seeds ran batch 1)
#   DRY_RUN=1                           print the commands instead of running them
#
# Offline: lmms-eval's built-in tasks read their data from the Hugging Face hub. Populate HF_HOME once on a
# machine with the hub, then run with HF_HOME=... HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 (README: "Real benchmarks").

set -euo pipefail
: "${MODEL:?set MODEL=/path/to/the checkpoint folder}"
if [ -z "${NPROC:-}" ]; then
  NPROC=$(nvidia-smi -L 2>/dev/null | wc -l || true)
  [ "${NPROC:-0}" -gt 0 ] || NPROC=1
fi
BATCH=${BATCH:-1}

# Runs one lmms-eval task over NPROC processes (one per GPU; without GPUs, accelerate needs --multi_gpu to start
# more than one process, and NPROC=1 runs plainly).
#   lmms_task TASK SAMPLER GEN_KWARGS
lmms_task() {
  local task=$1 sampler=$2 gen_kwargs=$3
  if [ -n "${TASKS:-}" ] && [[ " ${TASKS} " != *" ${task} "* ]]; then return 0; fi
  local launcher=(python)
  if [ "$NPROC" -gt 1 ]; then launcher=(accelerate launch --multi_gpu --num_processes "$NPROC"); fi
  local command=("${launcher[@]}" -m lmms_eval --model dvlm
    --model_args "pretrained=${MODEL},sampler=${sampler}"
    --tasks "$task" --batch_size "$BATCH" --gen_kwargs "$gen_kwargs"
    --output_path "${OUT}/${task}" --log_samples --verbosity DEBUG)
  if [ -n "${LIMIT:-}" ]; then command+=(--limit "$LIMIT"); fi
  if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "${command[@]}"; echo; else "${command[@]}"; fi
}
