//! Service settings: batching, queue bound and hard limits. Plain data with defaults, so a
//! deployment can write them down and a test can shrink them.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that bounds what one request or the whole service may use.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Most items one model call processes together.
    pub max_batch_size: usize,
    /// Longest time a batch waits for requests admitted before it started and still being
    /// prepared, and the cap of the grace it gives newcomers while busy (see `batcher`); a
    /// lone request never pays it.
    pub max_wait: Duration,
    /// Items waiting for the model beyond the running batch; a full queue answers 503.
    pub queue_capacity: usize,
    /// Seconds a rejected caller is told to wait (`Retry-After`).
    pub retry_after_seconds: u64,
    /// Wall-clock limit of one request, from arrival to the last byte of a non-streamed answer.
    pub request_timeout: Duration,
    /// Largest request body (JSON or multipart).
    pub max_body_bytes: usize,
    /// Largest decoded image, in pixels; checked from the header before decoding
    /// (decompression bombs are refused without allocating).
    pub max_image_pixels: u64,
    /// Largest mesh upload, in triangles (after 3MF instancing).
    pub max_triangles: u64,
    /// Items of one `/v1/classify/batch` request.
    pub max_batch_items: usize,
    /// Images of one item or chat request.
    pub max_images_per_item: usize,
    /// Limit of an image URL download.
    pub url_timeout: Duration,
    /// Largest image URL download.
    pub max_url_bytes: u64,
    /// Required `Authorization: Bearer` token for `/v1/*`; `None` leaves them open.
    pub bearer_token: Option<String>,
    /// Upper bound on `max_tokens` of chat completions.
    pub max_new_tokens: usize,
    /// Longest `reason` of a classification answer, in bytes.
    pub max_reason_bytes: usize,
    /// Folder of `/v1/files` and `/v1/batches`, kept across restarts; `None`:
    /// `$VERDICT_BATCH_DIR` if set, else a temporary folder, gone with the process.
    pub batch_dir: Option<PathBuf>,
    /// Longest completion window a batch gets; past it the batch ends `expired`.
    pub max_batch_window: Duration,
    /// Largest `/v1/files` upload.
    pub max_file_bytes: usize,
    /// Requests of one batch in flight at once.
    pub batch_concurrency: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_wait: Duration::from_millis(10),
            queue_capacity: 256,
            retry_after_seconds: 1,
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 32 << 20,
            max_image_pixels: 40_000_000,
            max_triangles: 2_000_000,
            max_batch_items: 256,
            max_images_per_item: 8,
            url_timeout: Duration::from_secs(10),
            max_url_bytes: 16 << 20,
            bearer_token: None,
            max_new_tokens: 512,
            max_reason_bytes: 200,
            batch_dir: None,
            max_batch_window: Duration::from_secs(24 * 3600),
            max_file_bytes: 200 << 20,
            batch_concurrency: 4,
        }
    }
}
