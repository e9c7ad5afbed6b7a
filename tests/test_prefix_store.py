"""Kept prompt prefixes on disk (issue 16): llama.cpp's context state after the app's fixed
prefix, saved by one start and loaded by the next, keyed by what it came from and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.answer.prompting import answer_messages, answer_prefix
from qa.config import Settings
from qa.generate.models import GENERATORS, assemble_gguf
from qa.generate.prefix_store import MAGIC, PrefixStore
from qa.types import Hit

QUESTION = "Which organisation held the high-level event?"


def test_a_state_comes_back_only_for_the_same_prefix_and_identity(tmp_path: Path) -> None:
    store = PrefixStore(tmp_path, "weights a")
    store.save([1, 2, 3], b"state bytes")
    assert store.load([1, 2, 3]) == b"state bytes"
    assert store.load([1, 2]) is None
    assert PrefixStore(tmp_path, "weights b").load([1, 2, 3]) is None
    assert not list(tmp_path.glob(".partial-*"))


def test_a_damaged_state_is_deleted_and_not_used(tmp_path: Path) -> None:
    store = PrefixStore(tmp_path, "weights a")
    store.save([7], b"x" * 1000)
    path = store.path([7])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert store.load([7]) is None
    assert not path.exists()
    path.write_bytes(b"not a state")
    assert store.load([7]) is None


def test_only_the_newest_states_stay(tmp_path: Path) -> None:
    import os

    from qa.generate.prefix_store import KEEP_FILES

    store = PrefixStore(tmp_path, "weights a")
    for n in range(KEEP_FILES + 3):
        store.save([n], b"s")
        os.utime(store.path([n]), (n, n))  # distinct ages, oldest first
    kept = sorted(tmp_path.glob("*.state"))
    assert len(kept) == KEEP_FILES
    assert not store.path([0]).exists() and store.path([KEEP_FILES + 2]).exists()


@pytest.mark.model
def test_a_second_start_loads_the_saved_prefix_and_answers_the_same(
        tmp_path: Path, settings: Settings, default_qa: object) -> None:
    pytest.importorskip("llama_cpp")
    from qa.generate.llamacpp_backend import LlamaCppGenerator

    model = GENERATORS["qwen2.5-coder-0.5b"]
    gguf = assemble_gguf(model, settings.cache_dir)
    hits: list[Hit] = default_qa.retriever.search(QUESTION, 3)  # type: ignore[attr-defined]
    messages = answer_messages(QUESTION, hits)

    def start() -> LlamaCppGenerator:
        return LlamaCppGenerator("small", gguf, state_dir=tmp_path, weights_sha256=model.sha256)

    first = start()
    first.keep_prefix(answer_prefix(), persist=True)
    saved = list(tmp_path.glob("*.state"))
    assert len(saved) == 1 and saved[0].read_bytes().startswith(MAGIC)
    expected = "".join(first.stream(messages, 40))
    first.keep_prefix(answer_messages("a visitor's upload", hits))  # not persisted
    assert list(tmp_path.glob("*.state")) == saved
    del first

    before = saved[0].stat()
    second = start()
    second.keep_prefix(answer_prefix(), persist=True)
    after = saved[0].stat()
    # Read (and marked as used), not written again (a write renames a new file into place).
    assert after.st_ino == before.st_ino and after.st_mtime_ns > before.st_mtime_ns
    assert "".join(second.stream(messages, 40)) == expected
    # A damaged file: evaluated again, written again, the same reply.
    saved[0].write_bytes(saved[0].read_bytes()[:-10])
    third = start()
    third.keep_prefix(answer_prefix(), persist=True)
    assert PrefixStore(tmp_path, third.store.identity).load(  # type: ignore[union-attr]
        third._kept[0][0]) is not None
    assert "".join(third.stream(messages, 40)) == expected
