"""PubMed import against a local E-utilities stand-in (tests/eutils_server.py): no test
reaches the internet."""
from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from ingest.loaders import load_file
from ingest.pubmed import EUtilsClient, import_pubmed, present_pmids, read_pmid_file, split_records
from kb.config import PubMedSettings, Settings
from kb.errors import NetworkError, SourceError
from tests.eutils_server import DATA, QUERY, EUtilsStandIn
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder

ALL = [f"9000000{i}" for i in range(1, 8)]


@pytest.fixture
def server() -> Iterator[EUtilsStandIn]:
    s = EUtilsStandIn().start()
    yield s
    s.stop()


def pubmed_settings(url: str, **kw: object) -> PubMedSettings:
    base = dict(eutils_url=url, email="tester@example.org", rate_without_key=1000.0, rate_with_key=1000.0,
                backoff_s=0.001, batch_size=3, retries=2, timeout_s=5.0)
    base.update(kw)
    return PubMedSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, server: EUtilsStandIn) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return replace(Settings(), corpus_dir=corpus, index_dir=tmp_path / "index", model_name=FAKE_MODEL_NAME,
                   pubmed=pubmed_settings(server.url))


def run(settings: Settings, query: str = QUERY, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("ingest", False)
    kw.setdefault("show_progress", False)
    return import_pubmed(query, settings=settings, **kw)  # type: ignore[arg-type]


def folder(settings: Settings) -> Path:
    return settings.corpus_dir / "pubmed"


def test_import_pages_over_batches_and_second_run_adds_none(settings: Settings, server: EUtilsStandIn) -> None:
    report = run(settings, max_records=50, ingest=True, embedder=FakeEmbedder())
    assert report.found == 7 and report.requested == 7
    assert sorted(report.added) == ALL and not report.failed and not report.skipped
    assert sorted(p.name for p in folder(settings).iterdir()) == [f"{p}.xml" for p in ALL]
    # ESearch with history, then EFetch by WebEnv/query_key in batches of 3
    (search,) = server.calls("esearch.fcgi")
    assert search["usehistory"] == "y" and search["term"] == QUERY and search["retmax"] == "50"
    fetches = server.calls("efetch.fcgi")
    assert [f["retstart"] for f in fetches] == ["0", "3", "6"]
    assert all(f["WebEnv"] == "MCID_TEST_WEBENV_0001" and f["query_key"] == "1" and f["retmode"] == "xml"
               for f in fetches)
    # NCBI policy parameters on every request
    assert all(p["tool"] == "fsgs-kb" and p["email"] == "tester@example.org" and "api_key" not in p
               for _, p in server.requests)
    # each file holds one record the loader reads on its own
    for pmid in ALL:
        (doc,) = load_file(folder(settings) / f"{pmid}.xml", 10**6)
        assert doc.meta.pmid == pmid and doc.part == ""
    assert report.ingest is not None and report.ingest.documents == 7

    server.requests.clear()
    again = run(settings, max_records=50, ingest=True, embedder=FakeEmbedder())
    assert again.added == () and sorted(again.skipped) == ALL
    assert server.calls("efetch.fcgi") == []  # nothing fetched twice
    assert again.ingest is not None and again.ingest.up_to_date


def test_max_limits_the_import(settings: Settings, server: EUtilsStandIn) -> None:
    report = run(settings, max_records=2)
    assert report.found == 7 and report.added == ("90000001", "90000002")
    assert server.calls("esearch.fcgi")[0]["retmax"] == "2"
    assert server.calls("efetch.fcgi")[0]["retmax"] == "2"


def test_since_filters_by_publication_date(settings: Settings, server: EUtilsStandIn) -> None:
    run(settings, max_records=5, since=2020)
    (search,) = server.calls("esearch.fcgi")
    assert (search["datetype"], search["mindate"]) == ("pdat", "2020")


def test_empty_result(settings: Settings, server: EUtilsStandIn) -> None:
    report = run(settings, "xyzzyglomerulo")
    assert report.found == 0 and report.added == () and report.failed == ()
    assert server.calls("efetch.fcgi") == []
    assert "0 found" in report.summary()


def test_429_then_success_is_retried(settings: Settings, server: EUtilsStandIn) -> None:
    server.script.fail = [("esearch.fcgi", 429), ("efetch.fcgi", 503), ("efetch.fcgi", 429)]
    report = run(settings)
    assert sorted(report.added) == ALL and not report.failed
    assert len(server.calls("esearch.fcgi")) == 2 and len(server.calls("efetch.fcgi")) == 5


def test_persistent_5xx_reports_the_batch_and_keeps_the_others(settings: Settings, server: EUtilsStandIn) -> None:
    server.script.fail = [("efetch.fcgi", 500)] * 3  # the first batch: 1 try + 2 retries
    report = run(settings)
    assert sorted(report.added) == ALL[3:]
    assert len(report.failed) == 1 and "records 1-3" in report.failed[0] and "HTTP 500" in report.failed[0]


def test_retry_waits_back_off_and_honour_retry_after() -> None:
    waits: list[float] = []
    client = EUtilsClient(pubmed_settings("http://127.0.0.1:9/", backoff_s=0.5), sleep=waits.append)
    client._backoff(0, None)
    client._backoff(2, None)
    client._backoff(0, "7")
    client._backoff(0, "Wed, 21 Oct 2015 07:28:00 GMT")
    assert waits == [0.5, 2.0, 7.0, 0.5]


def test_malformed_batch_is_reported_and_good_batches_land(settings: Settings, server: EUtilsStandIn) -> None:
    server.script.malformed_retstarts = {3}
    report = run(settings)
    assert sorted(report.added) == ALL[:3] + ALL[6:]
    assert len(report.failed) == 1 and report.failed[0].startswith("records 4-6 (malformed XML")
    assert report.not_returned == ()
    assert not list(folder(settings).glob(".*"))
    # the server is fixed: a rerun fetches only the failed batch
    server.script.malformed_retstarts = set()
    server.requests.clear()
    again = run(settings)
    assert sorted(again.added) == ALL[3:6]
    assert [f["retstart"] for f in server.calls("efetch.fcgi")] == ["3"]


def test_interrupted_run_resumes_without_duplicates(settings: Settings, server: EUtilsStandIn) -> None:
    def stop_after_first_batch(done: int, total: int, message: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(settings, on_progress=stop_after_first_batch)
    assert present_pmids(folder(settings)) == set(ALL[:3])
    server.requests.clear()
    report = run(settings)
    assert sorted(report.added) == ALL[3:] and sorted(report.skipped) == ALL[:3]
    assert [f["retstart"] for f in server.calls("efetch.fcgi")] == ["3", "6"]
    assert sorted(p.name for p in folder(settings).iterdir()) == [f"{p}.xml" for p in ALL]


def test_a_write_killed_midway_leaves_no_half_file(settings: Settings, server: EUtilsStandIn,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pubmed as pubmed

    calls = {"n": 0}
    real_replace = pubmed.os.replace

    def failing_replace(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(pubmed.os, "replace", failing_replace)
    with pytest.raises(OSError):
        run(settings)
    assert present_pmids(folder(settings)) == {ALL[0]}
    assert not list(folder(settings).glob(".*"))  # the temporary file is gone too
    monkeypatch.setattr(pubmed.os, "replace", real_replace)
    assert sorted(run(settings).added) == ALL[1:]


def test_offline_gives_a_clear_message(settings: Settings) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offline = replace(settings, pubmed=pubmed_settings(f"http://127.0.0.1:{port}/", retries=1))
    with pytest.raises(NetworkError) as err:
        run(offline)
    assert err.value.offline
    assert "cannot reach NCBI E-utilities" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    assert "FSGS_KB_EUTILS_URL" in str(err.value) and "(connection refused)" in str(err.value)


def test_rate_limit_without_and_with_api_key(server: EUtilsStandIn) -> None:
    for key, gap in (("", 1 / 3), ("secret-key", 1 / 10)):
        waits: list[float] = []
        now = [100.0]  # a fake clock that only sleeping advances: requests take no time

        def sleep(s: float) -> None:
            waits.append(s)
            now[0] += s

        client = EUtilsClient(pubmed_settings(server.url, rate_without_key=3.0, rate_with_key=10.0, api_key=key),
                              sleep=sleep, clock=lambda: now[0])
        for _ in range(4):
            client.get("einfo.fcgi", {})
        assert waits == pytest.approx([gap] * 3)
    assert server.requests[-1][1]["api_key"] == "secret-key"
    assert "api_key" not in server.requests[0][1]


def test_pmid_file_fetches_by_id_and_skips_present(settings: Settings, server: EUtilsStandIn, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# my reading list\n90000001, 90000005\n90000001\n90000006\n", encoding="utf-8")
    assert read_pmid_file(ids) == ["90000001", "90000005", "90000006"]
    run(settings, max_records=1)  # 90000001 already present
    server.requests.clear()
    report = import_pubmed(pmids=read_pmid_file(ids), settings=settings, ingest=False, show_progress=False)
    assert report.added == ("90000005", "90000006") and report.skipped == ("90000001",)
    assert server.calls("esearch.fcgi") == []
    assert [f["id"] for f in server.calls("efetch.fcgi")] == ["90000005,90000006"]


def test_pmid_file_with_junk_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ids.txt"
    bad.write_text("90000001\nPMC12345\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        read_pmid_file(bad)
    assert "'PMC12345' is not a PMID" in str(err.value)


def test_record_without_abstract_and_retracted_record(settings: Settings) -> None:
    run(settings)
    (no_abstract,) = load_file(folder(settings) / "90000004.xml", 10**6)
    assert no_abstract.text == "Comment on: rituximab for steroid-resistant FSGS."
    assert any("no abstract" in w for w in no_abstract.warnings)
    (retracted,) = load_file(folder(settings) / "90000003.xml", 10**6)
    assert any("retracted" in w for w in retracted.warnings)


def test_split_records_keeps_each_article_whole() -> None:
    body = ((DATA / "efetch_head.xml").read_text() + (DATA / "records" / "90000001.xml").read_text()
            + (DATA / "records" / "90000002.xml").read_text() + (DATA / "efetch_tail.xml").read_text())
    records = split_records(body.encode())
    assert [p for p, _ in records] == ["90000001", "90000002"]
    assert b"<ArticleId IdType=\"doi\">10.9999/jtn.2021.0001</ArticleId>" in records[0][1]
    with pytest.raises(SourceError):
        split_records(b"<eFetchResult><ERROR>Empty result - nothing to do</ERROR></eFetchResult>")


def test_cli_imports_through_the_configured_server(tmp_path: Path, server: EUtilsStandIn,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from ingest.__main__ import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    monkeypatch.setenv("FSGS_KB_EUTILS_URL", server.url)
    monkeypatch.setenv("NCBI_API_KEY", "k123")
    assert main(["pubmed", QUERY, "--max", "50", "--corpus", str(corpus), "--no-ingest", "--quiet"]) == 0
    assert "7 found, 7 considered, 7 added" in capsys.readouterr().out
    assert all(p["api_key"] == "k123" for _, p in server.requests)
    assert main(["pubmed", QUERY, "--max", "50", "--corpus", str(corpus), "--no-ingest", "--quiet"]) == 0
    assert "0 added, 7 already present" in capsys.readouterr().out
