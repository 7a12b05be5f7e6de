"""Questions as they arrive: any `str` (lone surrogates, NUL and other control characters,
invisible format characters, only punctuation, RTL text, emoji, combining marks, invalid bytes
from the command line) gives an Answer from ask() and valid hits from search(); a non-`str`
question raises TypeError naming its type; the CLI answers every question even when one fails.

The index is the bundled corpus built with the fake embedder, opened with StrictFakeEmbedder,
which refuses lone surrogates as the real model's tokenizer does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.answer_check import check_answer
from kb.config import REPO_ROOT, Settings
from kb.question_input import clean_question, has_words
from kb.types import Answer, Hit
from tests.conftest import SEED_CORPUS
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder, StrictFakeEmbedder
from tests.test_ui_app import app_env  # noqa: F401  (the UI test fixture)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.build import ingest_corpus

    index_dir = tmp_path_factory.mktemp("questions") / "index"
    s = replace(Settings(), corpus_dir=SEED_CORPUS, index_dir=index_dir, model_name=FAKE_MODEL_NAME)
    ingest_corpus(SEED_CORPUS, index_dir, embedder=FakeEmbedder(), settings=s, show_progress=False)
    return index_dir


@pytest.fixture(scope="module")
def base(index_dir: Path):
    from kb.api import open_kb

    s = replace(Settings(), corpus_dir=SEED_CORPUS, index_dir=index_dir, model_name=FAKE_MODEL_NAME)
    return open_kb(index_dir, embedder=StrictFakeEmbedder(), settings=s)


def _clean_text(text: str) -> bool:
    """Encodable as UTF-8 and free of control characters: printable in a terminal and in JSON."""
    text.encode("utf-8")
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _assert_valid_answer(base, a: Answer) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(a, Answer)
    assert _clean_text(a.question), ascii(a.question)
    json.dumps(a.to_dict(), ensure_ascii=False).encode("utf-8")  # what the CLI prints
    report = check_answer(a, base)  # quotes are their document spans; the structure holds
    assert report.ok, report


def _assert_valid_hits(base, hits: list[Hit]) -> None:  # type: ignore[no-untyped-def]
    for h in hits:
        assert isinstance(h, Hit)
        c = h.chunk
        text = base.document(c.source).text
        assert 0 <= c.start < c.end <= len(text) and text[c.start:c.end] == c.text


@pytest.mark.parametrize("raw, clean", [
    ("dose\ud800?", "dose\ufffd?"),  # lone surrogate -> replacement character
    ("dose \udcff?", "dose \ufffd?"),  # an invalid byte from argv (surrogate escape)
    ("\ud83d\udc8a dose", "\U0001f48a dose"),  # a pair stored as two code units is joined
    ("tacrolimus\x00dose", "tacrolimus dose"),  # controls become spaces: words stay apart
    ("\x1b[1mdose\x1b[0m", "[1mdose [0m"),
    ("  what\n\tdose\r\n ", "what dose"),
    ("tacro\u00adlimus\u200b \ufeffdose", "tacrolimus dose"),  # invisible format characters removed
    ("\u202edose\u202c", "dose"),  # bidi override removed
    ("cyclospori\u0301ne", "cyclosporíne"),  # NFC joins a combining mark
    ("mg/m² µg ﬁ ½", "mg/m² µg ﬁ ½"),  # NFC, not NFKC: characters documents keep are kept
    ("מה המינון?", "מה המינון?"),
    ("", ""),
])
def test_clean_question(raw: str, clean: str) -> None:
    assert clean_question(raw) == clean
    assert clean_question(clean) == clean  # idempotent


def test_has_words() -> None:
    assert has_words("a") and has_words("7") and has_words("מה") and has_words("用量")
    assert not has_words("?! - \ufffd 💊 ")


# Odd but answerable: each still names tacrolimus or cyclosporine and a dose.
ODD = {
    "lone high surrogate": "tacrolimus dose\ud800?",
    "lone low surrogate (an invalid byte via surrogateescape)": "tacrolimus dose \udcff?",
    "surrogate pair as two code units": "\ud83d\udc8a tacrolimus dose?",
    "NUL": "tacrolimus\x00dose?",
    "terminal escape": "\x1b[31mtacrolimus\x1b[0m dose?",
    "C1 control and DEL": "tacrolimus\x85dose\x7f?",
    "zero-width space and soft hyphen": "tacro\u00adlimus\u200b dose?",
    "bidi override": "\u202etacrolimus dose?\u202c",
    "RTL text": "מה המינון של tacrolimus dose?",
    "emoji": "💊🩺 tacrolimus dose? 👩‍⚕️",
    "combining marks": "cyclospori\u0301ne do\u0308se?",
    "line separators": "tacrolimus\u2028dose\u2029?",
}


@pytest.mark.parametrize("question", ODD.values(), ids=ODD.keys())
def test_odd_questions_get_an_answer(base, question: str) -> None:
    a = base.ask(question)
    _assert_valid_answer(base, a)
    assert not a.error, a.text  # answered or abstained, not rejected
    assert "tacrolimus" in a.question or "cyclospor" in a.question


@pytest.mark.parametrize("question", ODD.values(), ids=ODD.keys())
def test_odd_queries_get_hits(base, question: str) -> None:
    hits = base.search(question, k=5)
    assert hits
    _assert_valid_hits(base, hits)


NOTHING_USABLE = ["?!?!", "...", "\x00", "\x00\x01\x02", "\ud800", "\udcff\udcfe", "💊💊", "\u200b \u200b",
                  "\x1b\x1b", "- * -"]


@pytest.mark.parametrize("question", NOTHING_USABLE)
def test_question_without_words_is_rejected_with_a_reason(base, question: str) -> None:
    a = base.ask(question)
    _assert_valid_answer(base, a)
    assert a.error and not a.citations and not a.sections and not a.closest
    assert (a.error, "empty" in a.text or "no letters or digits" in a.text) in {
        ("empty question", True), ("no words in question", True)}


@pytest.mark.parametrize("question", NOTHING_USABLE)
def test_query_without_words_finds_nothing(base, question: str) -> None:
    assert base.search(question) == []


def test_very_long_question_and_query(base) -> None:
    long = "What is the dose of tacrolimus?\x00\ud800 " * 3000
    a = base.ask(long)
    _assert_valid_answer(base, a)
    assert a.error and "too long" in a.text
    hits = base.search(long, k=3)  # searched on its first max_question_chars characters
    assert hits
    _assert_valid_hits(base, hits)


@pytest.mark.parametrize("value, named", [(123, "int"), (None, "NoneType"), (b"tacrolimus dose?", "bytes"),
                                          (bytearray(b"dose"), "bytearray"), (["dose"], "list")])
def test_non_str_question_raises_type_error(base, value: object, named: str) -> None:
    for call in (base.ask, base.search):
        with pytest.raises(TypeError) as e:
            call(value)  # type: ignore[arg-type]
        message = str(e.value)
        assert named in message and "str" in message
        if isinstance(value, (bytes, bytearray)):
            assert "decode" in message


# ---------------------------------------------------------------------------- fuzz

_WORDS = st.sampled_from(["tacrolimus", "dose", "cyclosporine", "CNI", "vs", "rituximab", "remission",
                          "FSGS", "?", " ", "trough", "children", "steroid", "mg/kg", "what is the"])
# Any code point, surrogates included, with the odd ones drawn often (uniformly, a surrogate
# would come up about once in 500 characters): surrogates, controls, format characters,
# line/paragraph separators, combining marks, right-to-left letters. Strings are joined from
# single characters: hypothesis's text() spreads its draws over the whole alphabet again.
_ANY_CHAR = st.one_of(st.characters(exclude_categories=()),
                      st.characters(categories=["Cs"]),
                      st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Mn"]),
                      st.characters(min_codepoint=0x0590, max_codepoint=0x06FF))
_ODD_TEXT = st.lists(_ANY_CHAR, max_size=40).map("".join)
_QUESTIONS = st.one_of(
    _ODD_TEXT,
    st.lists(st.one_of(_WORDS, _ODD_TEXT.map(lambda t: t[:3])), max_size=12).map(" ".join),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(question=_QUESTIONS)
def test_fuzz_ask_and_search(base, question: str) -> None:
    _assert_valid_answer(base, base.ask(question))
    _assert_valid_hits(base, base.search(question, k=5))


# ---------------------------------------------------------------------------- command line

def _cli(index_dir: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "FSGS_KB_EMBEDDER": "tests.fakes:StrictFakeEmbedder", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "kb", "ask", "--index", str(index_dir), *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)


def test_cli_invalid_byte_in_an_argument(index_dir: Path) -> None:
    done = _cli(index_dir, b"tacrolimus dose \xff?", "What is the cyclosporine dose?")
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err
    assert "Q: tacrolimus dose \ufffd?" in out  # the unreadable byte is shown as U+FFFD
    assert "Q: What is the cyclosporine dose?" in out
    assert out.count("Q: ") == 2 and "Traceback" not in err


def test_cli_json_invalid_byte_in_an_argument(index_dir: Path) -> None:
    done = _cli(index_dir, "--json", b"tacrolimus dose \xff?", b"\xfe\xff", "What is the cyclosporine dose?")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [r["question"] for r in rows] == ["tacrolimus dose \ufffd?", "\ufffd\ufffd",
                                             "What is the cyclosporine dose?"]
    assert not rows[0]["error"] and rows[1]["error"] and not rows[2]["error"]


def test_cli_search_invalid_bytes(index_dir: Path) -> None:
    env = {**os.environ, "FSGS_KB_EMBEDDER": "tests.fakes:StrictFakeEmbedder", "PYTHONPATH": str(REPO_ROOT)}
    run = [sys.executable, "-m", "kb", "search", "--index", str(index_dir), "-k", "2"]
    found = subprocess.run([*run, b"tacrolimus \xff dose"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)
    assert found.returncode == 0 and found.stdout.decode("utf-8").startswith("1. "), found.stderr
    nothing = subprocess.run([*run, b"\xff?"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)
    assert nothing.returncode == 0 and not nothing.stdout
    assert b"no letters or digits" in nothing.stderr


def test_cli_audit_invalid_byte_on_stdin(index_dir: Path) -> None:
    env = {**os.environ, "FSGS_KB_EMBEDDER": "tests.fakes:StrictFakeEmbedder", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "kb", "audit", "--index", str(index_dir), "--json", "-"],
                          input=b"Tacrolimus dose is 0.05-0.1 mg/kg \xff per day.\n", cwd=REPO_ROOT, env=env,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert rows and "\ufffd" in rows[0]["sentence"]


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_failure_on_one_question_is_reported_and_the_rest_answered(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    from kb import __main__ as cli
    from kb.api import KnowledgeBase

    real_ask = KnowledgeBase.ask

    def failing_ask(self, question, *a, **kw):  # type: ignore[no-untyped-def]
        if "boom" in question:
            raise RuntimeError("simulated failure")
        return real_ask(self, question, *a, **kw)

    monkeypatch.setattr(KnowledgeBase, "ask", failing_ask)
    monkeypatch.setenv("FSGS_KB_EMBEDDER", "tests.fakes:StrictFakeEmbedder")
    status = cli.main(["ask", "--index", str(index_dir), *(["--json"] if as_json else []),
                       "first tacrolimus dose?", "boom question", "last cyclosporine dose?"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "boom question" in err and "simulated failure" in err
    if as_json:
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["question"] for r in rows] == ["first tacrolimus dose?", "boom question", "last cyclosporine dose?"]
        assert rows[1]["error"] and not rows[0]["error"] and not rows[2]["error"]
    else:
        assert "Q: first tacrolimus dose?" in out and "Q: last cyclosporine dose?" in out
        assert "Q: boom question" not in out


# ---------------------------------------------------------------------------- UI

@pytest.mark.parametrize("question", ["tacrolimus dose\ud800?", "tacrolimus\x00dose?", "\x00", "\ud800?"])
def test_ui_odd_question(app_env: Settings, question: str) -> None:
    """The chat input cannot carry a lone surrogate (the browser-to-server message is UTF-8), so
    each question also takes the other way in, the pending question an example button sets."""
    from tests.test_ui_app import ask, run_app

    ways = ["pending"] + (["typed"] if _utf8(question) else [])
    for way in ways:
        at = run_app()
        if way == "typed":
            ask(at, question)
        else:
            at.session_state["pending"] = question
            at.run()
        assert not at.exception, (way, at.exception)
        turns = at.session_state["turns"]
        if clean_question(question):  # answered, or a clear message; the page stays up either way
            a = turns[-1].answer
            assert _clean_text(turns[-1].question) and _clean_text(a.question)
            assert a.text or a.citations
            if "tacrolimus" in question:
                assert not a.error
            else:
                assert "no letters or digits" in a.text and "no letters or digits" in at.error[0].value
        else:  # nothing but controls: ignored like an empty question
            assert turns == []


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------------- real model

@pytest.mark.realmodel
def test_real_model_lone_surrogate(real_kb) -> None:
    a = real_kb.ask("What is the tacrolimus dose\ud800?")
    assert not a.error and check_answer(a, real_kb).ok
    _assert_valid_hits(real_kb, real_kb.search("tacrolimus \udcff trough"))
