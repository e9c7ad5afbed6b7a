"""The short answer: picked from the model's reply, spelled as the passage spells it."""

from __future__ import annotations

from qa.answer.short import SHORT_REQUEST, pick_short, short_messages, trim_to_new

PASSAGES = ["Tesla was the fourth of five children. His father, Milutin Tesla, was a priest.",
            "The Broncos defeated the Panthers 24–10 in Super Bowl 50."]


def test_the_phrase_is_copied_from_the_passage_that_holds_it() -> None:
    answer = "Tesla's father was Milutin Tesla [1]."
    assert pick_short("milutin   tesla.", PASSAGES, answer) == "Milutin Tesla"
    assert pick_short('"24–10" [2]\nextra line', PASSAGES, "The score was 24–10 [2].") == "24–10"
    assert pick_short("A priest", PASSAGES, "His father was a priest [1].") == "a priest"


def test_a_phrase_only_the_answer_holds_is_kept_and_a_made_up_one_dropped() -> None:
    assert pick_short("Serbian Orthodox", PASSAGES, "He was a Serbian Orthodox priest [1].") == (
        "Serbian Orthodox")
    assert pick_short("a rooftop garden", PASSAGES, "His father was a priest [1].") == ""


def test_no_short_answer_when_empty_a_refusal_or_as_long_as_the_answer() -> None:
    answer = "Milutin Tesla [1]."
    assert pick_short("", PASSAGES, answer) == ""
    assert pick_short("  \n ", PASSAGES, answer) == ""
    assert pick_short("Milutin Tesla, a priest of the church", PASSAGES, answer) == ""
    assert pick_short("Milutin Tesla", PASSAGES, "Milutin Tesla [1].") == "Milutin Tesla"
    assert pick_short("The documents do not say.", PASSAGES, "His father was a priest.") == ""


def test_the_request_continues_the_answer_conversation() -> None:
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    continued = short_messages(messages, "Milutin Tesla [1].")
    assert continued[:2] == messages
    assert continued[2:] == [{"role": "assistant", "content": "Milutin Tesla [1]."},
                             {"role": "user", "content": SHORT_REQUEST}]


def test_words_that_repeat_the_question_are_trimmed_from_the_ends() -> None:
    assert trim_to_new("Jim Gray covered the pre-game and halftime coverage.",
                       "What did Jim Gray cover?") == "pre-game and halftime coverage"
    assert trim_to_new("One in five of the bird species in the world live in the Amazon",
                       "How many of the world's bird species live in the Amazon?") == (
        "One in five")
    assert trim_to_new("in 1880", "After what year was compounding used in 1880s?") == "1880"
    assert trim_to_new("Coldplay", "What band is Coldplay?") == "Coldplay"  # nothing would remain
    passages = ["McManus kicked all four of his field goals in the game."]
    assert pick_short("McManus kicked ALL four", passages, "He kicked all four of them [1].",
                      "How many field goals did McManus kick?") == "all four"


def test_a_reply_that_answers_something_else_than_the_answer_is_dropped() -> None:
    passages = ["The opening was attended by Governor Ana Ruiz.",
                "The port has become the main hub for grain in the region."]
    answer = "The port has become the main hub for grain in the region [2]."
    question = "What is the port's role in the region?"
    assert pick_short("Governor Ana Ruiz", passages, answer, question) == ""
    assert pick_short("the main hub for grain", passages, answer, question) == (
        "main hub for grain")


def test_a_reply_that_only_repeats_the_question_gives_way_to_the_answers_new_words() -> None:
    passages = ["Harbour master Ken Ito said the port would open in May."]
    answer = "Ken Ito is the harbour master [1]."
    assert pick_short("Ken Ito", passages, answer, "Who is Ken Ito?") == "Harbour master"
    # Nothing new in the answer either: the reply stands.
    assert pick_short("Coldplay", ["Coldplay played."], "Coldplay [1].",
                      "What band is Coldplay?") == "Coldplay"
