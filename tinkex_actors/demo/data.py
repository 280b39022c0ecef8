"""The demo's built-in dataset: English words and their pig latin, as token-level Datums.

Pig latin moves a word's leading consonants to its end and adds "ay" ("string" -> "ingstray");
a word that starts with a vowel just gains "way" ("apple" -> "appleway"). A byte-level model
learns it visibly within a minute, which is why the demo uses it. Every example is the text
`"<word> -> <pig latin>\\n"`; the loss is taken on the completion only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from tinkex_actors import types
from tinkex_actors.tokenizer import ByteTokenizer

__all__ = [
    "SEPARATOR",
    "WORDS",
    "Tokenizer",
    "char_match",
    "completion_tokens",
    "decode_completion",
    "example_pairs",
    "pig_latin",
    "prompt_tokens",
    "supervised_datum",
]

SEPARATOR = " -> "
_VOWELS = frozenset("aeiou")

# Short, common words: a byte model with an 8-byte window can still see all of a short word.
_WORD_TEXT = """
    able acid aged also area army away baby back ball band bank base bath bear beat
    bell belt best bird blow blue boat body bone book boot born boss both bowl burn
    busy cake call calm camp card care cart case cash cast cell chat chip city clay
    club coal coat code cold cook cool copy corn cost crew crop dark data date dawn
    deal dear deep desk diet dish dock door down draw drop drum duck dust duty each
    earn ease east easy edge else even ever exit face fact fair fall farm fast fear
    feel file fill film find fine fire firm fish flag flat flow food foot form fork
    free frog fuel full fund gain game gate gift girl give glad glow goal gold golf
    good grab gray grew grin grip grow hair half hall hand hang hard harm hate head
    heat help herb hero high hill hint hold hole home hope horn host hour huge idea
    inch iron item jazz join joke jump jury keen keep kick kind king kiss knee knot
    lack lady lake lamp land lane last late lead leaf lean left lens life lift like
    line link lion list live load loan lock long look loop lord loud love luck lung
    made mail main make mall many mark mask meal meat menu mild milk mind mine mint
    miss mode moon more most move much must name navy near neck need nest news next
    nice nose note oath okay once only open oval oven over pace pack page pain pair
    palm park part pass past path peak pick pile pine pink pipe plan play plot plug
    plus poem poet pole pond pool poor port pose post pour pray pull pump pure push
    quiz race rail rain rank rare rate read real rest rice rich ride ring rise risk
    road rock role roll roof room root rope rose rule rush safe sail salt same sand
    save seat seed seek self sell send ship shoe shop shot show shut sick side sign
    silk sing sink site size skin slip slow snow soap sock soft soil song soon sort
    soul soup spin spot star stay step stop suit swim tail take talk tall tank tape
    task team tear tell tent term test text than then thin tide tile time tiny tone
    tool tour town trap tree trip true tube tune turn twin type unit upon used vast
    view vote wage wait wake walk wall want warm wash wave weak wear week well west
    wide wild will wind wine wing wire wise wish wolf wood wool word work yard year
    zero zone
"""
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


def pig_latin(word: str) -> str:
    """The pig latin of a lower-case word ("string" -> "ingstray", "apple" -> "appleway")."""
    if not word or not word.isalpha() or not word.islower():
        raise ValueError(f"word={word!r}: pig_latin takes one lower-case word of letters a-z")
    if word[0] in _VOWELS:
        return word + "way"
    start = 0
    while start < len(word) and word[start] not in _VOWELS:
        start += 1
        if word[start - 1] == "q" and word[start : start + 1] == "u":
            start += 1  # "qu" travels together: "quiz" -> "izquay"
    return word[start:] + word[:start] + "ay"


def example_pairs(count: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(word, pig latin) pairs in a seeded shuffled order; all the words when `count` is None."""
    words = list(WORDS)
    random.Random(seed).shuffle(words)
    if count is not None:
        if count < 1:
            raise ValueError(f"count={count!r} must be >= 1 (or None for every word)")
        words = words[:count]
    return [(word, pig_latin(word)) for word in words]


class Tokenizer(Protocol):
    """What the demo needs of a tokenizer (the byte tokenizer and Hugging Face ones fit)."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]:
        """Token ids of `text`."""
        ...

    def decode(self, token_ids: list[int]) -> str:
        """Text of token ids."""
        ...


def _encode(text: str, tokenizer: Tokenizer | None) -> list[int]:
    if tokenizer is None:
        return list(text.encode("utf-8"))
    return list(tokenizer.encode(text, add_special_tokens=False))


def prompt_tokens(word: str, tokenizer: Tokenizer | None = None) -> list[int]:
    """The tokens the model is prompted with: `"<word> -> "` (bytes without a tokenizer)."""
    return _encode(f"{word}{SEPARATOR}", tokenizer)


def completion_tokens(target: str, tokenizer: Tokenizer | None = None) -> list[int]:
    """The tokens the model should produce: the pig latin and a newline (the stop)."""
    return _encode(f"{target}\n", tokenizer)


def supervised_datum(word: str, target: str, tokenizer: Tokenizer | None = None) -> types.Datum:
    """A cross_entropy Datum for one pair: weights 1 on the completion, 0 on the prompt."""
    prompt = prompt_tokens(word, tokenizer)
    tokens = prompt + completion_tokens(target, tokenizer)
    weights = np.zeros(len(tokens) - 1, dtype=np.float32)
    weights[len(prompt) - 1 :] = 1.0
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": types.TensorData.from_numpy(np.array(tokens[1:], dtype=np.int64)),
            "weights": types.TensorData.from_numpy(weights),
        },
    )


def decode_completion(tokens: Sequence[int], tokenizer: Tokenizer | None = None) -> str:
    """The text of sampled tokens, cut at the first newline; special tokens are dropped."""
    if tokenizer is None or isinstance(tokenizer, ByteTokenizer):
        text = bytes(t for t in tokens if 0 <= t < 256).decode("utf-8", "replace")
    else:
        text = tokenizer.decode(list(tokens))
    return text.split("\n", 1)[0]


def char_match(completion: str, target: str) -> float:
    """The fraction of the target's characters matched position by position, in [0, 1].

    Extra characters beyond the target count against it (the denominator is the longer of
    the two), so an empty or rambling completion scores low and only the exact answer scores 1.
    """
    longest = max(len(completion), len(target))
    if longest == 0:
        return 1.0
    same = sum(1 for a, b in zip(completion, target, strict=False) if a == b)
    return same / longest
