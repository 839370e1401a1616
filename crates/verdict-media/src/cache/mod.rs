//! The image URL cache: listing images downloaded once, named `sha1(url)` + the URL's extension.
//!
//! A URL that keeps failing yields no file, only a row in `image_download_status.csv`; samples
//! whose image is missing fall back to text-only prompts downstream.

mod archive;
mod download;
mod name;
mod sample;
mod status;
mod validate;

pub use archive::{export_zip, import_zip, ZipImportReport};
pub use download::{FetchOptions, FetchOutcome, ImageCache};
pub use name::{cache_file_name, url_extension};
pub use sample::{image_urls, sample_image};
pub use status::{read_status_csv, write_status_csv, STATUS_FILE_NAME};
pub use validate::{check_image, sniff, ImageFormat, ImageProblem};
