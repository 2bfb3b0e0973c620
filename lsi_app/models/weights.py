"""Safe loading of model files: TorchScript detection and weights-only state_dict loading.

Unpickling a whole model object can run arbitrary code, so this module
loads ``torch.save`` files only with ``weights_only=True`` and never falls
back to full unpickling.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch

#: Entries of the ``state_dict``-like dict inside a training checkpoint, in lookup order.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")

#: Key prefixes added by wrappers: ``nn.DataParallel`` and ``DistributedDataParallel``
#: add ``module.``, ``torch.compile`` adds ``_orig_mod.``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

#: Bytes read at a time while hashing a weights file.
_HASH_CHUNK_BYTES = 1 << 20

PICKLED_MODEL_ADVICE = (
    "re-save it with torch.save(model.state_dict(), ...) and pass --model torchvision:ARCH:FILE, "
    "or export TorchScript with torch.jit.script(model).save(...)"
)


def is_torchscript(path: Path) -> bool:
    """Return whether ``path`` is a TorchScript archive, judged by its content, not its suffix.

    TorchScript archives are zip files with ``<archive>/code/`` entries and a
    ``<archive>/constants.pkl``. A zip written by ``torch.save`` has a
    ``data.pkl`` and no ``code/`` entries.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    entries = [name.split("/", 2) for name in names]
    has_code = any(len(parts) >= 3 and parts[1] == "code" for parts in entries)
    has_constants = any(len(parts) == 2 and parts[1] == "constants.pkl" for parts in entries)
    return has_code and has_constants


def file_digest(path: Path) -> str:
    """Return the SHA-256 hex digest of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _is_tensor_dict(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _find_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if _is_tensor_dict(loaded):
        return dict(loaded)
    if isinstance(loaded, dict):
        for key in CHECKPOINT_KEYS:
            if _is_tensor_dict(loaded.get(key)):
                return dict(loaded[key])
        keys = ", ".join(repr(key) for key in list(loaded)[:8])
        raise ValueError(
            f"weights file {path} contains a dict with keys {keys} but no state_dict; save "
            f"model.state_dict() itself or a checkpoint dict with one of the entries {', '.join(CHECKPOINT_KEYS)}"
        )
    raise ValueError(
        f"weights file {path} contains a {type(loaded).__name__}, not a state_dict; "
        "save it with torch.save(model.state_dict(), ...)"
    )


def _strip_wrapper_prefix(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state_dict):
            stripped = {key[len(prefix) :]: value for key, value in state_dict.items()}
            return stripped, [f"stripped the {prefix!r} prefix from {len(stripped)} state_dict keys"]
    return state_dict, []


def load_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Load a state_dict with ``torch.load(..., weights_only=True)``, never with full unpickling.

    Parameters
    ----------
    path : Path
        A file written by ``torch.save``: a state_dict, or a checkpoint dict
        whose ``state_dict``, ``model_state_dict`` or ``model`` entry is one.

    Returns
    -------
    state_dict : dict of str to Tensor
        On the CPU. A ``module.`` (DataParallel) or ``_orig_mod.``
        (``torch.compile``) prefix shared by every key is removed.
    notes : list of str
        One line per change made to the keys.

    Raises
    ------
    ValueError
        When the file is missing, is a TorchScript archive, contains a
        pickled model object, or contains no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} not found; pass the path of a file written by torch.save")
    if is_torchscript(path):
        raise ValueError(f"weights file {path} is a TorchScript archive; pass it as --model {path} on its own")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(
            f"{path} contains a pickled model object, which is not loaded because unpickling can run "
            f"arbitrary code; {PICKLED_MODEL_ADVICE}"
        ) from None
    except (RuntimeError, KeyError, EOFError, OSError, ValueError) as error:
        raise ValueError(
            f"weights file {path} could not be read by torch.load ({type(error).__name__}: {error}); "
            "pass a file written by torch.save"
        ) from error
    state_dict = _find_state_dict(loaded, path)
    return _strip_wrapper_prefix(state_dict)
