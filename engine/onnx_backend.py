"""ONNX Runtime backends: the cross-encoder exported by the project, fp32 or int8 (dynamic quantization).

``export(model_dir)`` writes ``onnx/model-fp32.onnx`` (graph-optimized with ONNX Runtime's BERT fusions) and
``onnx/model-int8.onnx`` (weights of the matrix multiplications in int8, activations quantized on the fly;
VNNI instructions do the int8 products). Loading never exports: a missing file is an error naming the command.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ONNX_DIR = "onnx"


def onnx_path(model_dir: Path, precision: str) -> Path:
    """Where `model_dir`'s `precision` ("fp32" or "int8") export lives: ``model_dir/onnx/model-<precision>.onnx``."""
    return model_dir / ONNX_DIR / f"model-{precision}.onnx"


class OnnxBackend:
    """The cross-encoder's forward pass in ONNX Runtime on the CPU, from an exported fp32 or int8 graph; its tokenizer
    batches are numpy arrays (``tensors = "np"``)."""

    tensors = "np"

    def __init__(self, session, name: str):
        self.session = session
        self.inputs = {i.name for i in session.get_inputs()}
        self.name = name

    @classmethod
    def load(cls, model_dir: Path, precision: str) -> OnnxBackend:
        """A session for `model_dir`'s exported `precision` graph, all graph optimizations on, ``EARLYRANK_THREADS``
        threads (default: every core). ImportError naming the extra without onnxruntime; ValueError for a precision
        other than fp32 or int8; FileNotFoundError naming the export command when the file is not there."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("the onnx backends need onnxruntime: pip install 'earlyrank[onnx]'") from e
        if precision not in ("fp32", "int8"):
            raise ValueError(f"onnx precision must be fp32 or int8, got {precision!r}")
        path = onnx_path(model_dir, precision)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not exported yet; run: earlyrank export-onnx --model {model_dir}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(os.environ.get("EARLYRANK_THREADS", os.cpu_count() or 1))
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, f"onnx-{precision}")

    def forward(self, batch) -> np.ndarray:
        """Raw logits of one tokenized batch (numpy arrays; inputs the graph does not take are dropped), shape (pairs,),
        float32."""
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items() if k in self.inputs}
        return self.session.run(None, feeds)[0][:, 0].astype(np.float32)


def export(model_dir: Path, opset: int = 17) -> list[Path]:
    """Export the cross-encoder at `model_dir` to ONNX fp32 (optimized) and int8; returns the files."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    out = model_dir / ONNX_DIR
    out.mkdir(exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True,
                                                               dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    sample = tokenizer(["a question"], ["a passage of some words"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    raw = out / "model-raw.onnx"
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with torch.inference_mode():
        torch.onnx.export(model, tuple(sample[n] for n in names), str(raw), input_names=names,
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    optimized = optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
    fp32 = onnx_path(model_dir, "fp32")
    optimized.save_model_to_file(str(fp32))
    int8 = onnx_path(model_dir, "int8")
    # Fused ops (Attention, SkipLayerNorm) lack type information for shape inference; say the default is float.
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": __import__("onnx").TensorProto.FLOAT})
    raw.unlink()
    return [fp32, int8]
