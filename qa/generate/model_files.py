"""Your own model files (`QA_MODEL=PATH`): a .gguf file for llama.cpp, or a transformers model
folder, checked before anything loads so that a bad path is one clear line."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from qa.config import MODEL_NAMES, Backend
from qa.errors import SettingsError

# GGUF metadata value types (gguf spec): fixed sizes; 8 is a string, 9 an array.
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


@dataclass(frozen=True)
class OwnModel:
    """A checked model path: what it is, its architecture and the backend that runs it."""

    path: Path
    kind: Literal["gguf", "folder"]
    architecture: str
    backend: Backend

    @property
    def name(self) -> str:
        return self.path.name


def own_model(model: str, backend: Backend) -> OwnModel | None:
    """None for a packaged model name; else the checked path, or SettingsError (one line).

    A .gguf file runs on llama.cpp whatever the backend (transformers would dequantise it on
    every load); a folder on the backend asked for, which must be a transformers one."""
    if model in MODEL_NAMES or backend == "openai":
        return None
    path = Path(model).expanduser().resolve()
    if path.is_dir():
        return _folder(path, backend)
    if not path.is_file():
        raise SettingsError(f"model file not found: {path}")
    if path.suffix.lower() != ".gguf":
        raise SettingsError(f"{path} is not a .gguf file or a model folder")
    return OwnModel(path, "gguf", _gguf_architecture(path), "llama.cpp")


def check_gguf(model: OwnModel) -> None:
    """SettingsError unless llama.cpp can read the file's vocabulary and it has a chat
    template (a load of the vocabulary only, under a second)."""
    import llama_cpp

    try:
        llm = llama_cpp.Llama(model_path=str(model.path), vocab_only=True, verbose=False)
    except ValueError:
        raise SettingsError(f"{model.path}: llama.cpp {llama_cpp.__version__} cannot load it "
                            f"(architecture {model.architecture!r} unsupported, or a damaged "
                            "file)") from None
    if not llm.metadata.get("tokenizer.chat_template"):
        raise SettingsError(f"{model.path} carries no chat template "
                            "(tokenizer.chat_template); use an instruct/chat model")


def _gguf_architecture(path: Path) -> str:
    """`general.architecture` from the file's header (read without loading tensors)."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise SettingsError(f"{path} is not a GGUF file (no GGUF header)")
        try:
            _version, _tensors, count = struct.unpack("<IQQ", _exactly(fh, 20))
            for _ in range(count):
                key = _string(fh)
                kind = struct.unpack("<I", _exactly(fh, 4))[0]
                if key == "general.architecture" and kind == _STRING:
                    return _string(fh)
                _skip(fh, kind)
        except (struct.error, EOFError, UnicodeDecodeError, KeyError):
            raise SettingsError(f"{path}: damaged GGUF header") from None
    raise SettingsError(f"{path}: the GGUF header names no architecture")


def _exactly(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _string(fh: BinaryIO) -> str:
    size = struct.unpack("<Q", _exactly(fh, 8))[0]
    return _exactly(fh, size).decode("utf-8")


def _skip(fh: BinaryIO, kind: int) -> None:
    """Move past one value of the given type."""
    if kind == _STRING:
        fh.seek(struct.unpack("<Q", _exactly(fh, 8))[0], io.SEEK_CUR)
    elif kind == _ARRAY:
        item, count = struct.unpack("<IQ", _exactly(fh, 12))
        if item in _SIZES:
            fh.seek(_SIZES[item] * count, io.SEEK_CUR)
        else:
            for _ in range(count):
                _skip(fh, item)
    else:
        fh.seek(_SIZES[kind], io.SEEK_CUR)


def _folder(path: Path, backend: Backend) -> OwnModel:
    """A transformers folder: config.json of a causal LM transformers knows (no remote code),
    safetensors weights and a chat template."""
    if backend == "llama.cpp":
        raise SettingsError(f"{path} is a model folder, which runs on the transformers "
                            "backends; give llama.cpp a .gguf file")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        architecture = str(config["model_type"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SettingsError(f"{path} has no readable config.json with a model_type") from None
    if not any(path.glob("*.safetensors")):
        pickled = " (pickled .bin weights are not loaded)" * any(path.glob("*.bin"))
        raise SettingsError(f"{path} holds no .safetensors weights{pickled}")
    if not _has_template(path):
        raise SettingsError(f"{path} has no chat template (chat_template.jinja, or "
                            "chat_template in tokenizer_config.json)")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if architecture not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise SettingsError(f"{path}: architecture {architecture!r} is not a causal language "
                            "model this transformers version supports")
    if backend == "transformers-int8" and architecture != "qwen2":
        raise SettingsError(f"{path}: the transformers-int8 backend runs Qwen2 models only, "
                            f"not {architecture!r}; set QA_BACKEND=transformers")
    return OwnModel(path, "folder", architecture, backend)


def _has_template(path: Path) -> bool:
    if any((path / name).is_file() for name in TEMPLATE_FILES):
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))
