"""``toy-lab``: a lab's private folder format for the ``toy_mdm`` backbone, read and written by dvlm's
``load_pretrained`` and ``dvlm convert`` through the ``checkpoint_layouts`` family.

A folder holds ``config.json`` (``model_type: toy_mdm`` with ``width``, ``layers``, ``heads``, ``vocab_size``,
``max_length``, the special-token ids and ``torch_dtype``), ``model.safetensors`` with every tensor named
``toy.<backbone parameter>``, and optionally tokenizer files (then the tokenizer's own chat template applies).
"""

from pathlib import Path

from dvlm.core.checkpoint import check_destination, dtype_name, write_json
from dvlm.core.checkpoint_config import ConfigFile, read_optional_json
from dvlm.core.errors import CheckpointError
from dvlm.core.interfaces import CheckpointReading
from dvlm.core.specs import parse_spec
from dvlm.core.tokenizer import has_tokenizer, load_tokenizer

PREFIX = "toy."
WEIGHTS = "model.safetensors"
FIELDS = ("width", "layers", "heads", "vocab_size", "max_length", "mask_token_id", "eos_token_id", "bos_token_id")


class ToyLabLayout:
    name = "toy-lab"
    summary = "the toy lab's folders (config.json: model_type 'toy_mdm'; tensors toy.*)"

    def __init__(self, params) -> None:
        self.params = params

    def detect(self, folder: Path) -> bool:
        return read_optional_json(folder / "config.json").get("model_type") == "toy_mdm"

    def read(self, folder: Path) -> CheckpointReading:
        config = ConfigFile.read(folder)
        backbone = {"kind": "toy_mdm", "dtype": config.dtype(),
                    **{field: config.require(field) for field in FIELDS if field != "bos_token_id"},
                    "bos_token_id": config.data.get("bos_token_id")}
        tokenizer = load_tokenizer(folder) if has_tokenizer(folder) else None
        template = {"kind": "tokenizer"} if getattr(tokenizer, "chat_template", None) else None
        spec = parse_spec({"backbone": backbone, "chat_template": template}, source=str(config.path),
                          as_type="model")
        return CheckpointReading(spec=spec, rename=lambda name: "backbone." + name.removeprefix(PREFIX),
                                 tokenizer=tokenizer, dtype_source=config.dtype_source())

    def write(self, model, folder: Path, max_shard_bytes: int = 4 << 30, overwrite: bool = False) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        if model.spec.backbone.kind != "toy_mdm" or model.vision is not None:  # refuse before writing anything
            raise CheckpointError(f"the '{self.name}' layout holds a text-only toy_mdm model; this one has a "
                                  f"'{model.spec.backbone.kind}' backbone; write it with --to dvlm")
        check_destination(folder, overwrite)  # never replace a checkpoint unasked
        folder.mkdir(parents=True, exist_ok=True)
        params = model.backbone.params
        tensors = {PREFIX + name: t.detach().contiguous().cpu() for name, t in model.backbone.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(folder))
        config = {"model_type": "toy_mdm", "torch_dtype": dtype_name(model.backbone),
                  **{field: getattr(params, field) for field in FIELDS}}
        write_json(folder / "config.json", config)
