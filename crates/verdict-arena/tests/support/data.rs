//! A small retrieval contest written at test time: PNG images and an embeddings Parquet file
//! where `base_embedding` ranks the `bad-*` gallery items first for every query and
//! `finetuned_embedding` the `good-*` items, so a test can tell the methods apart on screen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

/// Queries in the fixture (`q0` .. `q7`, split `test`).
pub const QUERIES: usize = 8;
/// Embedding width.
const DIMENSION: i32 = 3;

fn write_png(path: &Path, shade: u8) {
    let image = image::RgbImage::from_fn(8, 8, |x, y| {
        image::Rgb([shade, (x * 30) as u8, (y * 30) as u8])
    });
    image.save(path).unwrap();
}

fn unit(vector: [f32; 3]) -> [f32; 3] {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    vector.map(|v| v / norm)
}

/// Writes `emb.parquet` and `images/*.png` under `dir`; returns the Parquet path.
///
/// Rows: `q0..q7` (split `test`), `good-0..good-7` and `bad-0..bad-7` (split `train`, one
/// `bad` row with a null split, which still belongs to the gallery). Image paths are relative
/// to the Parquet file's folder.
pub fn write_retrieval_fixture(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    let mut splits = Vec::new();
    let mut base = Vec::new();
    let mut finetuned = Vec::new();
    let mut add = |id: String,
                   split: Option<&str>,
                   label: &str,
                   base_vector: [f32; 3],
                   tuned_vector: [f32; 3],
                   shade: u8| {
        let relative = format!("images/{id}.png");
        write_png(&dir.join(&relative), shade);
        texts.push(Some(format!("{id} text")));
        ids.push(id);
        paths.push(relative);
        labels.push(Some(label.to_owned()));
        splits.push(split.map(str::to_owned));
        base.push(unit(base_vector));
        finetuned.push(unit(tuned_vector));
    };
    for i in 0..QUERIES {
        let t = i as f32 * 0.1;
        add(
            format!("q{i}"),
            Some("test"),
            "query",
            [1.0, 0.0, t],
            [0.0, 1.0, t],
            20 * i as u8,
        );
    }
    for i in 0..QUERIES {
        let t = i as f32 * 0.05;
        add(
            format!("good-{i}"),
            Some("train"),
            "good",
            [0.0, 1.0, t],
            [0.1, 1.0, t],
            100 + i as u8,
        );
        let split = if i == 3 { None } else { Some("train") };
        add(
            format!("bad-{i}"),
            split,
            "bad",
            [1.0, 0.1, t],
            [1.0, 0.0, t],
            200 + i as u8,
        );
    }
    let embedding = |rows: &[[f32; 3]]| -> ArrayRef {
        let mut builder = FixedSizeListBuilder::new(Float32Builder::new(), DIMENSION)
            .with_field(Arc::new(Field::new("item", DataType::Float32, false)));
        for row in rows {
            builder.values().append_slice(row);
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let list_type = DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        DIMENSION,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("split", DataType::Utf8, true),
        Field::new("base_embedding", list_type.clone(), false),
        Field::new("finetuned_embedding", list_type, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(paths)),
            Arc::new(StringArray::from(texts)),
            Arc::new(StringArray::from(labels)),
            Arc::new(StringArray::from(splits)),
            embedding(&base),
            embedding(&finetuned),
        ],
    )
    .unwrap();
    let path = dir.join("emb.parquet");
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

/// The arena for the fixture: A = base, B = finetuned.
pub fn open_arena(parquet: &Path, store: &Path) -> verdict_arena::Arena {
    let spec_a = format!("{}#base_embedding", parquet.display());
    let spec_b = format!("{}#finetuned_embedding", parquet.display());
    let options = verdict_arena::ContestOptions::default();
    let a = verdict_arena::parse_method(&spec_a, &options.split).unwrap();
    let b = verdict_arena::parse_method(&spec_b, &options.split).unwrap();
    let contest = verdict_arena::build_contest(&a, &b, [&spec_a, &spec_b], &options).unwrap();
    verdict_arena::Arena::open(contest, store).unwrap()
}
