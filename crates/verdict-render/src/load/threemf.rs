//! 3MF: a ZIP container (read with the `zip` crate) holding XML model parts (read with
//! `quick-xml`, streaming, so a large mesh is never held twice).
//!
//! Supported: the core spec's `<object>` meshes, `<components>` with transforms (nested, and
//! across model parts through the production extension's `p:path`), and `<build>` items with
//! transforms; each build item becomes one `Part`. Colours, materials and beam lattices are
//! ignored. Defences: the archive's total decompressed reads are capped (declared sizes are
//! not trusted: every read is bounded), component references are cycle-checked and depth
//! limited, and expanded triangles count against the triangle cap, so a small file that
//! instances an object a billion times is refused instead of rendered.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use quick_xml::events::{BytesStart, Event};

use crate::error::{RenderError, Result};
use crate::math::{Affine, Vec3};
use crate::mesh::{LoadLimits, LoadReport, Part, Scene, TriangleSink};

const MAX_COMPONENT_DEPTH: usize = 32;
const DEFAULT_MODEL: &str = "3D/3dmodel.model";

/// Parses a 3MF archive read from `path` (used only in error messages).
pub fn parse_3mf(path: &Path, bytes: &[u8], limits: &LoadLimits) -> Result<(Scene, LoadReport)> {
    if !bytes.starts_with(b"PK") {
        let hint = if bytes.trim_ascii_start().starts_with(b"<") {
            " (it is plain XML: a bare model part, not the ZIP container a .3mf must be)"
        } else {
            ""
        };
        return Err(RenderError::Archive {
            path: path.to_path_buf(),
            message: format!("not a ZIP archive{hint}"),
        });
    }
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| RenderError::Archive {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut package = Package {
        path,
        archive,
        budget: limits.max_decompressed_bytes,
        limit: limits.max_decompressed_bytes,
        documents: HashMap::new(),
    };
    let root = package.root_model_name()?;
    package.load_document(&root)?;

    let mut sink = TriangleSink::new(path, limits);
    let mut parts = Vec::new();
    let build = package.documents[&root].build.clone();
    if build.is_empty() {
        return Err(RenderError::malformed(
            path,
            format!("{root}: no <build> items"),
        ));
    }
    for (index, item) in build.iter().enumerate() {
        let document = item.path.clone().unwrap_or_else(|| root.clone());
        let mut part = Part {
            name: String::new(),
            triangles: Vec::new(),
        };
        let mut stack = Vec::new();
        package.emit(
            &document,
            item.object_id,
            &item.transform,
            &mut stack,
            &mut sink,
            &mut part,
        )?;
        if part.name.is_empty() {
            part.name = format!("item{}", index + 1);
        }
        parts.push(part);
    }
    sink.finish(parts)
}

#[derive(Debug, Clone)]
struct Reference {
    path: Option<String>,
    object_id: u32,
    transform: Affine,
}

#[derive(Debug, Default)]
struct Object {
    name: String,
    vertices: Vec<Vec3>,
    triangles: Vec<[u32; 3]>,
    components: Vec<Reference>,
}

#[derive(Debug, Default)]
struct Document {
    objects: HashMap<u32, Object>,
    build: Vec<Reference>,
}

struct Package<'a> {
    path: &'a Path,
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    budget: u64,
    limit: u64,
    documents: HashMap<String, Document>,
}

