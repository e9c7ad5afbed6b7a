"""`qa eval generate`: questions whose answer phrase is verbatim in their sentence, plus
unanswerable ones checked against the index, in the format `qa eval qa` reads."""

from __future__ import annotations

import json
import random

import pytest

from qa.cli import main
from qa.eval.generate import (
    absent_names,
    facts,
    generate_questions,
    heading,
    locate,
    parse_pair,
    question_for_fact,
    sentences,
)
from qa.eval.qa_eval import evaluate, read_questions
from qa.generate.registry import load_generator
from qa.index.lexical import tokenize
from tests.conftest import ROOT
from tests.fakes import ScriptedGenerator

SENTENCE = "The new crane at pier seven lifts forty tonnes."


def test_facts_are_the_names_numbers_and_dates_of_a_sentence() -> None:
    assert facts("The event was held at the UN Headquarters in New York on 27 November 2018, "
                 "and Rashid Alimov spoke.") == ["UN Headquarters", "New York",
                                                 "27 November 2018", "Rashid Alimov"]
    assert facts("\u201cWe met in Astana,\u201d \"Our aim\" (She said) it.") == ["Astana"]


def test_parse_pair_keeps_only_verbatim_answers() -> None:
    assert parse_pair("Question: How much does the crane at pier seven lift?\n"
                      "Answer: Forty tonnes.", SENTENCE) == (
        "How much does the crane at pier seven lift?", "forty tonnes")
    assert parse_pair("Question: How much does the crane at pier seven lift?\n"
                      "Answer: 40 tonnes", SENTENCE) == "answer not in its sentence"
    assert parse_pair("Question: Which crane lifts forty tonnes?\nAnswer: forty tonnes",
                      SENTENCE) == "answer given away in the question"
    assert parse_pair("Question: What does the sentence say about cranes?\nAnswer: pier seven",
                      SENTENCE) == "no usable question"
    assert parse_pair("Question: How much does the crane lift?", SENTENCE) == "no short answer"


def test_a_name_is_absent_only_when_no_word_or_initials_of_it_are_in_the_documents() -> None:
    vocabulary = {w for words in tokenize(["The UN and the SCO family of nations met in New "
                                           "York, said Rashid Alimov."]) for w in words}
    assert absent_names("Who spoke for the United Nations there?", vocabulary) == []  # UN
    assert absent_names("Which event was held in New York City?", vocabulary) == []
    assert absent_names("Who met in Budapest with the SCO?", vocabulary) == ["Budapest"]
    assert absent_names("What did the World Health Organization say?", vocabulary) == [
        "World Health Organization"]


def test_headings_are_no_sentences_to_ask_about() -> None:
    assert heading("SCO Secretary-General: Combatting Global Challenges Calls for an Effective "
                   "Collective Approach")
    assert not heading("The event was attended by UN Secretary-General Antonio Guterres.")
    assert not heading("Rashid Alimov, Antonio Guterres and Ban Ki-moon All Spoke There.")


def test_a_question_written_for_a_fact_must_be_answered_with_it() -> None:
    asked = "How much does the new crane at pier seven lift?"
    generator = ScriptedGenerator(f"Question: {asked}", "Forty tonnes.")
    assert question_for_fact(generator, SENTENCE, "forty tonnes") == (asked, "forty tonnes")
    assert generator.calls[0][-1]["content"] == f"Sentence: {SENTENCE}\nAnswer: forty tonnes"
    assert generator.calls[1][-1]["content"] == f"Sentence: {SENTENCE}\nQuestion: {asked}"
    assert question_for_fact(ScriptedGenerator(asked, "pier seven"), SENTENCE,
                             "forty tonnes") == "answered otherwise from its sentence"
    assert question_for_fact(ScriptedGenerator("Does the crane lift forty tonnes?"), SENTENCE,
                             "forty tonnes") == "answer given away in the question"
    assert question_for_fact(ScriptedGenerator("The crane lifts a lot."), SENTENCE,
                             "forty tonnes") == "no usable question"


def test_an_answer_is_found_case_punctuation_and_spacing_aside_and_copied() -> None:
    sentence = "Ties with the UN Secretariat and Office of\xa0Counter-Terrorism grew, UNESCO's too."
    assert locate("office of counter terrorism.", sentence) == "Office of\xa0Counter-Terrorism"
    assert locate("\"UN Secretariat\"", sentence) == "UN Secretariat"
    assert locate("UNESCO", sentence) == "UNESCO"
    assert locate("ESCO", sentence) == ""  # whole words only
    assert locate("Secretariat Office", sentence) == ""  # in a row
    assert locate("...", sentence) == ""


def test_a_reply_without_an_answer_has_its_question_answered_from_the_sentence(
        corpus_index, embedder, settings) -> None:
    pool = sentences(corpus_index)
    random.Random(0).shuffle(pool)  # the order generate_questions samples them in (seed 0)
    words = pool[0].text.rstrip(".").split()
    question = "Which words stand at its end, in its own order?"
    generator = ScriptedGenerator(f"Question: {question}", f"“{' '.join(words[-2:]).upper()}”")
    made = generate_questions(corpus_index, generator, embedder, settings, n=1,
                              unanswerable=0)
    assert [(r["q"], r["answers"]) for r in made.rows] == [(question, [" ".join(words[-2:])])]
    assert generator.calls[1][-1]["content"] == f"Sentence: {pool[0].text}\nQuestion: {question}"


