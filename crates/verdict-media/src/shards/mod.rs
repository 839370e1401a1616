//! WebDataset shards: POSIX tar files where consecutive members `<key>.<ext>` form one sample.
//!
//! The layout is the one the Python `webdataset` library reads and writes, so shards move
//! freely between Verdict trainers and existing PyTorch loaders.

mod build;
mod image;
mod reader;
mod tar_stream;
mod writer;

pub use build::{build_split_shards, mini_train, BuildReport, ShardOptions};
pub use image::{resize_and_pad, ResizeSpec};
pub use reader::{list_shards, ShardReader, WorkerShard};
pub use tar_stream::{split_member_name, TarEntry, TarStream};
pub use writer::{ShardSample, ShardWriter};
