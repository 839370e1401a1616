"""Reference side of `cargo run --release -p verdict-baseline --example bench_sklearn`.

Fits the same baselines as Verdict on the same files and reports timings and scores:

* `tfidf`: TfidfVectorizer(stop_words="english", max_features=10000) + LogisticRegression()
  (scikit-learn defaults otherwise); fit on train, predict_proba on test.
* `embedding`: SentenceTransformer(model_dir).encode(texts) on CPU with `--threads` torch
  threads; writes the embeddings (float32, row-major) for the Rust side to compare.

Input files are JSON lines `{"text": ..., "label": ...}`. The result is one JSON object on
the last line of stdout.
"""

import argparse
import json
import time


def read(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            texts.append(record["text"])
            labels.append(record["label"])
    return texts, labels


def tfidf(args):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_texts, train_labels = read(args.train)
    test_texts, test_labels = read(args.test)
    fit_started = time.perf_counter()
    vectorizer = TfidfVectorizer(stop_words="english", max_features=args.max_features)
    x_train = vectorizer.fit_transform(train_texts)
    vectorizer_seconds = time.perf_counter() - fit_started
    model = LogisticRegression()
    model.fit(x_train, train_labels)
    fit_seconds = time.perf_counter() - fit_started
    started = time.perf_counter()
    proba = model.predict_proba(vectorizer.transform(test_texts))
    predict_seconds = time.perf_counter() - started
    predicted = model.classes_[proba.argmax(axis=1)]
    with open(args.predictions, "w", encoding="utf-8") as f:
        json.dump([str(p) for p in predicted], f)
    return {
        "fit_seconds": fit_seconds,
        "vectorizer_seconds": vectorizer_seconds,
        "predict_seconds": predict_seconds,
        "macro_f1": f1_score(test_labels, predicted, average="macro"),
        "accuracy": accuracy_score(test_labels, predicted),
        "n_features": len(vectorizer.vocabulary_),
        "n_iter": int(model.n_iter_.max()),
    }


def embedding(args):
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    texts, _ = read(args.test)
    model = SentenceTransformer(args.model_dir, device="cpu")
    model.encode(texts[:8], batch_size=args.batch_size)  # warm-up
    started = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    np.asarray(vectors, dtype=np.float32).tofile(args.embeddings)
    return {"encode_seconds": seconds, "n_texts": len(texts), "threads": torch.get_num_threads()}


def gemm(args):
    """Seconds per (m, k) x (k, n) float32 product with torch on CPU (best of --repeats)."""
    import torch

    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    lhs = torch.randn(args.m, args.k, generator=generator)
    rhs = torch.randn(args.k, args.n, generator=generator)
    out = torch.empty(args.m, args.n)
    torch.matmul(lhs, rhs, out=out)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        torch.matmul(lhs, rhs, out=out)
        times.append(time.perf_counter() - started)
    return {"seconds": times, "threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["tfidf", "embedding", "gemm"])
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--predictions")
    parser.add_argument("--max-features", type=int, default=10000)
    parser.add_argument("--model-dir")
    parser.add_argument("--embeddings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--k", type=int, default=384)
    parser.add_argument("--n", type=int, default=1536)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    modes = {"tfidf": tfidf, "embedding": embedding, "gemm": gemm}
    result = modes[args.mode](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
