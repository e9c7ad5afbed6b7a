"""Questions in other languages: detection, translation for retrieval, answers in the
question's language (scripted generator; tests/test_languages_model.py has the real model)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from qa.answer.citations import faithful, strip_markers
from qa.answer.languages import LANGUAGES, detect, language_of_documents, other_language
from qa.answer.pipeline import QA
from qa.answer.translation import cited_sentences
from qa.config import Settings
from qa.eval.qa_eval import evaluate, read_questions
from qa.eval.squad import load_squad
from tests.fakes import ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]
SHORT_QUESTIONS = ROOT / "bench" / "questions" / "lang_short.jsonl"
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
MEMBERS_FR = "Quels pays ont obtenu le statut de membre à part entière de l'OCS ?"
MEMBERS_EN = "Which countries were granted full membership of the SCO?"
ANSWER_EN = "India and Pakistan were granted full membership [1]."
ANSWER_FR = "L'Inde et le Pakistan ont obtenu le statut de membre à part entière [1]."
DATE_EN = "The event was held in New York on 27 November 2018 [1]."


def test_short_questions_are_told_apart_in_eight_languages() -> None:
    rows = [json.loads(line) for line in SHORT_QUESTIONS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 80 and {r["lang"] for r in rows} <= set(LANGUAGES)
    assert [detect(r["text"])[0] for r in rows] == [r["lang"] for r in rows]


@pytest.mark.skipif(not SQUAD.is_file(), reason="needs ../shared/data/squad")
def test_english_questions_are_never_taken_for_another_language() -> None:
    questions = [q.question for q in load_squad(SQUAD).questions]
    sample = random.Random(5).sample(questions, 2000)
    assert [q for q in sample if other_language(q, "en")] == []


def test_the_default_article_is_english(corpus_index) -> None:
    assert language_of_documents([c.text for c in corpus_index.chunks]) == "en"


def test_a_faithful_translation_keeps_citations_and_digits() -> None:
    assert faithful("Held on 27 November 2018 [1].", "Tenu le 27 novembre 2018 [1].")
    assert faithful("It is 2,277 metres long [2].", "Il mesure 2 277 mètres [2].")
    assert not faithful("Held on 27 November 2018 [1].", "Tenu le 27 novembre 2018.")
    assert not faithful("Held on 27 November 2018 [1].", "Tenu le 28 novembre 2018 [1].")
    assert not faithful("Held in New York [1].", "Tenu à New York [2].")
    assert not faithful("Held in New York [1].", "  ")
    assert faithful("Held in Qingdao [4].", "在青岛举行【4】。")


def _qa(corpus_index, embedder, *replies: str, **settings: object) -> tuple[QA, ScriptedGenerator]:
    generator = ScriptedGenerator(*replies)
    return QA(Settings.from_env(**settings), corpus_index, embedder, generator), generator


def test_a_french_question_is_searched_in_english_and_answered_in_french(
        corpus_index, embedder) -> None:
    qa, generator = _qa(corpus_index, embedder, MEMBERS_EN, ANSWER_EN,
                        ANSWER_FR.replace(" [1]", ""))
    events = list(qa.stream(MEMBERS_FR))
    assert events[0].kind == "query" and events[0].text == MEMBERS_EN
    assert "".join(e.text for e in events if e.kind == "token") == ANSWER_FR
    answer = events[-1].answer
    assert answer is not None and not answer.refused
    assert (answer.text, answer.language, answer.query) == (ANSWER_FR, "fr", MEMBERS_EN)
    assert [(c.n, c.supported) for c in answer.citations] == [(1, True)]
    assert "full membership to\xa0India and Pakistan" in answer.citations[0].snippet
    translate_question, answer_prompt, translate_answer = generator.calls
    assert "into English" in translate_question[0]["content"]
    assert translate_question[-1]["content"] == MEMBERS_FR
    assert f"{MEMBERS_EN} (asked as: {MEMBERS_FR})" in answer_prompt[-1]["content"]
    assert "into French" in translate_answer[0]["content"]
    # Translated without its markers, which are put back at the sentence's end.
    assert translate_answer[1]["content"] == "India and Pakistan were granted full membership."
    assert {"translate_ms", "first_token_ms", "total_ms"} <= set(answer.timings)


def test_a_translation_that_loses_a_number_keeps_the_checked_answer(corpus_index,
                                                                    embedder) -> None:
    question = "Quand l'événement a-t-il eu lieu ?"
    qa, _ = _qa(corpus_index, embedder, "When did the event take place?", DATE_EN,
                "L'événement a eu lieu à New York le 28 novembre 2018.")
    answer = qa.answer(question)
    assert answer.language == "fr" and strip_markers(answer.text) == strip_markers(DATE_EN)


def test_each_sentence_is_translated_with_its_citations_put_back(corpus_index,
                                                                 embedder) -> None:
    two = f"{ANSWER_EN} {DATE_EN}"
    qa, generator = _qa(corpus_index, embedder, "Who joined, and when was the event?", two,
                        "印度和巴基斯坦获得了正式成员资格。\n(注释)",
                        "活动于2018年11月27日在纽约举行。")
    answer = qa.answer("谁加入了，活动是什么时候？")
    # The checked English answer's markers (the checks may renumber them), no spaces in Chinese.
    shown = re.fullmatch(r"印度和巴基斯坦获得了正式成员资格\[(\d)\]。活动于2018年11月27日在纽约举行"
                         r"\[(\d)\]。", answer.text)
    assert shown and answer.language == "zh"
    assert {int(n) for n in shown.groups()} == {c.n for c in answer.citations}
    assert [call[-1]["content"] for call in generator.calls[2:]] == [
        "India and Pakistan were granted full membership.",
        "The event was held in New York on 27 November 2018."]


def test_cited_sentences_keep_each_sentences_markers() -> None:
    assert cited_sentences("A is B [1][2]. C is D [2]. [3] E, [1, 4] F. [5]") == [
        ("A is B.", "[1][2]"), ("C is D.", "[2]"), ("E, F.", "[3][1][4][5]")]


def test_a_refusal_is_given_in_the_question_language(corpus_index, embedder) -> None:
    qa, generator = _qa(corpus_index, embedder, "What is the population of the SCO states?",
                        "The documents do not say.")
    answer = qa.answer("Quelle est la population des États membres de l'OCS ?")
    assert answer.refused and answer.text == "Les documents ne le disent pas."
    assert answer.language == "fr"
    assert not any("into French" in call[0]["content"] for call in generator.calls)


def test_an_english_question_costs_no_translation(corpus_index, embedder) -> None:
    qa, generator = _qa(corpus_index, embedder, ANSWER_EN)
    answer = qa.answer(MEMBERS_EN)
    assert (answer.text, answer.language, answer.query) == (ANSWER_EN, "", MEMBERS_EN)
    assert len(generator.calls) == 1 and "asked as" not in generator.calls[0][-1]["content"]


def test_translation_can_be_turned_off(corpus_index, embedder) -> None:
    qa, generator = _qa(corpus_index, embedder, ANSWER_EN, translate=False)
    answer = qa.answer(MEMBERS_FR)
    # MiniLM is an English embedder: the French question as it is finds no passage.
    assert (answer.language, answer.query, answer.refusal) == ("", MEMBERS_FR, "no_passages")
    assert generator.calls == []


def test_an_unusable_translation_leaves_the_question_as_asked(corpus_index, embedder) -> None:
    qa, _ = _qa(corpus_index, embedder, "", "The documents do not say.")
    answer = qa.answer(MEMBERS_FR)
    assert answer.query == MEMBERS_FR and answer.refused


def test_qa_eval_reports_each_language(tmp_path, corpus_index, embedder) -> None:
    rows = [{"id": "a", "lang": "fr", "q": MEMBERS_FR, "answers": ["Inde|India", "Pakistan"],
             "kind": "list"},
            {"id": "b", "lang": "en", "q": "What is the annual budget of the SCO?",
             "answers": [], "kind": "unanswerable"}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    qa, _ = _qa(corpus_index, embedder, MEMBERS_EN, ANSWER_EN, ANSWER_FR.replace(" [1]", ""),
                "The documents do not say.")
    report = evaluate(qa, read_questions(path))
    assert {lang: (v["questions"], v["answer_accuracy"], v["refusal_accuracy"])
            for lang, v in report["by_language"].items()} == {"en": (1, None, 1.0),
                                                               "fr": (1, 1.0, None)}
    assert [r["translate_ms"] > 0 for r in report["rows"]] == [True, False]  # English: none
    assert "p50_translation_ms" in report["by_language"]["fr"]
    assert [r["answer"] for r in report["rows"]] == [ANSWER_FR, "The documents do not say."]
