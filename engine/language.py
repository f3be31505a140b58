"""Is a text one the model can read? earlyrank's models read English; text mostly in another script cannot be
answered well, and an answer to it is withheld with a warning rather than given with false confidence.

The test is by script, not by language: the share of a text's letters that are not Latin (by their Unicode
names). Chinese, Japanese, Russian or Arabic text fails it; German or Spanish, written in Latin letters, passes
(the models read those poorly too, which the README says: English is the language supported).
"""

from __future__ import annotations

import unicodedata

MAX_NON_LATIN_SHARE = 0.5  # more than half of the letters outside the Latin script: not readable


def non_latin_share(text: str) -> float:
    """The share, in [0, 1], of `text`'s letters that are not Latin letters; 0.0 for a text with no letters.
    Compatibility forms of Latin letters (fullwidth "ｗ", mathematical "𝐰", ligatures) count as the letters they
    stand for (Unicode NFKC), as every question is read in that form (`reading_form`)."""
    letters = [c for c in unicodedata.normalize("NFKC", text) if c.isalpha()]
    if not letters:
        return 0.0
    return sum(not unicodedata.name(c, "").startswith("LATIN") for c in letters) / len(letters)


def unreadable_warning(text: str) -> str | None:
    """A warning for a text mostly in a script the model cannot read, else None."""
    share = non_latin_share(text)
    if share <= MAX_NON_LATIN_SHARE:
        return None
    return (f"{share:.0%} of the question's letters are not Latin letters: earlyrank reads English only, so no "
            f"answer is given; ask in English")


def reading_form(text: str) -> str:
    """`text` as earlyrank reads a question, stripped: in Unicode NFKC form, which turns compatibility forms into the
    letters they stand for ("ｗａｒｒａｎｔｙ", "𝐰𝐚𝐫𝐫𝐚𝐧𝐭𝐲" into "warranty"; the cross-encoder's tokenizer would read
    them as unknown pieces), unless that form has no letter or digit left (a lone halfwidth sound mark "ﾞ" becomes a
    combining mark): then as given, so a question that passed the content check keeps passing it."""
    from earlyrank.engine.rerank import has_content

    normal = unicodedata.normalize("NFKC", text).strip()
    return normal if has_content(normal) else text.strip()
