"""``TrainSpec``: everything a training run computes from (the ``spec: train`` document).

Non-semantic fields (output folder, device, checkpoint cadence, logging, data location) change where
and how a run happens, not what it computes, and are left out of the spec hash. The number of
processes is not in the spec at all: ``global_batch_size`` is, and each process accumulates
``global / (micro · processes)`` micro-batches, so one spec gives the same run on 1 or N processes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dvlm.core.specs import Family, ModelSpec, Spec, non_semantic
from dvlm.data.llava import MultiTurn
from dvlm.plugins.masking.fim import FimParams


class DataSpec(Spec):
    """LLaVA-format conversations in a local folder; by default the synthetic shapes dataset."""

    root: str | None = non_semantic(None)
    """Folder with the JSON files and images. None: generate the synthetic shapes dataset
    (``synth_images``, ``synth_seed``) under ``<out_dir>/data``."""
    train_file: str = "train.json"
    """Training rows, relative to ``root``."""
    val_file: str | None = "val.json"
    """Evaluation rows, relative to ``root``; None for no evaluation."""
    image_folder: str = ""
    """Image paths in the rows are relative to ``root/image_folder``."""
    synth_images: int = Field(600, ge=3)
    """Images of the generated synthetic dataset (when ``root`` is None)."""
    synth_seed: int = 0
    """Seed of the generated synthetic dataset."""
    multi_turn: MultiTurn = "sample_round"
    """Multi-turn policy: ``sample_round`` (LaViDa code) | ``sample_round_with_history`` (LaViDa paper)
    | ``all_rounds`` (LLaDA-V)."""
    extra_padding: int = Field(0, ge=0)
    """LaViDa length augmentation: up to this many extra EOS targets per batch (LaViDa: 128); 0 = off."""
    fim: FimParams | None = None
    """LaViDa-FIM infilling augmentation of answers; None = off."""
    max_length: int | None = Field(None, ge=8)
    """Truncate each row to this many tokens after the image features are spliced in (LaViDa/LLaDA-V
    ``model_max_length``); None = no limit. ``dvlm train --plan`` sizes activations at this length."""
    group_by_length: bool = False
    """Fill each optimizer step's micro-batches with examples of similar length, images and text apart
    (LLaVA ``group_by_modality_length``): less padding, the same examples per step."""
    num_workers: int = non_semantic(0, ge=0)
    """DataLoader worker processes that read and tokenise rows ahead of the step (0 = in the main process)."""
    malformed: Literal["skip", "fail"] = "skip"
    """Malformed rows (missing image, no answer turn, empty answer, ...) are counted and reported;
    ``skip`` leaves them out, ``fail`` stops before training."""


class OptimizerSpec(Spec):
    """AdamW over the trainable parts, one learning rate per part."""

    lr: float = Field(1e-3, gt=0)
    """Peak learning rate of every part without its own ``part_lr``."""
    part_lr: dict[str, float] = {}
    """Per-part peak learning rate, e.g. ``{vision: 2.0e-6}`` (LaViDa stage 2). Parts: vision,
    projector, backbone (a text-only model has only backbone)."""
    frozen: list[str] = []
    """Parts not trained, e.g. ``[vision, backbone]`` for stage 1 (projector only)."""
    weight_decay: float = Field(0.0, ge=0)
    """Decoupled weight decay (LaViDa: 0)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    eps: float = Field(1e-8, gt=0)
    """Adam epsilon."""
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    """Linear warmup over this fraction of the steps (LaViDa: 0.03)..."""
    warmup_steps: int | None = Field(None, ge=0)
    """...or over exactly this many steps, when set."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """Cosine decay from the peak to ``min_lr_ratio · peak`` (LaViDa stage 2: 0.1)."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the global gradient norm to this; None = no clipping."""


class ParallelismSpec(Spec):
    """How the processes split the model: ``ddp`` replicates it (small models), ``fsdp`` shards every
    transformer block of the backbone and the vision encoder over the processes (FSDP2 ``fully_shard``)."""

    kind: Literal["ddp", "fsdp"] = "ddp"
    """``ddp``: full weights, gradients and AdamW states on every process; ``fsdp``: each 1/N-th."""
    cpu_offload: bool = False
    """fsdp: keep the sharded parameters, gradients and optimizer states in CPU memory (slower; for a
    model that does not fit the GPUs otherwise)."""
    reshard_after_forward: bool = True
    """fsdp: free each block's gathered parameters after its forward and gather them again for the
    backward (ZeRO-3); False keeps them until the backward (ZeRO-2-like: more memory, less traffic)."""


