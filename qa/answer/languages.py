"""The language of a question and of the documents (py3langid), and the refusal in each."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import Any

# The languages told apart, with their names for prompts and the refusal in each. Detection
# picks among these only: a short English question is then never taken for a rare language.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("English", "The documents do not say."),
    "fr": ("French", "Les documents ne le disent pas."),
    "de": ("German", "Die Dokumente sagen das nicht."),
    "es": ("Spanish", "Los documentos no lo dicen."),
    "it": ("Italian", "I documenti non lo dicono."),
    "pt": ("Portuguese", "Os documentos não o dizem."),
    "nl": ("Dutch", "De documenten zeggen het niet."),
    "sv": ("Swedish", "Dokumenten säger inget om det."),
    "pl": ("Polish", "Dokumenty tego nie podają."),
    "ru": ("Russian", "В документах об этом не сказано."),
    "uk": ("Ukrainian", "У документах про це не сказано."),
    "tr": ("Turkish", "Belgeler bunu söylemiyor."),
    "ar": ("Arabic", "لا تذكر الوثائق ذلك."),
    "fa": ("Persian", "اسناد در این باره چیزی نمی‌گویند."),
    "hi": ("Hindi", "दस्तावेज़ों में यह नहीं बताया गया है।"),
    "ur": ("Urdu", "دستاویزات میں یہ نہیں بتایا گیا۔"),
    "zh": ("Chinese", "文件中没有提到这一点。"),
    "ja": ("Japanese", "文書には書かれていません。"),
    "ko": ("Korean", "문서에는 나와 있지 않습니다."),
    "vi": ("Vietnamese", "Tài liệu không nói đến điều này."),
    "id": ("Indonesian", "Dokumen tidak menyebutkannya."),
}
MIN_CONFIDENCE = 0.5  # below this the question is taken to be in the documents' language
SAMPLE_CHARS = 4000  # of the documents' text, for their language
MAX_NAMES = 40  # of the documents' names given to the question's translation
# Abbreviations (SCO, UNESCO) and capitalised names of two or more words (New York).
_NAME = re.compile(r"\b[A-Z][A-Z0-9]{1,7}\b|\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def detect(text: str) -> tuple[str, float]:
    """(code, probability) of the language text is written in, among LANGUAGES."""
    code, probability = _identifier().classify(text)
    return str(code), float(probability)


def language_of_documents(texts: list[str]) -> str:
    """The language the documents are written in, from the start of their text."""
    sample = " ".join(texts)[:SAMPLE_CHARS]
    return detect(sample)[0] if sample.strip() else "en"


def names_of_documents(texts: list[str]) -> list[str]:
    """The documents' most frequent abbreviations and names, for translating a question into
    the words the documents use (a foreign abbreviation of an organisation, say)."""
    counts = Counter(m.group(0) for text in texts for m in _NAME.finditer(text))
    return [name for name, _ in counts.most_common(MAX_NAMES)]


def other_language(question: str, documents: str) -> str | None:
    """The question's language when it is confidently not the documents' one, else None."""
    code, probability = detect(question)
    return code if code != documents and probability >= MIN_CONFIDENCE else None


def name(code: str) -> str:
    """The English name of a language code of LANGUAGES."""
    return LANGUAGES[code][0]


def refusal_in(code: str) -> str:
    """The refusal sentence in the language code."""
    return LANGUAGES[code][1]
