"""KBRetriever: the langchain-tests standard retriever suite plus our citation metadata, on the
bundled corpus indexed with the fake embedder (offline, no model download)."""
from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever


from langchain_tests.integration_tests import RetrieversIntegrationTests

from kb.config import Settings
from kb.lc import KBRetriever
from kb.types import Filters
from tests.conftest import SEED_CORPUS
from tests.fakes import FAKE_MODEL_NAME, FakeEmbedder

QUERY = "cyclosporine response in steroid-resistant FSGS"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # trio is not installed


@pytest.fixture(scope="module")
def module_kb(tmp_path_factory: pytest.TempPathFactory):
    """One fake-embedder index for the whole module (the standard suite builds many retrievers)."""
    from ingest.build import ingest_corpus
    from kb.api import open_kb

    root = tmp_path_factory.mktemp("lc")
    corpus = root / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    settings = replace(Settings(), corpus_dir=corpus, index_dir=root / "index", model_name=FAKE_MODEL_NAME)
    embedder = FakeEmbedder()
    ingest_corpus(corpus, settings.index_dir, embedder=embedder, settings=settings, show_progress=False)
    return open_kb(settings.index_dir, embedder=embedder, settings=settings)


# The suite's one async test is a bare `async def`: something must run it. anyio's pytest
# plugin runs coroutine tests marked `anyio` and, unlike pytest-asyncio, ignores the mark on
# the class's sync tests (no warnings).
@pytest.mark.anyio
class TestKBRetrieverStandard(RetrieversIntegrationTests):
    """langchain_tests' own tests, unmodified (its no-override check enforces that)."""

    _base: Any = None

    @pytest.fixture(autouse=True)
    def _bind_index(self, module_kb: Any) -> None:
        # The suite reads constructor params from properties, which cannot take fixtures.
        type(self)._base = module_kb

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return KBRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"base": self._base, "k": 4}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_as_retriever_documents_carry_citation_fields(module_kb: Any) -> None:
    retriever = module_kb.as_retriever(k=3)
    assert isinstance(retriever, KBRetriever)
    docs = retriever.invoke(QUERY)
    assert len(docs) == 3
    for rank, doc in enumerate(docs, start=1):
        assert isinstance(doc, LCDocument)
        md = doc.metadata
        assert {"source", "title", "start", "end", "evidence", "doc_type", "year", "section",
                "chunk_id", "score", "rank"} <= set(md)
        text = module_kb.document(md["source"]).text
        assert text[md["start"]:md["end"]] == doc.page_content  # offsets cite the source exactly
        assert md["rank"] == rank
        assert md["evidence"] == module_kb.document(md["source"]).meta.evidence_level
        assert md["title"] and isinstance(md["score"], float)
        assert doc.id == md["chunk_id"]
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_filters_restrict_results(module_kb: Any) -> None:
    source = "002_9bd88bd73b08b3e6.txt"
    only = module_kb.as_retriever(k=5, filters=Filters(sources=(source,)))
    docs = only.invoke(QUERY)
    assert docs and {d.metadata["source"] for d in docs} == {source}
    # per-call filters override the constructor's (dict form for chains configured from JSON)
    other = "003_81d1ce97a56315c5.txt"
    docs = only.invoke(QUERY, filters={"sources": [other]})
    assert docs and {d.metadata["source"] for d in docs} == {other}


def test_matches_knowledge_base_search(module_kb: Any) -> None:
    hits = module_kb.search(QUERY, k=4)
    docs = module_kb.as_retriever(k=4).invoke(QUERY)
    assert [d.metadata["chunk_id"] for d in docs] == [h.chunk.chunk_id for h in hits]


def test_rejects_non_knowledge_base() -> None:
    with pytest.raises(Exception):
        KBRetriever(base=object(), k=2)


@pytest.mark.anyio
async def test_ainvoke_honours_k(module_kb: Any) -> None:
    docs = await module_kb.as_retriever(k=4).ainvoke(QUERY, k=2)
    assert len(docs) == 2
