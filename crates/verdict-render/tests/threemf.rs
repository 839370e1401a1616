//! 3MF archives built here with the `zip` writer: objects, components, transforms, build
//! items, and the hostile cases (zip bomb, component cycles, exponential instancing).

use std::io::Write;
use std::path::Path;

use verdict_render::load::parse_3mf;
use verdict_render::{LoadLimits, RenderError};

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>"#;

fn archive(model: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(&mut bytes));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file("_rels/.rels", options).unwrap();
        writer.write_all(RELS.as_bytes()).unwrap();
        writer.start_file("3D/3dmodel.model", options).unwrap();
        writer.write_all(model.as_bytes()).unwrap();
        writer.finish().unwrap();
    }
    bytes
}

const TETRA: &str = r#"<mesh><vertices>
 <vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/><vertex x="0" y="0" z="1"/>
</vertices><triangles>
 <triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/><triangle v1="0" v2="3" v3="2"/><triangle v1="1" v2="2" v3="3"/>
</triangles></mesh>"#;

fn model(resources: &str, build: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
<resources>{resources}</resources><build>{build}</build></model>"#
    )
}

fn load(bytes: &[u8], limits: &LoadLimits) -> Result<verdict_render::Scene, RenderError> {
    parse_3mf(Path::new("t.3mf"), bytes, limits).map(|(scene, _)| scene)
}

#[test]
fn build_items_components_and_transforms() {
    let resources = format!(
        r#"<object id="1" type="model" name="tetra">{TETRA}</object>
<object id="2" type="model" name="pair"><components>
  <component objectid="1"/>
  <component objectid="1" transform="1 0 0 0 1 0 0 0 1 10 0 0"/>
</components></object>"#
    );
    let build = r#"<item objectid="2" transform="2 0 0 0 2 0 0 0 2 0 0 5"/><item objectid="1"/>"#;
    let scene = load(&archive(&model(&resources, build)), &LoadLimits::default()).unwrap();
    assert_eq!(scene.parts.len(), 2);
    assert_eq!(scene.parts[0].name, "pair");
    assert_eq!(scene.parts[0].triangles.len(), 8);
    assert_eq!(scene.parts[1].triangles.len(), 4);
    // Component shift (10 along x) happens before the item's scale by 2 and lift by 5.
    let max_x = scene.parts[0]
        .triangles
        .iter()
        .flatten()
        .map(|v| v.x)
        .fold(f32::MIN, f32::max);
    let min_z = scene.parts[0]
        .triangles
        .iter()
        .flatten()
        .map(|v| v.z)
        .fold(f32::MAX, f32::min);
    assert_eq!((max_x, min_z), (22.0, 5.0));
}

#[test]
fn zip_bomb_is_refused_by_the_decompressed_size_cap() {
    // 64 MiB of whitespace inside the model compresses to well under 100 kB.
    let padding = " ".repeat(64 << 20);
    let bytes = archive(&model(
        &format!("<object id=\"1\">{TETRA}</object>{padding}"),
        r#"<item objectid="1"/>"#,
    ));
    assert!(bytes.len() < 200_000, "archive is {} bytes", bytes.len());
    let limits = LoadLimits {
        max_decompressed_bytes: 8 << 20,
        ..LoadLimits::default()
    };
    let error = load(&bytes, &limits).unwrap_err();
    assert!(matches!(error, RenderError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("zip bomb"), "{error}");
}

#[test]
fn exponential_instancing_hits_the_triangle_cap() {
    // Each level holds ten copies of the one below: 10^9 tetrahedra from a few hundred bytes.
    let mut resources = format!(r#"<object id="1">{TETRA}</object>"#);
    for level in 2..=10 {
        let components = (0..10)
            .map(|_| format!(r#"<component objectid="{}"/>"#, level - 1))
            .collect::<String>();
        resources.push_str(&format!(
            r#"<object id="{level}"><components>{components}</components></object>"#
        ));
    }
    let bytes = archive(&model(&resources, r#"<item objectid="10"/>"#));
    let limits = LoadLimits {
        max_triangles: 100_000,
        ..LoadLimits::default()
    };
    let error = load(&bytes, &limits).unwrap_err();
    assert!(
        matches!(error, RenderError::TooManyTriangles { .. }),
        "{error}"
    );
}

#[test]
fn component_cycles_and_bad_references_are_errors() {
    let cyclic = model(
        r#"<object id="1"><components><component objectid="2"/></components></object>
           <object id="2"><components><component objectid="1"/></components></object>"#,
        r#"<item objectid="1"/>"#,
    );
    let error = load(&archive(&cyclic), &LoadLimits::default()).unwrap_err();
    assert!(error.to_string().contains("contains itself"), "{error}");

    let dangling = model(
        &format!(r#"<object id="1">{TETRA}</object>"#),
        r#"<item objectid="7"/>"#,
    );
    let error = load(&archive(&dangling), &LoadLimits::default()).unwrap_err();
    assert!(error.to_string().contains("no object with id 7"), "{error}");

    let bad_index = model(
        r#"<object id="1"><mesh><vertices><vertex x="0" y="0" z="0"/></vertices>
           <triangles><triangle v1="0" v2="1" v3="2"/></triangles></mesh></object>"#,
        r#"<item objectid="1"/>"#,
    );
    let error = load(&archive(&bad_index), &LoadLimits::default()).unwrap_err();
    assert!(
        error.to_string().contains("uses vertex 1 but only 1 exist"),
        "{error}"
    );

    let truncated = archive(&model(
        &format!(r#"<object id="1">{TETRA}</object>"#),
        r#"<item objectid="1"/>"#,
    ));
    let error = load(&truncated[..truncated.len() / 2], &LoadLimits::default()).unwrap_err();
    assert!(matches!(error, RenderError::Archive { .. }), "{error}");

    let nan = model(
        r#"<object id="1"><mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="NaN" y="0" z="0"/><vertex x="0" y="1" z="0"/></vertices>
           <triangles><triangle v1="0" v2="1" v3="2"/></triangles></mesh></object>"#,
        r#"<item objectid="1"/>"#,
    );
    let error = load(&archive(&nan), &LoadLimits::default()).unwrap_err();
    assert!(matches!(error, RenderError::NonFinite { .. }), "{error}");
}