def test_generated_rows_are_a_question_file(tmp_path, corpus_index, embedder,
                                            settings) -> None:
    pool = sentences(corpus_index)
    assert len(pool) == 16 and all(s.source == "sco-un-special-event-2018.txt" for s in pool)
    first = sorted(pool, key=lambda s: s.text)[0].text
    words = first.split()
    phrase = " ".join(words[1:3])
    # Every sentence gets the same scripted reply: the phrase is verbatim in one sentence only.
    generator = ScriptedGenerator(f"Answer: {phrase}\n"
                                  "Question: Which words stand at the start here?")
    made = generate_questions(corpus_index, generator, embedder, settings, n=4,
                              unanswerable=0.5)
    answerable = [r for r in made.rows if r["answers"]]
    assert [r["answers"] for r in answerable] == [[phrase]]
    assert phrase in answerable[0]["sentence"] and answerable[0]["kind"] == "fact"
    assert made.dropped["answer not in its sentence"] >= 1
    # The reply does not start with a question: no unanswerable one is written.
    assert made.answerable == len(made.rows) == 1
    out = tmp_path / "q.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in made.rows))
    assert [r["q"] for r in read_questions(out)] == [answerable[0]["q"]]


def test_a_rewritten_off_topic_question_is_kept_as_unanswerable(corpus_index, embedder,
                                                                settings) -> None:
    pool = sentences(corpus_index)
    random.Random(0).shuffle(pool)  # the order generate_questions samples them in (seed 0)
    phrase = " ".join(pool[0].text.split()[-2:]).rstrip(".")
    off_topic = "What is the capital of Mongolia's Gobi province of Umnugovi?"
    generator = ScriptedGenerator(f"Question: Which words stand at its end?\nAnswer: {phrase}",
                                  f"Question: {off_topic}")
    made = generate_questions(corpus_index, generator, embedder, settings, n=2,
                              unanswerable=0.5)
    assert made.rows[1:] == [{"id": "u001", "q": off_topic, "answers": [],
                              "kind": "unanswerable",
                              "why": "no passage reaches the similarity floor"}]
    assert generator.calls[1][-1]["content"] == "Question: Which words stand at its end?"


@pytest.mark.model
def test_eval_generate_on_the_default_corpus_with_the_small_model(tmp_path, corpus_index,
                                                                  settings, capsys) -> None:
    load_generator("qwen2.5-coder-0.5b", settings.cache_dir)  # converted once, cached
    out = tmp_path / "questions.jsonl"
    # The defaults a user gets (--n 50, --unanswerable 0.2) but the small model.
    assert main(["eval", "generate", "--index", str(corpus_index.path), "--out", str(out),
                 "--model", "qwen2.5-coder-0.5b"]) == 0
    rows = read_questions(out)
    text = (ROOT / "corpus" / "sco-un-special-event-2018.txt").read_text(encoding="utf-8")
    valid = [r for r in rows if r["answers"] and r["answers"][0] in r["sentence"]
             and r["sentence"] in text]
    # The 20 is asked of the default model (its own test); the 0.5B model keeps 14.
    assert len(valid) >= 12
    assert len(valid) == sum(1 for r in rows if r["answers"])  # every answerable one is valid
    assert all(r["kind"] == "unanswerable" and r["why"] for r in rows if not r["answers"])
    assert len({r["q"] for r in rows}) == len(rows)
    assert f"run: qa eval qa --questions {out}" in capsys.readouterr().out
    assert main(["eval", "qa", "--questions", str(out), "--index", str(corpus_index.path),
                 "--model", "qwen2.5-coder-0.5b", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == len(rows)
    assert [r["question"] for r in report["rows"]] == [r["q"] for r in rows]


@pytest.mark.model
def test_the_default_model_writes_twenty_valid_questions_about_the_default_corpus(
        tmp_path, default_qa, corpus_index, embedder, settings) -> None:
    made = generate_questions(corpus_index, default_qa.generator, embedder, settings)
    text = (ROOT / "corpus" / "sco-un-special-event-2018.txt").read_text(encoding="utf-8")
    valid = [r for r in made.rows if r["answers"] and r["answers"][0] in r["sentence"]
             and r["sentence"] in text and r["answers"][0].lower() not in r["q"].lower()]
    assert len(valid) >= 20, made.dropped
    assert len(valid) == made.answerable  # every answerable one is valid
    out = tmp_path / "questions.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in made.rows), encoding="utf-8")
    rows = read_questions(out)
    report = evaluate(default_qa, rows[:3] + rows[-2:])  # the file runs; the 0.5B test runs all
    assert [r["question"] for r in report["rows"]] == [r["q"] for r in rows[:3] + rows[-2:]]


def test_a_near_topic_question_about_an_absent_name_is_unanswerable(corpus_index, embedder,
                                                                    settings) -> None:
    pool = sentences(corpus_index)
    random.Random(0).shuffle(pool)
    phrase = " ".join(pool[0].text.split()[-2:]).rstrip(".")
    near = "Who attended the second high-level special event of the SCO in Budapest?"
    generator = ScriptedGenerator(f"Question: Which words stand at its end?\nAnswer: {phrase}",
                                  near)
    made = generate_questions(corpus_index, generator, embedder, settings, n=2,
                              unanswerable=0.5)
    assert made.rows[1]["why"] == "no document names Budapest"
