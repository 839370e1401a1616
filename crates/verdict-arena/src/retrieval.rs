//! Retrieval contests: for every query row, each method's top-k gallery rows by cosine
//! similarity of its embedding column.
//!
//! Embeddings file layout (one row per image):
//! `image_id` utf8, `path` utf8 (absolute or relative to the file's folder), `text`, `label`,
//! `split` (utf8, nullable) and one or more `fixed_size_list<float32>[D]` embedding columns.
//! Queries are the rows whose `split` is the chosen split; the gallery is every other row.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use crate::contest::{resolve_image, Card, Contest, ContestKind, ImageRegistry, MethodInfo, Query};
use crate::error::{ArenaError, Result};
use crate::method::ContestOptions;

/// Metadata of one row of an embeddings file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub image_id: String,
    pub path: String,
    pub text: Option<String>,
    pub label: Option<String>,
    pub split: Option<String>,
}

/// One embeddings file read for one column.
///
/// # Shapes
/// `vectors`: `[rows.len() * dimension]`, row-major, each row scaled to unit length.
#[derive(Debug, Clone)]
pub struct EmbeddingTable {
    pub path: PathBuf,
    pub column: String,
    pub rows: Vec<ImageRow>,
    pub dimension: usize,
    pub vectors: Vec<f32>,
}