impl Package<'_> {
    fn error(&self, message: impl Into<String>) -> RenderError {
        RenderError::Archive {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Reads one entry, charging its real decompressed size against the budget.
    fn read_entry(&mut self, name: &str) -> Result<Option<String>> {
        let Some(actual) = self
            .archive
            .file_names()
            .flatten()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| n.into_owned())
        else {
            return Ok(None);
        };
        let mut entry = self
            .archive
            .by_name(&actual)
            .map_err(|e| RenderError::Archive {
                path: self.path.to_path_buf(),
                message: format!("{actual}: {e}"),
            })?;
        let declared = entry.size();
        if declared > self.budget {
            return Err(RenderError::TooLarge {
                path: self.path.to_path_buf(),
                what: format!("archive entry {actual} (declared)"),
                size: declared,
                limit: self.limit,
            });
        }
        let mut data = Vec::new();
        let read = (&mut entry)
            .take(self.budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| RenderError::Archive {
                path: self.path.to_path_buf(),
                message: format!("{actual}: {e}"),
            })? as u64;
        if read > self.budget {
            return Err(RenderError::TooLarge {
                path: self.path.to_path_buf(),
                what: format!("decompressed archive content at {actual}"),
                size: self.limit - self.budget + read,
                limit: self.limit,
            });
        }
        drop(entry);
        self.budget -= read;
        let text =
            String::from_utf8(data).map_err(|_| self.error(format!("{actual}: not UTF-8 text")))?;
        Ok(Some(text))
    }

    /// The model part named by the package relationships, or the conventional name.
    fn root_model_name(&mut self) -> Result<String> {
        if let Some(rels) = self.read_entry("_rels/.rels")? {
            let mut reader = quick_xml::Reader::from_str(&rels);
            loop {
                match reader.read_event() {
                    Ok(Event::Start(e)) | Ok(Event::Empty(e))
                        if e.local_name().as_ref() == "Relationship" =>
                    {
                        let kind = attribute(&e, "Type").unwrap_or_default();
                        if kind.ends_with("/3dmodel") {
                            if let Some(target) = attribute(&e, "Target") {
                                return Ok(target.trim_start_matches('/').to_string());
                            }
                        }
                    }
                    Ok(Event::Eof) => break,
                    Ok(_) => {}
                    Err(e) => return Err(self.error(format!("_rels/.rels: {e}"))),
                }
            }
        }
        Ok(DEFAULT_MODEL.to_string())
    }

    fn load_document(&mut self, name: &str) -> Result<()> {
        if self.documents.contains_key(name) {
            return Ok(());
        }
        let text = self
            .read_entry(name)?
            .ok_or_else(|| self.error(format!("model part {name} is missing")))?;
        let document = parse_model(self.path, name, &text)?;
        self.documents.insert(name.to_string(), document);
        Ok(())
    }

    /// Appends the triangles of `object_id` (and its components) under `transform`.
    fn emit(
        &mut self,
        document: &str,
        object_id: u32,
        transform: &Affine,
        stack: &mut Vec<(String, u32)>,
        sink: &mut TriangleSink,
        part: &mut Part,
    ) -> Result<()> {
        let key = (document.to_string(), object_id);
        if stack.contains(&key) {
            return Err(self.error(format!(
                "{document}: object {object_id} contains itself through its components"
            )));
        }
        if stack.len() >= MAX_COMPONENT_DEPTH {
            return Err(self.error(format!(
                "components nested deeper than {MAX_COMPONENT_DEPTH} levels"
            )));
        }
        self.load_document(document)?;
        let object = self.documents[document]
            .objects
            .get(&object_id)
            .ok_or_else(|| self.error(format!("{document}: no object with id {object_id}")))?;
        if part.name.is_empty() && !object.name.is_empty() {
            part.name = object.name.clone();
        }
        sink.check_count(object.triangles.len() as u64)?;
        for (index, t) in object.triangles.iter().enumerate() {
            let corner = |i: u32| {
                object.vertices.get(i as usize).map(|v| transform.apply(*v)).ok_or_else(|| {
                    self.error(format!(
                        "{document}: object {object_id} triangle {} uses vertex {i} but only {} exist",
                        index + 1,
                        object.vertices.len()
                    ))
                })
            };
            let triangle = [corner(t[0])?, corner(t[1])?, corner(t[2])?];
            sink.push(&mut part.triangles, triangle)?;
        }
        let components = object.components.clone();
        stack.push(key);
        for component in components {
            let child_document = component
                .path
                .clone()
                .unwrap_or_else(|| document.to_string());
            let combined = component.transform.then(transform);
            self.emit(
                &child_document,
                component.object_id,
                &combined,
                stack,
                sink,
                part,
            )?;
        }
        stack.pop();
        Ok(())
    }
}

fn attribute(element: &BytesStart, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| a.value.into_owned())
}

/// Streams one model part into objects and build items.
fn parse_model(path: &Path, part_name: &str, text: &str) -> Result<Document> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut document = Document::default();
    let mut current: Option<(u32, Object)> = None;
    loop {
        let position = reader.buffer_position() as usize;
        let event = reader.read_event();
        let line = || text[..position.min(text.len())].matches('\n').count() + 1;
        let error =
            |message: String| RenderError::parse(path, line(), format!("{part_name}: {message}"));
        let (element, self_closing) = match event {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(e)) if e.local_name().as_ref() == "object" => {
                if let Some((id, object)) = current.take() {
                    document.objects.insert(id, object);
                }
                continue;
            }
            Ok(Event::Eof) => break,
            Ok(_) => continue,
            Err(e) => return Err(error(format!("invalid XML: {e}"))),
        };
        let number = |name: &str| -> Result<f32> {
            let raw = attribute(&element, name).ok_or_else(|| {
                error(format!(
                    "<{}> lacks attribute {}",
                    element.local_name().as_ref(),
                    name
                ))
            })?;
            raw.trim()
                .parse::<f32>()
                .map_err(|_| error(format!("invalid number {raw:?}")))
        };
        let index = |name: &str| -> Result<u32> {
            let raw = attribute(&element, name)
                .ok_or_else(|| error(format!("missing attribute {}", name)))?;
            raw.trim()
                .parse::<u32>()
                .map_err(|_| error(format!("invalid index {raw:?}")))
        };
        let reference = || -> Result<Reference> {
            let transform = match attribute(&element, "transform") {
                Some(raw) => parse_transform(&raw)
                    .ok_or_else(|| error(format!("invalid transform {raw:?}")))?,
                None => Affine::IDENTITY,
            };
            Ok(Reference {
                path: attribute(&element, "path").map(|p| p.trim_start_matches('/').to_string()),
                object_id: index("objectid")?,
                transform,
            })
        };
        match element.local_name().as_ref() {
            "object" => {
                let id = index("id")?;
                let name = attribute(&element, "name").unwrap_or_default();
                let object = Object {
                    name,
                    ..Object::default()
                };
                if self_closing {
                    document.objects.insert(id, object);
                } else {
                    current = Some((id, object));
                }
            }
            "vertex" => {
                if let Some((_, object)) = current.as_mut() {
                    object
                        .vertices
                        .push(Vec3::new(number("x")?, number("y")?, number("z")?));
                }
            }
            "triangle" => {
                if let Some((_, object)) = current.as_mut() {
                    object
                        .triangles
                        .push([index("v1")?, index("v2")?, index("v3")?]);
                }
            }
            "component" => {
                let component = reference()?;
                if let Some((_, object)) = current.as_mut() {
                    object.components.push(component);
                }
            }
            "item" => document.build.push(reference()?),
            _ => {}
        }
    }
    Ok(document)
}

/// `m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32`, all finite.
fn parse_transform(raw: &str) -> Option<Affine> {
    let values: Vec<f32> = raw
        .split_ascii_whitespace()
        .map(|t| t.parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()?;
    let m: [f32; 12] = values.try_into().ok()?;
    Some(Affine { m })
}
