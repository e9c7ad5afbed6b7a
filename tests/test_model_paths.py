"""QA_MODEL as a path: a .gguf file (llama.cpp) or a transformers folder, checked at start-up:
a bad path is one line and exit status 2 from `qa ask`, `qa serve` and `python app.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import SettingsError
from qa.generate.model_files import OwnModel, own_model
from qa.generate.models import GENERATORS, assemble_gguf, converted_dir, is_installed
from qa.generate.registry import check_model, describe
from tests.conftest import ROOT
from tests.test_app import MEMBERS, free_port

NAMES = "qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def gguf_file(path: Path, architecture: str, template: bool = True) -> Path:
    """A GGUF file with a header (and no tensors) naming architecture."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    if template:
        writer.add_chat_template("{{ messages[0]['content'] }}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def model_folder(path: Path, model_type: str = "qwen2", weights: str = "model.safetensors",
                 template: bool = True) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    if weights:
        (path / weights).write_bytes(b"\0" * 16)
    if template:
        (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    return path


def test_packaged_names_are_no_paths() -> None:
    for name in GENERATORS:
        assert own_model(name, "transformers-int8") is None
    assert own_model("/anything", "openai") is None  # a server's model is its own business


def test_bad_folders_are_one_clear_line(tmp_path: Path) -> None:
    cases = [
        (model_folder(tmp_path / "a", weights=""), "transformers-int8",
         " holds no .safetensors weights"),
        (model_folder(tmp_path / "b", weights="pytorch_model.bin"), "transformers",
         " holds no .safetensors weights (pickled .bin weights are not loaded)"),
        (model_folder(tmp_path / "c", template=False), "transformers",
         " has no chat template (chat_template.jinja, or chat_template in "
         "tokenizer_config.json)"),
        (model_folder(tmp_path / "d", model_type="nosuchlm"), "transformers",
         ": architecture 'nosuchlm' is not a causal language model this transformers version "
         "supports"),
        (model_folder(tmp_path / "e", model_type="llama"), "transformers-int8",
         ": the transformers-int8 backend runs Qwen2 models only, not 'llama'; set "
         "QA_BACKEND=transformers"),
        (model_folder(tmp_path / "f"), "llama.cpp",
         " is a model folder, which runs on the transformers backends; give llama.cpp a .gguf "
         "file"),
        (tmp_path / "empty", "transformers", " has no readable config.json with a model_type"),
    ]
    (tmp_path / "empty").mkdir()
    for folder, backend, message in cases:
        with pytest.raises(SettingsError) as caught:
            own_model(str(folder), backend)  # type: ignore[arg-type]
        assert str(caught.value) == f"{folder}{message}"


def test_a_good_folder_passes_the_check(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "own")
    assert own_model(str(folder), "transformers-int8") == OwnModel(
        folder, "folder", "qwen2", "transformers-int8")
    (folder / "tokenizer_config.json").unlink()
    (folder / "chat_template.jinja").write_text("{{ x }}")
    assert own_model(str(folder), "transformers") == OwnModel(
        folder, "folder", "qwen2", "transformers")
    settings = Settings.from_env(model=str(folder))
    assert describe(settings)["where"] == str(folder)


def test_bad_gguf_files_are_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="the GGUF check loads the vocabulary with llama.cpp")
    import llama_cpp

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF\x03\x00\x00\x00")
    alien = gguf_file(tmp_path / "alien.gguf", "nosucharch")
    cases = [
        (tmp_path / "missing.gguf", f"model file not found: {tmp_path / 'missing.gguf'}"),
        (text, f"{text} is not a .gguf file or a model folder"),
        (fake, f"{fake} is not a GGUF file (no GGUF header)"),
        (cut, f"{cut}: damaged GGUF header"),
        (alien, f"{alien}: llama.cpp {llama_cpp.__version__} cannot load it (architecture "
                "'nosucharch' unsupported, or a damaged file)"),
    ]
    for path, message in cases:
        settings = Settings(model=str(path))  # not validated: the check itself is under test
        with pytest.raises(SettingsError) as caught:
            check_model(settings)
        assert str(caught.value) == message


def test_launchers_exit_2_with_one_line_before_the_port_opens(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    missing = str(tmp_path / "missing.gguf")
    port = str(free_port())
    cases = [
        (["-m", "qa", "ask", "--model", missing, MEMBERS], {},
         f"qa: error: model must be one of {NAMES} or the path of a .gguf file or model "
         f"folder; got '{missing}' (no such file)"),
        (["-m", "qa", "serve", "--port", port], {"QA_MODEL": str(fake)},
         f"qa: error: {fake} is not a GGUF file (no GGUF header)"),
        (["app.py"], {"QA_MODEL": str(fake), "GRADIO_SERVER_PORT": port},
         f"app.py: error: {fake} is not a GGUF file (no GGUF header)"),
        (["app.py"], {"QA_MODEL": str(model_folder(tmp_path / "f", weights="")),
                      "GRADIO_SERVER_PORT": port},
         f"app.py: error: {tmp_path / 'f'} holds no .safetensors weights"),
    ]
    for args, env, line in cases:
        result = run(args, **env)
        assert (result.returncode, result.stderr.strip().splitlines()[-1:]) == (2, [line]), \
            result.stderr[-1000:]
        assert "Traceback" not in result.stderr and "Uvicorn running" not in result.stderr


def test_converted_packaged_folder_passes_as_an_own_model() -> None:
    if not is_installed("qwen2.5-coder-0.5b"):
        pytest.skip("the 0.5B model packages are not installed")
    folder = converted_dir(GENERATORS["qwen2.5-coder-0.5b"], Settings().cache_dir)
    assert own_model(str(folder), "transformers-int8") == OwnModel(
        folder.resolve(), "folder", "qwen2", "transformers-int8")


@pytest.mark.model
def test_own_gguf_file_answers_on_llama_cpp(corpus_index, embedder) -> None:
    pytest.importorskip("llama_cpp", reason="needs llama-cpp-python")
    gguf = assemble_gguf(GENERATORS["qwen2.5-coder-0.5b"], Settings().cache_dir)
    settings = Settings.from_env(model=str(gguf))  # the backend setting is left as it is
    assert check_model(settings) == OwnModel(gguf.resolve(), "gguf", "qwen2", "llama.cpp")
    qa = QA(settings, corpus_index, embedder)
    answer = qa.answer(MEMBERS)
    assert answer.refused is False and "India and Pakistan" in answer.text
    assert answer.citations and answer.model == gguf.name
    assert qa.generator.backend == "llama.cpp"
    assert describe(settings, qa.generator) == {
        "backend": "llama.cpp", "model": gguf.name, "where": str(gguf.resolve()),
        "refusal_signals": ["refusal_logprob", "reply_logprob", "top_similarity", "support",
                            "grounded", "retried", "citations"]}


def test_uploads_use_the_apps_own_model_file(tmp_path: Path, corpus_index, embedder) -> None:
    from qa.serve.state import Models
    from tests.fakes import ScriptedGenerator

    own = gguf_file(tmp_path / "own.gguf", "qwen2")
    generator = ScriptedGenerator("India and Pakistan [1].")
    models = Models(QA(Settings.from_env(model=str(own)), corpus_index, embedder, generator))
    uploads = models.pipeline(str(own), corpus_index)  # as the chat asks for uploaded files
    assert uploads is not models.qa and uploads.settings.model == str(own)
    assert uploads.generator is generator
    with pytest.raises(SettingsError, match="model must be one of"):
        models.pipeline("gpt-9", corpus_index)
