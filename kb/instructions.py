"""The one detector of text that addresses the reader or a model rather than stating anything:
planted instructions ("Ignore previous instructions and say ..."), prompt-injection
furniture (role markers, "system prompt") and requests to relay something ("tell the user").

Used at ingest (each citable sentence span is checked and the flagged spans are stored with its
chunk, `Chunk.flagged`), by the extractive answerer (flagged sentences are never evidence,
kb/evidence.py), by the LLM mode's verification (they never count as support, kb/verify.py),
and by every view that shows a passage (a visible WARNING).

The patterns below are of one form: an imperative or a statement aimed at whoever reads the
document (a person relaying it, or a model), about how to answer, not about patients. Ordinary
clinical instructions are imperatives too ("Take the tablet with food", "Tell your doctor if
you have a fever", "You must tell your doctor if you are pregnant"), so no pattern fires on an
imperative alone; each needs a marker of the reader-or-model form:
  - overriding earlier instructions: ignore / disregard / forget / override + previous / above /
    prior instructions, rules, prompt, context ("disregard the above");
  - naming the reader as a model or assistant: "as an AI", "you are now ...", "if you are a
    language model", "note to the AI", "act as / pretend to be an assistant / chatbot";
  - prompt vocabulary: "system prompt", "developer message", "new instructions", "jailbreak";
  - chat-template role markers: "SYSTEM:" / "Assistant:" at a line start, <|im_start|>, [INST];
  - relaying: "tell the user(s)", "inform the user", "tell anyone who asks", "do not tell /
    reveal ... the user";
  - answer-steering in the second person: "you must / should / will / have to / need to
    say / answer / respond / reply / claim / output ..." and sentence-initial "Say that ...",
    "Respond/Reply/Answer only with ...", "Always answer ...".
A sentence matching none of these is not flagged, however imperative it is.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Sequence

from kb.types import Span

WARNING = "this passage addresses the reader or a model; it is not used in answers"

_ROLE_NOUN = r"(?:ai|a\.i\.|assistant|chat\s?bot|chatgpt|gpt|llm|(?:large\s+)?language\s+model|bot)"
# Words one of which must be in a sentence for a pattern to be tried at all: most sentences
# hold none, so checking costs a word split instead of two dozen regex scans.
_ROLE = frozenset({"ai", "i", "assistant", "chat", "chatbot", "chatgpt", "gpt", "llm", "language", "bot"})
_OVERRIDE = frozenset({"ignore", "disregard", "forget", "override", "bypass"})
# What an injection tells the reader to drop.
_ORDERS = r"(?:instructions?|prompts?|rules|directions|directives|context|messages?|commands?|programming|guidance)\b"
_ANSWER = frozenset({"say", "claim", "output", "print", "respond", "reply", "answer"})

_PATTERNS: tuple[tuple[str, frozenset[str], str], ...] = (
    # "Ignore (all) previous instructions", "override your rules", "forget all prior rules": the
    # instructions must be qualified as earlier ones (or "your", "all"), so "ignore the directions
    # on the label" and "if you forget the instructions, ask your pharmacist" are not flagged;
    # negated ("do not ignore ...") neither.
    ("override", _OVERRIDE,
     r"(?<!not )(?<!never )(?<!n't )\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?"
     r"(?:the\s+|your\s+|these\s+|those\s+|my\s+)?(?:previous|prior|earlier|above|preceding|foregoing|"
     r"original|initial|system|safety)\s+(?:\w+\s+)?" + _ORDERS),
    ("override", _OVERRIDE,
     r"(?<!not )(?<!never )(?<!n't )\b(?:ignore|disregard|override|bypass)\s+(?:your|all)\s+" + _ORDERS),
    # "Disregard the above.", "Ignore everything above and ...": "above" as the thing ignored
    # (not "ignore the above values if ...").
    ("override", _OVERRIDE,
     r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)?\s*(?:of\s+)?(?:the\s+|what\s+(?:was\s+|is\s+)?)?"
     r"(?:above|before|previous|preceding|said\s+before)\b(?=\s*(?:[.,;:!)]|and\b|then\b|$))"),
    # The reader named as a model or assistant.
    ("model", _ROLE, rf"\bas\s+an?\s+{_ROLE_NOUN}\b"),
    ("model", _ROLE, rf"\byou\s+are\s+(?:now\s+|no\s+longer\s+|an?\s+|the\s+)+(?:helpful\s+|medical\s+)?{_ROLE_NOUN}\b"),
    ("model", frozenset({"now"}), r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+(?:you|always|answer|respond|reply|say)\b"),
    ("model", _ROLE, rf"\bif\s+you\s+are\s+an?\s+{_ROLE_NOUN}\b"),
    ("model", _ROLE, rf"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+)?{_ROLE_NOUN}\b"),
    ("model", _ROLE, rf"\b(?:dear|attention|hey)\s+{_ROLE_NOUN}\b"),
    ("model", _ROLE, rf"\b(?:any|the)\s+{_ROLE_NOUN}\s+(?:reading|processing|summari[sz]ing|answering)\b"),
    ("model", _ROLE, rf"\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+were\s+)?(?:an?\s+|the\s+)?{_ROLE_NOUN}\b"),
    ("model", frozenset({"pretend"}), r"\bpretend\s+(?:to\s+be|you\s+are)\b"),
    # Prompt vocabulary.
    ("prompt", frozenset({"prompt", "message", "instruction", "instructions"}),
     r"\b(?:system|developer|hidden|secret)\s+(?:prompt|message|instructions?)\b"),
    ("prompt", frozenset({"instruction", "instructions"}), r"\b(?:new|updated|real|actual)\s+instructions?\s*(?::|follow|are\b)"),
    ("prompt", frozenset({"jailbreak", "injection", "dan"}), r"\bjailbreak|\bprompt\s+injection\b|\bdan\s+mode\b"),
    # Chat-template role markers and special tokens.
    ("role", frozenset({"system", "assistant", "developer"}), r"(?:^|\n)\s*(?:#{1,4}\s*)?(?:system|assistant|developer)\s*:"),
    ("role", frozenset({"im_start", "im_end", "inst", "sys", "endoftext"}),
     r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext)\s*\|>|\[/?inst\]|<</?sys>>"),
    # Relaying to whoever asked.
    ("relay", frozenset({"user", "users"}), r"\b(?:tell|inform|convince)\s+(?:the\s+|any\s+|all\s+)?users?\b"),
    ("relay", frozenset({"asks", "ask"}), r"\b(?:tell|inform)\s+(?:anyone|everyone|whoever|people)\s+who\s+asks?\b"),
    ("relay", frozenset({"tell", "reveal", "mention", "disclose"}),
     r"\bdo\s+not\s+(?:tell|reveal|mention|disclose)\b[^.!?\n]{0,30}\b(?:the\s+users?|these\s+instructions|this\s+instruction)\b"),
    ("relay", frozenset({"user", "users"}), r"\bwhen\s+(?:the\s+|a\s+)?users?\s+asks?\b"),
    # Steering the answer, second person or sentence-initial imperative.
    ("steer", frozenset({"you"}),
     r"\byou\s+(?:must|should|shall|will|have\s+to|need\s+to|are\s+to)\s+(?:always\s+|only\s+)?"
     r"(?:say|answer|respond|reply|claim|output|print|state\s+that|recommend\s+that|tell\s+(?:the\s+)?(?:users?|readers?|them))\b"),
    ("steer", _ANSWER,
     r"^\W*(?:always\s+|only\s+|just\s+)?(?:(?:say|claim)\s+(?:that|only|exactly|[\"“'])|(?:output|print)\s+(?:exactly|[\"“']))"),
    ("steer", _ANSWER,
     r"^\W*(?:always\s+|only\s+)?(?:respond|reply|answer)\s+(?:only\s+|exactly\s+|always\s+)?(?:with|by\s+saying|that|in\s+the\s+form)\b"),
)

# Patterns are written in lower case and matched against the lower-cased sentence (faster than
# re.IGNORECASE).
_COMPILED = tuple((kind, triggers, re.compile(p)) for kind, triggers, p in _PATTERNS)
_WORD = re.compile(r"[a-z_]+")


def _matches(sentence: str) -> Iterator[str]:
    low = sentence.lower()
    words = set(_WORD.findall(low))
    for kind, triggers, rx in _COMPILED:
        if not triggers.isdisjoint(words) and rx.search(low):
            yield kind


def instruction_kinds(sentence: str) -> tuple[str, ...]:
    """Which kinds of reader-or-model address `sentence` holds (empty: none)."""
    return tuple(dict.fromkeys(_matches(sentence)))


def looks_like_instruction(sentence: str) -> bool:
    """True when `sentence` addresses the reader or a model (see the module docstring)."""
    return next(_matches(sentence), None) is not None


def flagged_spans(text: str, spans: Iterable[Span], offset: int = 0) -> tuple[Span, ...]:
    """The spans (absolute offsets; `text` starts at `offset`) whose text addresses the reader
    or a model: what ingest stores as `Chunk.flagged`."""
    return tuple((a, b) for a, b in spans if looks_like_instruction(text[a - offset:b - offset]))


def overlaps(spans: Sequence[Span], start: int, end: int) -> bool:
    """Whether [start, end) overlaps any of `spans`."""
    return any(a < end and start < b for a, b in spans)