impl EmbeddingTable {
    /// Reads `column` and the row metadata of `path`.
    ///
    /// Every row needs an embedding in `column`: a missing one is an error naming the row,
    /// because silently leaving rows out would change what the methods are judged on.
    pub fn read(path: &Path, column: &str) -> Result<EmbeddingTable> {
        let file = File::open(path).map_err(|source| ArenaError::io(path, source))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|error| {
                ArenaError::file(path, format!("not a readable Parquet file: {error}"))
            })?
            .build()?;
        let mut table = EmbeddingTable {
            path: path.to_path_buf(),
            column: column.to_owned(),
            rows: Vec::new(),
            dimension: 0,
            vectors: Vec::new(),
        };
        for batch in reader {
            table.append(&batch?)?;
        }
        let mut seen = HashSet::new();
        for (index, row) in table.rows.iter().enumerate() {
            if !seen.insert(row.image_id.as_str()) {
                return Err(
                    table.row_error(index, format!("image_id `{}` appears twice", row.image_id))
                );
            }
        }
        Ok(table)
    }

    fn row_error(&self, index: usize, message: impl Into<String>) -> ArenaError {
        ArenaError::Row {
            path: self.path.clone(),
            row: index + 1,
            message: message.into(),
        }
    }

    fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        let first_row = self.rows.len();
        let ids = self.strings(batch, "image_id", true)?;
        let paths = self.strings(batch, "path", true)?;
        let texts = self.strings(batch, "text", false)?;
        let labels = self.strings(batch, "label", false)?;
        let splits = self.strings(batch, "split", false)?;
        let embeddings = batch
            .column_by_name(&self.column)
            .ok_or_else(|| ArenaError::file(&self.path, format!("no column `{}`", self.column)))?;
        for row in 0..batch.num_rows() {
            let location = first_row + row;
            let image_id = required(&ids, row)
                .ok_or_else(|| self.row_error(location, "`image_id` is empty"))?;
            let path =
                required(&paths, row).ok_or_else(|| self.row_error(location, "`path` is empty"))?;
            let vector = self.embedding(embeddings, row, location)?;
            self.rows.push(ImageRow {
                image_id,
                path,
                text: optional(&texts, row),
                label: optional(&labels, row),
                split: optional(&splits, row),
            });
            self.vectors.extend(vector);
        }
        Ok(())
    }

    /// A utf8 column (any string type, cast); `None` when an optional column is absent.
    fn strings(
        &self,
        batch: &RecordBatch,
        name: &str,
        needed: bool,
    ) -> Result<Option<StringArray>> {
        let Some(column) = batch.column_by_name(name) else {
            return if needed {
                Err(ArenaError::file(&self.path, format!("no column `{name}`")))
            } else {
                Ok(None)
            };
        };
        let cast = arrow_cast::cast(column, &DataType::Utf8).map_err(|error| {
            ArenaError::file(&self.path, format!("column `{name}` is not text: {error}"))
        })?;
        Ok(Some(cast.as_string::<i32>().clone()))
    }

    fn embedding(&mut self, column: &ArrayRef, row: usize, location: usize) -> Result<Vec<f32>> {
        if column.is_null(row) {
            return Err(self.row_error(location, format!("`{}` is null", self.column)));
        }
        let values: ArrayRef = match column.data_type() {
            DataType::FixedSizeList(..) => column.as_fixed_size_list().value(row),
            DataType::List(_) => column.as_list::<i32>().value(row),
            DataType::LargeList(_) => column.as_list::<i64>().value(row),
            other => {
                return Err(ArenaError::file(
                    &self.path,
                    format!(
                        "column `{}` is {other}, expected a list of floats",
                        self.column
                    ),
                ))
            }
        };
        let values = arrow_cast::cast(&values, &DataType::Float32).map_err(|error| {
            ArenaError::file(
                &self.path,
                format!("column `{}` does not hold floats: {error}", self.column),
            )
        })?;
        let values = values.as_primitive::<Float32Type>();
        if values.null_count() > 0 {
            return Err(self.row_error(location, format!("`{}` has a null element", self.column)));
        }
        let mut vector: Vec<f32> = values.values().to_vec();
        if self.rows.is_empty() && self.dimension == 0 {
            self.dimension = vector.len();
        }
        if vector.len() != self.dimension || vector.is_empty() {
            return Err(self.row_error(
                location,
                format!(
                    "`{}` has {} values, earlier rows {}",
                    self.column,
                    vector.len(),
                    self.dimension
                ),
            ));
        }
        // Stored embeddings should be unit length already; normalising again makes the dot
        // product a cosine even when a writer forgot.
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(self.row_error(
                location,
                format!("`{}` has zero or non-finite length", self.column),
            ));
        }
        vector.iter_mut().for_each(|v| *v /= norm);
        Ok(vector)
    }

    fn vector(&self, row: usize) -> &[f32] {
        &self.vectors[row * self.dimension..(row + 1) * self.dimension]
    }

    /// Rows whose split is `split` (queries) and all the others (gallery).
    pub fn partition(&self, split: &str) -> (Vec<usize>, Vec<usize>) {
        (0..self.rows.len()).partition(|&row| self.rows[row].split.as_deref() == Some(split))
    }

    /// For each query row, the `k` gallery rows with the highest cosine similarity, best first
    /// (ties: earlier row first).
    pub fn top_k(&self, queries: &[usize], gallery: &[usize], k: usize) -> Vec<Vec<(usize, f32)>> {
        queries
            .par_iter()
            .map(|&query| {
                let q = self.vector(query);
                let mut scored: Vec<(usize, f32)> = gallery
                    .iter()
                    .map(|&row| (row, dot(q, self.vector(row))))
                    .collect();
                scored.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                scored.truncate(k);
                scored
            })
            .collect()
    }
}

