//! Model definitions (Qwen3-VL, ...) on candle: configs read from checkpoints, gradient-safe layers.
