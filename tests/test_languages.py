"""Questions in other languages: detection, translation for retrieval, answers in the
question's language (scripted generator; tests/test_languages_model.py has the real model)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qa.answer.citations import faithful
from qa.answer.languages import LANGUAGES, detect, language_of_documents, other_language
from qa.answer.pipeline import QA
from qa.config import Settings
from qa.eval.squad import load_squad
from tests.fakes import ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]
SHORT_QUESTIONS = ROOT / "bench" / "questions" / "lang_short.jsonl"
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
MEMBERS_FR = "Quels pays ont obtenu le statut de membre à part entière de l'OCS ?"
MEMBERS_EN = "Which countries were granted full membership of the SCO?"
ANSWER_EN = "India and Pakistan were granted full membership [1]."
ANSWER_FR = "L'Inde et le Pakistan ont obtenu le statut de membre à part entière [1]."


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
    qa, generator = _qa(corpus_index, embedder, MEMBERS_EN, ANSWER_EN, ANSWER_FR)
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
    assert MEMBERS_EN in answer_prompt[-1]["content"]
    assert "into French" in translate_answer[0]["content"]
    assert translate_answer[1]["content"] == ANSWER_EN
    assert {"translate_ms", "first_token_ms", "total_ms"} <= set(answer.timings)


def test_a_translation_that_loses_a_citation_keeps_the_checked_answer(corpus_index,
                                                                      embedder) -> None:
    qa, _ = _qa(corpus_index, embedder, MEMBERS_EN, ANSWER_EN, ANSWER_FR.replace(" [1]", ""))
    answer = qa.answer(MEMBERS_FR)
    assert (answer.text, answer.language) == (ANSWER_EN, "fr")


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
    assert len(generator.calls) == 1


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
