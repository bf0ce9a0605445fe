"""Hub ids where a folder is expected (``GSAI-ML/LLaDA-V``, ``Dream-org/Dream-v0-Instruct-7B``).

``resolve_folder`` returns a local folder unchanged; an ``owner/name`` that is not a local folder is fetched
with ``huggingface_hub.snapshot_download`` (configs, tokenizer files and safetensors shards only: never the
repository's Python files, which dvlm never runs). With ``HF_HUB_OFFLINE=1`` the local Hugging Face cache
answers, and a missing snapshot is an error naming the id and the cache searched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dvlm.core.errors import CheckpointError

#: what a snapshot needs: configs, tokenizer files, weights (no *.py, no *.bin pickles)
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve_folder(path: str | Path) -> Path:
    """A local checkpoint folder for ``path``: a folder, or a hub id resolved through huggingface_hub."""
    folder = Path(path)
    if folder.exists() or not _HUB_ID.fullmatch(str(path)):
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(str(path), allow_patterns=ALLOW_PATTERNS))
    except LocalEntryNotFoundError:
        from huggingface_hub.constants import HF_HUB_CACHE

        how = ("HF_HUB_OFFLINE=1 is set and the local cache has no snapshot of it" if offline
               else "it is not downloaded and the hub cannot be reached")
        raise CheckpointError(f"{path}: not a local folder, and as a hub id {how} (cache: {HF_HUB_CACHE}). "
                              f"Download it once online (huggingface-cli download {path}), or pass a folder.") from None
    except Exception as err:  # unknown repository, gated, no network
        raise CheckpointError(f"{path}: not a local folder, and the hub id cannot be fetched: "
                              f"{type(err).__name__}: {err}") from None
