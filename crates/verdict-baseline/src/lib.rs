//! Text baselines: TF-IDF + logistic regression, sentence embeddings + logistic regression.
