//! The bucket layout datasets live in:
//!
//! ```text
//! raw/stl/<sample_id>/<file>           uploaded source files
//! rendered/<sample_id>/<view>.png      multi-view renders
//! datasets/dataset_full.jsonl          every labelled sample
//! datasets/dataset_benchmark.jsonl     the sealed benchmark
//! ```

use super::location::Location;
use crate::error::{MediaError, Result};

/// A bucket root (local folder or `s3://bucket/prefix`) addressed by that layout.
#[derive(Debug, Clone)]
pub struct BucketLayout {
    root: Location,
}

impl BucketLayout {
    pub fn new(root: Location) -> Self {
        BucketLayout { root }
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    pub fn raw_stl_dir(&self, sample_id: &str) -> Result<Location> {
        Ok(self
            .root
            .child(&format!("raw/stl/{}", component(sample_id, "sample id")?)))
    }

    pub fn raw_stl(&self, sample_id: &str, file_name: &str) -> Result<Location> {
        Ok(self
            .raw_stl_dir(sample_id)?
            .child(component(file_name, "file name")?))
    }

    pub fn rendered(&self, sample_id: &str, view: &str) -> Result<Location> {
        Ok(self.root.child(&format!(
            "rendered/{}/{}.png",
            component(sample_id, "sample id")?,
            component(view, "view")?
        )))
    }

    pub fn dataset_full(&self) -> Location {
        self.root.child("datasets/dataset_full.jsonl")
    }

    pub fn dataset_benchmark(&self) -> Location {
        self.root.child("datasets/dataset_benchmark.jsonl")
    }
}

/// Ids become path components: one component, never `.`/`..`, so no id can reach outside
/// its folder.
fn component<'a>(value: &'a str, what: &str) -> Result<&'a str> {
    let bad = value.is_empty()
        || value == "."
        || value == ".."
        || value.contains('/')
        || value.contains('\\')
        || value.chars().any(char::is_control);
    if bad {
        return Err(MediaError::Invalid(format!(
            "{what} `{value}` cannot be used as a path component (empty, `.`/`..`, or holds `/`)"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let dir = tempfile::tempdir().unwrap();
        let layout = BucketLayout::new(Location::local(dir.path()).unwrap());
        let render = layout.rendered("s-1", "front").unwrap();
        assert!(
            render.to_string().ends_with("rendered/s-1/front.png"),
            "{render}"
        );
        assert!(layout
            .raw_stl("s-1", "part.stl")
            .unwrap()
            .to_string()
            .ends_with("raw/stl/s-1/part.stl"));
        assert!(layout
            .dataset_benchmark()
            .to_string()
            .ends_with("datasets/dataset_benchmark.jsonl"));
        assert!(layout.rendered("../x", "front").is_err());
        assert!(layout.raw_stl("a", "..").is_err());
    }
}
