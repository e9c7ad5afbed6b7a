"""Real generators from the PyPI packages: exact greedy output, streaming, bounds, answers."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from qa import compute
from qa.answer.examples import make_examples
from qa.answer.pipeline import QA
from qa.answer.prompting import (
    REFUSAL,
    answer_messages,
    answer_prefix,
    looks_like_refusal,
    passages_prefix,
)
from qa.config import LOCAL_BACKENDS, Settings
from qa.errors import ModelUnavailable
from qa.files import sha256_file
from qa.generate.base import KEPT_PREFIXES, Generator, prefix_tokens
from qa.generate.models import GENERATORS, assemble_gguf, converted_dir, part_files
from qa.generate.registry import load_generator
from qa.index.embedding import embedder_path
from qa.types import Hit

COUNT = [{"role": "user", "content": "Count from 1 to 5, separated by commas."}]


@pytest.fixture(scope="session", params=LOCAL_BACKENDS)
def small(request: pytest.FixtureRequest, settings: Settings) -> Generator:
    """The 0.5B model on each local backend (`make test` builds llama-cpp-python; the openai
    backend is in tests/test_openai_backend.py and tests/test_openai_http.py)."""
    if request.param == "llama.cpp":
        pytest.importorskip("llama_cpp")
    return load_generator("qwen2.5-coder-0.5b", settings.cache_dir, backend=request.param)


@pytest.mark.model  # converts the 0.5B model on first use
def test_model_files_come_from_installed_packages(settings: Settings) -> None:
    for model in GENERATORS.values():
        parts = part_files(model)
        assert len(parts) == model.parts
        assert sum(p.stat().st_size for p in parts) == model.size
        assert "site-packages" in str(parts[0])
    folder = converted_dir(GENERATORS["qwen2.5-coder-0.5b"], settings.cache_dir)
    assert folder.is_relative_to(settings.cache_dir)
    assert (embedder_path() / "model.safetensors").is_file()


def test_assembly_verifies_the_hash_and_clears_leftovers(tmp_path: Path) -> None:
    model = GENERATORS["qwen2.5-coder-0.5b"]
    leftover = tmp_path / "gguf" / f".{model.filename}.tmp999"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a model")
    seen: list[tuple[int, int]] = []
    path = assemble_gguf(model, tmp_path, lambda what, done, total: seen.append((done, total)))
    assert path == tmp_path / "gguf" / model.filename
    assert path.stat().st_size == model.size and not leftover.exists()
    assert seen[-1] == (model.size, model.size) and len(seen) == model.parts
    assert sha256_file(path) == model.sha256


def test_missing_model_package_is_a_clear_error() -> None:
    from dataclasses import replace

    ghost = replace(GENERATORS["qwen2.5-coder-0.5b"], package_prefix="no_such_model_part")
    with pytest.raises(ModelUnavailable, match="missing packages: no-such-model-part1"):
        part_files(ghost)


def test_greedy_output_is_exact(small: Generator) -> None:
    reply = "".join(small.stream(COUNT, 30))
    assert re.search(r"1, 2, 3, 4,? (?:and )?5", reply), reply
    assert "".join(small.stream(COUNT, 30)) == reply  # greedy: the same every time
    system = {"role": "system", "content": "Answer with one word."}
    question = {"role": "user", "content": "What is the capital of France?"}
    assert "".join(small.stream([system, question], 8)).strip(" .") == "Paris"


def test_max_new_tokens_bounds_the_reply(small: Generator) -> None:
    full = "".join(small.stream(COUNT, 30))
    short = "".join(small.stream(COUNT, 3))
    assert full.startswith(short) and len(short) < len(full)
    assert small.count_tokens(short) <= 3


def test_closing_the_stream_stops_generation(small: Generator) -> None:
    full = "".join(small.stream(COUNT, 30))
    stream = small.stream(COUNT, 50)
    first = next(stream)
    assert full.startswith(first)
    stream.close()
    assert "".join(small.stream(COUNT, 30)) == full  # the lock was released


def test_an_unread_stream_holds_up_no_other(small: Generator) -> None:
    full = "".join(small.stream(COUNT, 30))
    unread = small.stream(COUNT, 30)
    first = next(unread)  # suspended mid-reply: neither read on nor closed
    replies: list[str] = []
    other = threading.Thread(target=lambda: replies.append("".join(small.stream(COUNT, 30))))
    other.start()
    other.join(300)
    assert replies == [full], "a stream left unread held up the next one"
    assert first + "".join(unread) == full  # read again, it still gives its own reply


def test_a_dropped_answer_stream_does_not_block_the_next_answer(
        small: Generator, corpus_index, embedder, settings: Settings) -> None:
    qa = QA(settings, corpus_index, embedder, small)
    question = "Which city hosted the summit of SCO leaders?"
    events = qa.stream(question)
    assert next(e for e in events if e.kind == "token").text
    dropped = [events]  # the caller lost interest without closing it
    answers: list[str] = []
    other = threading.Thread(target=lambda: answers.append(qa.answer(question).text))
    other.start()
    other.join(300)
    assert len(answers) == 1 and answers[0], "an unfinished answer stream blocked the next"
    assert dropped[0].gi_frame is not None  # it was still suspended meanwhile


def test_prefix_cache_changes_speed_not_output(small: Generator, corpus_index,
                                              embedder, settings: Settings) -> None:
    question = "Which city hosted the summit of SCO leaders?"
    hits = QA(settings, corpus_index, embedder, small).retriever.search(question)
    messages = answer_messages(question, hits)
    small.keep_prefix([])  # forget any earlier prefix
    cold = "".join(small.stream(messages, 24))
    count = "".join(small.stream(COUNT, 20))
    small.keep_prefix(answer_prefix())
    assert "".join(small.stream(COUNT, 20)) == count  # other prompts still work
    cached = "".join(small.stream(messages, 24))
    if small.backend == "transformers-int8":
        # int8 layers quantise each call's input as a whole: other call boundaries give
        # different numbers, enough to change the small model's reply. What must hold: a run
        # leaves the saved prefix untouched, so the next cached run gives the same reply.
        assert "".join(small.stream(messages, 24)) == cached and len(cold) > 10
    else:
        assert cached == cold and len(cold) > 10


def test_a_continued_conversation_reuses_the_last_cache(small: Generator) -> None:
    if not small.backend.startswith("transformers"):
        pytest.skip("llama.cpp keeps its own context and reuses its longest common prefix")
    small.keep_prefix([])
    reply = "".join(small.stream(COUNT, 20))
    follow = [*COUNT, {"role": "assistant", "content": reply},
              {"role": "user", "content": "Now count from 6 to 8."}]
    reused, _ = small._reusable(small.prompt_tokens(follow))  # type: ignore[attr-defined]
    assert reused >= len(small.prompt_tokens(COUNT)) + 5  # the prompt and the reply's tokens
    warm = "".join(small.stream(follow, 20))
    # Another question never starts from the last conversation: answers do not depend on
    # what was asked before.
    other = small.prompt_tokens([{"role": "user", "content": "Count from 1 to 3."}])
    assert small._reusable(other) == (0, None)  # type: ignore[attr-defined]
    small.keep_prefix([])  # forgets the last conversation too
    cold = "".join(small.stream(follow, 20))
    assert warm.startswith("6")  # it continues from the reply it was given
    if small.backend == "transformers":  # int8: other call boundaries, other numbers
        assert warm == cold


def test_an_open_passages_prefix_is_reused_by_its_questions(small: Generator, corpus_index,
                                                            embedder, settings: Settings) -> None:
    if not small.backend.startswith("transformers"):
        pytest.skip("llama.cpp restores a saved state that the prompt starts with")
    qa = QA(settings, corpus_index, embedder, small)
    hits = qa.whole_corpus(corpus_index)
    assert len(hits) == len(corpus_index.chunks)
    prefix = passages_prefix(hits)
    held, _, needed = small._kept[0]  # type: ignore[attr-defined]
    assert needed == len(small.prompt_tokens(answer_prefix(), generation_prompt=False))
    assert len(held) > needed + 500  # the passages are in it
    question = small.prompt_tokens(answer_messages("Who is Rashid Alimov?", hits))
    assert question[:len(held)] == held
    assert small._reusable(question)[0] == len(held)  # type: ignore[attr-defined]
    other = small.prompt_tokens(answer_messages("Who is Rashid Alimov?", hits[:2]))
    reused = small._reusable(other)[0]  # type: ignore[attr-defined]
    assert needed <= reused < len(held)  # another set of passages: the fixed part only
    cached = "".join(small.stream(answer_messages("Who is Rashid Alimov?", hits), 24))
    small.keep_prefix(prefix)  # the same prefix again: kept already, nothing evaluated
    assert small._kept[0][0] is held  # type: ignore[attr-defined]
    small.keep_prefix([])
    cold = "".join(small.stream(answer_messages("Who is Rashid Alimov?", hits), 24))
    if small.backend == "transformers":  # int8: other call boundaries, other numbers
        assert cached == cold
    assert "Alimov" in cached or "Secretary" in cached
    small.keep_prefix(answer_prefix())


def test_several_passage_prefixes_are_kept_side_by_side(small: Generator, corpus_index) -> None:
    """The app's documents and uploaded sets each keep their prefix: answering from one does
    not evict another; the earliest kept goes once more than KEPT_PREFIXES are kept."""
    chunks = corpus_index.chunks
    docs = corpus_index.documents
    sets = [[Hit(chunk=c, score=0.0, rank=n, source=docs[c.doc_id].source)
             for n, c in enumerate(chunks[i:i + 2], 1)] for i in range(KEPT_PREFIXES + 1)]
    wanted = [prefix_tokens(small, passages_prefix(hits))[0] for hits in sets]
    small.keep_prefix([])
    for hits in sets[:KEPT_PREFIXES]:
        small.keep_prefix(passages_prefix(hits))
    replies: dict[int, str] = {}
    for i in (0, KEPT_PREFIXES - 1, 0):  # the earliest kept, the latest, the earliest again
        messages = answer_messages("What is this passage about?", sets[i])
        ids = small.prompt_tokens(messages)
        if small.backend.startswith("transformers"):
            assert small._reusable(ids)[0] == len(wanted[i])  # type: ignore[attr-defined]
        else:
            small._restore_prefix(ids)  # type: ignore[attr-defined]
            held = small.llm.input_ids[:small.llm.n_tokens].tolist()  # type: ignore[attr-defined]
            assert held[:len(wanted[i])] == wanted[i]
        replies.setdefault(i, "".join(small.stream(messages, 12)))
        assert "".join(small.stream(messages, 12)) == replies[i] != ""
    small.keep_prefix(passages_prefix(sets[KEPT_PREFIXES]))  # one more: the earliest goes
    kept = [entry[0] for entry in small._kept]  # type: ignore[attr-defined]
    assert kept == wanted[KEPT_PREFIXES:0:-1]
    small.keep_prefix(passages_prefix(sets[2]))  # kept again: now the latest, nothing evaluated
    assert [entry[0] for entry in small._kept] == [  # type: ignore[attr-defined]
        wanted[2], *(w for w in wanted[KEPT_PREFIXES:0:-1] if w != wanted[2])]
    small.keep_prefix([])
    assert small._kept == []  # type: ignore[attr-defined]
    small.keep_prefix(answer_prefix())


def test_decoding_equals_transformers_generate(small: Generator) -> None:
    if small.backend != "transformers":
        pytest.skip("the bf16 backend is the one with generate() to compare against")
    import torch

    small.keep_prefix([])
    ids = small.prompt_tokens(COUNT)

    def generate() -> str:
        out = small.runner.model.generate(  # type: ignore[attr-defined]
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=30, do_sample=False, temperature=None, top_p=None, top_k=None)
        return small.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)  # type: ignore[attr-defined]

    assert "".join(small.stream(COUNT, 30)) == compute.run(generate)


def test_model_work_runs_on_the_compute_thread(small: Generator, embedder) -> None:
    if not small.backend.startswith("transformers"):
        pytest.skip("llama.cpp has no torch module to hook (its steps go through compute.run)")
    seen: set[int] = set()
    hooks = [module.register_forward_pre_hook(lambda *_: seen.add(threading.get_ident()))
             for module in (small.runner, embedder.model)]  # type: ignore[attr-defined]
    try:
        "".join(small.stream(COUNT, 5))
        embedder.encode(["a question"])
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == {compute.run(threading.get_ident)}


def test_scored_stream_gives_the_same_reply_and_the_alternative_logprob(small: Generator) -> None:
    import torch

    if not small.backend.startswith("transformers"):
        pytest.skip("llama.cpp: its own test below (no torch module to compare with)")
    scored = small.stream(COUNT, 30, alternative=REFUSAL)
    assert "".join(scored) == "".join(small.stream(COUNT, 30))
    ids = small.prompt_tokens(COUNT)
    reply = small._reply_tokens(COUNT, ids, REFUSAL)  # type: ignore[attr-defined]
    assert small.tokenizer.decode(reply) == REFUSAL + "<|im_end|>"  # type: ignore[attr-defined]

    def one_pass() -> float:
        """The same log-probability from one forward pass over prompt and reply, no cache."""
        runner = small.runner  # type: ignore[attr-defined]
        logits = runner(ids + reply, runner.new_cache(), all_logits=True).float()
        return float(sum(torch.log_softmax(logits[len(ids) - 1 + i], -1)[t]
                         for i, t in enumerate(reply)))

    expected = compute.run(one_pass)
    # int8 quantises each call's input as a whole, so other call boundaries move it more
    tolerance = 0.5 if small.backend == "transformers" else 5.0
    assert abs(scored.alternative_logprob - expected) < tolerance
    assert scored.alternative_logprob < -10  # counting to five: refusing is far from likely


def test_llama_cpp_scores_the_alternative_and_its_own_reply_like_one_plain_pass(
        small: Generator) -> None:
    import llama_cpp
    import numpy as np

    if small.backend != "llama.cpp":
        pytest.skip("the transformers backends are checked against one forward pass above")
    scored = small.stream(COUNT, 30, alternative=REFUSAL)
    text = "".join(scored)
    assert text == "".join(small.stream(COUNT, 30))  # scoring leaves the reply alone
    ids = small.prompt_tokens(COUNT)
    own = small.llm.tokenize(text.encode(), add_bos=False)  # type: ignore[attr-defined]
    refusal = small.llm.tokenize(  # type: ignore[attr-defined]
        f"{REFUSAL}<|im_end|>".encode(), add_bos=False, special=True)
    # The reference: a second context that keeps every row's logits, fed prompt and reply.
    plain = llama_cpp.Llama(model_path=small.llm.model_path,  # type: ignore[attr-defined]
                            n_ctx=512, logits_all=True, n_threads=2, verbose=False)

    def logprobs(reply: list[int]) -> list[float]:
        plain.reset()
        plain.eval(ids + reply)
        rows = plain.scores[len(ids) - 1:len(ids) - 1 + len(reply)].astype(np.float64)
        norm = rows.max(1) + np.log(np.exp(rows - rows.max(1)[:, None]).sum(1))
        return [rows[i, t] - norm[i] for i, t in enumerate(reply)]

    assert abs(scored.alternative_logprob - sum(logprobs(refusal))) < 0.5
    assert scored.alternative_logprob < -10  # counting to five: refusing is far from likely
    assert abs(scored.reply_logprob - float(np.mean(logprobs(own)))) < 0.05
    # The context goes on answering the same after scoring.
    assert "".join(small.stream(COUNT, 30, alternative=REFUSAL)) == text


def test_outlier_channels_leave_the_int8_product() -> None:
    import torch

    from qa.generate.int8.layers import OutlierInt8Linear, int8_linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(512, 64, bias=True)
    x = torch.randn(3, 512) * 0.1
    x[:, [7, 300]] = 40.0  # two channels 400 times the rest, as in the MLP output layers
    x[1, 99] = -25.0  # and one in a single token
    exact = linear(x).detach()

    def error(layer: torch.nn.Module) -> float:
        with torch.inference_mode():
            return float((layer(x) - exact).norm() / exact.norm())

    plain = error(int8_linear(linear.weight, linear.bias))
    outlier = error(OutlierInt8Linear(linear, outliers=4))
    assert plain > 0.02  # one int8 scale for the whole input rounds the small channels away
    assert outlier < plain / 10
    assert OutlierInt8Linear(linear)(x.unsqueeze(0)).shape == (1, 3, 64)
    layer = OutlierInt8Linear(linear)
    with torch.inference_mode():
        layer(x[1:2])  # one token: channels 7, 300 and 99 stand out, nothing else does
    assert layer.outliers == 3


def test_unknown_backend_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(ValueError,
                       match=r"unknown backend .vllm.; choose one of llama.cpp, transformers-int8"):
        load_generator("qwen2.5-coder-0.5b", settings.cache_dir, backend="vllm")


def test_default_model_answers_with_a_supported_citation(default_qa: QA) -> None:
    answer = default_qa.answer("Which countries were granted full SCO membership?")
    assert not answer.refused
    assert "India and Pakistan" in answer.text
    assert answer.citations and all(c.supported for c in answer.citations)
    cited = answer.citations[0]
    doc = default_qa.index.documents[cited.doc_id]
    assert "India and Pakistan" in doc.text[cited.start:cited.end]


def test_default_model_refuses_what_the_article_does_not_say(default_qa: QA) -> None:
    answer = default_qa.answer("In what year was the SCO founded?")
    assert answer.refused and answer.text == REFUSAL and answer.citations == []


ANSWERABLE = Path(__file__).parent / "data" / "answerable_default.jsonl"


def test_default_model_gives_no_words_to_an_attendee_the_article_does_not_quote(
        default_qa: QA) -> None:
    # The article names Antonio Guterres among the attendees and quotes only Rashid Alimov.
    answer = default_qa.answer("What did Antonio Guterres say at the event?")
    assert answer.refused or looks_like_refusal(answer.text), answer.text


def test_no_right_answer_is_withdrawn_on_questions_written_for_the_article(
        default_qa: QA) -> None:
    """Questions written for this test (not the dev set's): where the model's reply held
    the gold phrase, the checks must not have refused it; most must be answered."""
    rows = [json.loads(line) for line in ANSWERABLE.read_text(encoding="utf-8").splitlines()]
    withdrawn, answered = [], 0
    for row in rows:
        answer = default_qa.answer(row["q"])
        if answer.refused and all(g.lower() in answer.withheld.lower() for g in row["gold"]):
            withdrawn.append((row["q"], answer.refusal, answer.withheld))
        answered += not answer.refused and all(g.lower() in answer.text.lower()
                                               for g in row["gold"])
    assert withdrawn == []
    # Measured (2026-12-02): llama.cpp, the default engine, 7; bf16 on the same weights 8;
    # int8 10. Their misses differ by engine (numerics), none is a withdrawal.
    assert answered >= len(rows) - 3, answered


def test_each_example_question_is_answered(default_qa: QA) -> None:
    examples = make_examples(default_qa)
    assert len(examples) == 3, examples
    for question in examples:
        answer = default_qa.answer(question)
        assert not answer.refused and answer.citations, (question, answer.text)