class LoraSpec(Spec):
    """Low-rank adapters (``peft``) on chosen linear layers; the rest of the adapted parts stay frozen."""

    rank: int = Field(16, ge=1)
    """Adapter rank r."""
    alpha: float = Field(32.0, gt=0)
    """Scale ``alpha / r`` of the adapter update."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]
    """Names (last component) of the linear layers to adapt in the backbone (LLaDA names by default; Dream:
    q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)."""
    parts: list[Literal["backbone", "vision"]] = ["backbone"]
    """Parts that get adapters; the projector is always trained in full."""
    vision_target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    """Linear layers adapted in the vision encoder when ``vision`` is in ``parts`` (SigLIP names)."""


class PlanSpec(Spec):
    """What ``dvlm train --plan`` assumes: the GPU it must fit."""

    gpu_memory_gb: float = non_semantic(80.0, gt=0)
    """Memory of one GPU, in GB (10^9 bytes); the plan warns when a rank needs more."""


class EvalSpec(Spec):
    """Periodic evaluation on the validation rows: masked-diffusion loss and exact-match answers."""

    every: int = non_semantic(0, ge=0)
    """Evaluate every N optimizer steps and at the end; 0 = only at the end."""
    max_examples: int = Field(64, ge=1)
    """Validation rows used (the first N)."""
    exact_match: bool = True
    """Also generate answers and report exact match (needs a sampler)."""
    sampler: str = "llada-reference"
    """Sampler preset or spec file for exact-match generation."""
    sampler_overrides: list[str] = ["gen_length=8", "steps=8", "block_length=8"]
    """``key=value`` overrides of the sampler (answers of the synthetic task are short)."""
    batch_size: int = non_semantic(16, ge=1)
    """Rows per evaluation batch."""


class TrainSpec(Spec):
    """A training run: model, masking, data, optimiser, batch, steps and seed."""

    spec: Literal["train"] = "train"
    model: ModelSpec | None = None
    """Model to build with random weights (the vision encoder loads its ``pretrained`` weights)."""
    init_from: str | None = non_semantic(None)
    """Checkpoint folder to start from (any layout ``dvlm.load_pretrained`` reads). With ``model`` too, a
    backbone-only checkpoint (e.g. LLaDA-8B-Instruct) gives the backbone and ``model`` the vision encoder,
    projector and layout around it (a stage-1 run); a whole vision-language checkpoint (a stage-1 export)
    gives every weight and ``model`` the image layout, chat template and other settings, its backbone,
    vision encoder and projector matching the checkpoint's (a stage-2 run)."""
    chat_template: Family["chat_templates"] | None = None
    """How conversations become prompt text; None: the model's (``model.chat_template`` or the checkpoint's)."""
    tokenizer: str | None = non_semantic(None)
    """Tokenizer folder; None: the model's (``model.tokenizer``, the checkpoint's), else a tiny character
    tokenizer made for the backbone's special tokens (for randomly initialised models)."""
    masking: Family["masking_strategies"]
    """Training-time masking strategy (uniform, complementary) and its loss weighting."""
    data: DataSpec = DataSpec()
    """Training and validation data."""
    optimizer: OptimizerSpec = OptimizerSpec()
    """Optimiser, learning rates, schedule and clipping."""
    steps: int = Field(100, ge=1)
    """Optimizer steps (unless ``epochs`` is set)."""
    epochs: float | None = Field(None, gt=0)
    """When set, the run lasts ``ceil(epochs · training rows / global_batch_size)`` steps instead of
    ``steps`` (the seeds' recipes count epochs of their data)."""
    global_batch_size: int = Field(16, ge=1)
    """Examples per optimizer step, over all processes and accumulation steps."""
    micro_batch_size: int = Field(8, ge=1)
    """Examples per forward pass and process (each example gives 1 or 2 rows, see masking)."""
    seed: int = 0
    """Seed of everything random: init, data order, augmentation, masks."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``bf16``: bf16 compute over fp32 trained weights (DDP: autocast; FSDP: bf16 gathered parameters,
    fp32 gradient reduction and optimizer states) and frozen weights stored in bf16; ``auto``: bf16 on
    CUDA, fp32 elsewhere."""
    activation_checkpointing: list[Literal["backbone", "vision"]] = non_semantic([])
    """Parts whose transformer blocks are recomputed in the backward pass (memory for time; same gradients)."""
    parallelism: ParallelismSpec = non_semantic(ParallelismSpec())
    """``ddp`` or ``fsdp`` (and its options): how the processes share the work; not what is computed."""
    lora: LoraSpec | None = None
    """Train low-rank adapters instead of the adapted parts' weights; None = full fine-tuning."""
    world_size: int | None = non_semantic(None, ge=1)
    """Processes that ``--plan`` sizes memory for; a run takes its world size from ``torchrun``."""
    plan: PlanSpec = non_semantic(PlanSpec())
    """What ``--plan`` checks against."""
    eval: EvalSpec = EvalSpec()
    """Periodic evaluation."""
    checkpoint_every: int = non_semantic(0, ge=0)
    """Write a checkpoint every N steps (and always at the end); 0 = only at the end."""
    keep_checkpoints: int = non_semantic(2, ge=1)
    """How many of the latest checkpoints to keep."""
    log_every: int = non_semantic(1, ge=1)
    """Log loss and throughput every N steps."""
    out_dir: str = non_semantic("runs/train")
    """Run folder: checkpoints, metrics.jsonl, generated data."""
    device: str = non_semantic("auto")
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``; under torchrun each process takes the GPU of
    its local rank."""

    @model_validator(mode="after")
    def _check(self) -> "TrainSpec":
        if self.model is None and self.init_from is None:
            raise ValueError("set `model` (build with random weights), `init_from` (a checkpoint), or both (a "
                             "backbone checkpoint with the vision parts of `model` around it)")
        if self.lora is not None and set(self.lora.parts) & set(self.optimizer.frozen):
            both = sorted(set(self.lora.parts) & set(self.optimizer.frozen))
            raise ValueError(f"{both} are in both lora.parts (train adapters) and optimizer.frozen (train "
                             f"nothing); remove them from one of the two")
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(f"global_batch_size {self.global_batch_size} must be a multiple of "
                             f"micro_batch_size {self.micro_batch_size}")
        return self