fn dot(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn required(column: &Option<StringArray>, row: usize) -> Option<String> {
    optional(column, row).filter(|text| !text.is_empty())
}

fn optional(column: &Option<StringArray>, row: usize) -> Option<String> {
    let column = column.as_ref()?;
    (!column.is_null(row)).then(|| column.value(row).to_owned())
}

/// Builds a retrieval contest from `(file, column)` of method A and of method B.
pub fn build(
    sources: [(&Path, &str); 2],
    methods: [MethodInfo; 2],
    options: &ContestOptions,
) -> Result<Contest> {
    let tables = [
        EmbeddingTable::read(sources[0].0, sources[0].1)?,
        EmbeddingTable::read(sources[1].0, sources[1].1)?,
    ];
    let mut images = ImageRegistry::default();
    let mut rankings: Vec<BTreeMap<String, Vec<Card>>> = Vec::with_capacity(2);
    let mut query_rows: Vec<BTreeMap<String, usize>> = Vec::with_capacity(2);
    for table in &tables {
        let (queries, gallery) = table.partition(&options.split);
        if queries.is_empty() {
            return Err(ArenaError::file(
                &table.path,
                format!(
                    "no row has split `{}`: nothing to use as queries",
                    options.split
                ),
            ));
        }
        if gallery.is_empty() {
            return Err(ArenaError::file(
                &table.path,
                "every row is a query: the gallery is empty",
            ));
        }
        let ranked = table.top_k(&queries, &gallery, options.top_k);
        let mut by_query = BTreeMap::new();
        for (&query, hits) in queries.iter().zip(ranked) {
            let cards = hits
                .into_iter()
                .map(|(row, _)| card(table, row, &mut images, options))
                .collect::<Result<Vec<_>>>()?;
            by_query.insert(table.rows[query].image_id.clone(), cards);
        }
        query_rows.push(
            queries
                .iter()
                .map(|&row| (table.rows[row].image_id.clone(), row))
                .collect(),
        );
        rankings.push(by_query);
    }
    let ids_a: Vec<&String> = query_rows[0].keys().collect();
    let ids_b: Vec<&String> = query_rows[1].keys().collect();
    if ids_a != ids_b {
        let only_a = ids_a
            .iter()
            .filter(|id| !query_rows[1].contains_key(**id))
            .count();
        let only_b = ids_b
            .iter()
            .filter(|id| !query_rows[0].contains_key(**id))
            .count();
        return Err(ArenaError::Mismatch(format!(
            "the methods have different `{}` queries: {only_a} image ids only in {}, {only_b} only in {}",
            options.split,
            tables[0].path.display(),
            tables[1].path.display()
        )));
    }
    let mut rankings_b = rankings.pop().unwrap_or_default();
    let mut rankings_a = rankings.pop().unwrap_or_default();
    let mut queries = Vec::with_capacity(query_rows[0].len());
    for (id, &row) in &query_rows[0] {
        let prompt = card(&tables[0], row, &mut images, options)?;
        let answers = [
            rankings_a.remove(id).unwrap_or_default(),
            rankings_b.remove(id).unwrap_or_default(),
        ];
        queries.push(Query {
            id: id.clone(),
            prompt,
            answers,
        });
    }
    Ok(Contest {
        kind: ContestKind::Retrieval,
        methods,
        queries,
        images,
    })
}

fn card(
    table: &EmbeddingTable,
    row: usize,
    images: &mut ImageRegistry,
    options: &ContestOptions,
) -> Result<Card> {
    let meta = &table.rows[row];
    let path = resolve_image(&meta.path, &table.path, options.images_root.as_deref());
    let image = images
        .register(&path)
        .map_err(|error| table.row_error(row, format!("image `{}`: {error}", meta.image_id)))?;
    Ok(Card {
        image: Some(image),
        text: meta.text.clone(),
        label: meta.label.clone(),
        ..Card::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> ImageRow {
        ImageRow {
            image_id: id.into(),
            path: format!("{id}.png"),
            text: None,
            label: None,
            split: Some("train".into()),
        }
    }

    #[test]
    fn top_k_orders_by_cosine_and_breaks_ties_by_row() {
        // Query along x; gallery rows at 50, 10, 90, 30 degrees and a copy of the 10 degree row.
        let angles = [0.0_f32, 50.0, 10.0, 90.0, 30.0, 10.0];
        let vectors = angles
            .iter()
            .flat_map(|degrees| {
                let radians = degrees.to_radians();
                [radians.cos(), radians.sin()]
            })
            .collect();
        let table = EmbeddingTable {
            path: "t.parquet".into(),
            column: "e".into(),
            rows: (0..angles.len()).map(|i| row(&format!("r{i}"))).collect(),
            dimension: 2,
            vectors,
        };
        let ranked = table.top_k(&[0], &[1, 2, 3, 4, 5], 4);
        let rows: Vec<usize> = ranked[0].iter().map(|(row, _)| *row).collect();
        assert_eq!(rows, [2, 5, 4, 1]);
        assert!((ranked[0][0].1 - 10f32.to_radians().cos()).abs() < 1e-6);
    }
}
