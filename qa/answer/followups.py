"""Follow-up questions: whether one needs the conversation to be understood, whether the
model's rewrite of it is a usable standalone question, and what to search for when it is not."""

from __future__ import annotations

import re

from qa.index.lexical import tokenize
from qa.types import Message

# Words that point back into the conversation: pronouns, demonstratives, "there", "then" ...
REFERRING = frozenset({
    "it", "its", "itself", "they", "them", "their", "theirs", "themselves", "this", "that",
    "these", "those", "he", "him", "his", "himself", "she", "her", "hers", "herself", "there",
    "then", "one", "ones", "such", "same", "former", "latter", "else", "other", "others",
    "another"})
# Of those, the words a standalone rewrite must have replaced by what they stand for.
PRONOUNS = frozenset({"it", "its", "they", "them", "their", "this", "that", "these", "those",
                      "he", "him", "his", "she", "her"})
OPENERS = frozenset({"and", "but", "so", "also", "or", "then"})  # "And when?" continues
QUESTION_WORDS = frozenset({"who", "whom", "whose", "what", "when", "where", "which", "why",
                            "how"})
# Common English words: a question with none of them is in a language the rules above do not
# know, so it is rewritten as before.
_ENGLISH = QUESTION_WORDS | {"is", "are", "was", "were", "do", "does", "did", "the", "a", "an",
                             "of", "in", "to", "for", "on", "with", "can", "could", "would",
                             "should", "has", "have", "had", "will"}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
MAX_EARLIER_CHARS = 300  # of the previous turn, in the fallback query


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def needs_context(question: str) -> bool:
    """Whether the question may lean on the conversation: it refers back ("it", "that"),
    continues ("And when?", "What about 2019?"), has under two content words, or is in a
    language these rules do not know. A standalone English question is not rewritten."""
    words = _words(question)
    if not words or not set(words) & _ENGLISH:
        return True
    if words[0] in OPENERS or words[:2] in (["what", "about"], ["how", "about"]):
        return True
    if set(words) & REFERRING:
        return True
    return len(set(tokenize([question])[0]) - QUESTION_WORDS) < 2


def usable_rewrite(rewrite: str, question: str, history: list[Message]) -> bool:
    """Whether the model's rewrite can stand for the question: one question (it ends with a
    question mark), no longer than needed, asking what was asked (the question's question
    words are kept), its pronouns replaced, with something named from the conversation that
    the question lacked."""
    if not rewrite.endswith("?") or len(rewrite) > 3 * len(question) + 200:
        return False
    asked, written = set(_words(question)), set(_words(rewrite))
    if asked & QUESTION_WORDS and not asked & QUESTION_WORDS & written:
        return False
    if asked & PRONOUNS & written:  # "When did John F. Kennedy propose it?"
        return False
    said = set(tokenize([" ".join(m["content"] for m in history)])[0])
    added = set(tokenize([rewrite])[0]) - set(tokenize([question])[0])
    return bool(added & said)


def with_earlier_turn(question: str, history: list[Message]) -> str:
    """The question with the previous exchange after it, as the query when no usable rewrite
    came back: what its pronouns stand for is then in the words searched for."""
    earlier = " ".join(m["content"].strip() for m in history[-2:]
                       if m.get("role") in ("user", "assistant"))
    if len(earlier) > MAX_EARLIER_CHARS:
        earlier = earlier[:MAX_EARLIER_CHARS].rsplit(" ", 1)[0] + " …"
    return f"{question} (Earlier: {earlier})" if earlier else question
