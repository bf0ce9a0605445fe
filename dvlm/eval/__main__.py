from dvlm.eval import TASKS_DIR

print(TASKS_DIR)  # python -m dvlm.eval: the folder for lmms-eval --include_path
