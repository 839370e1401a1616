//! Digests of many renders, to check that a change to the renderer leaves every pixel (and
//! every PNG byte) as it was: run it before and after and compare the outputs with `diff`.
//!
//! ```text
//! cargo run --release -p verdict-render --example render_digest > digests.txt
//! cargo run --release -p verdict-render --example render_digest -- --time 20 [--spheres]
//! ```
//!
//! Renders the real meshes (fetched by `scripts/fetch/meshes.sh`) and generated UV spheres
//! (48K triangles, plus 489K at default settings) in 13 views under 11 settings
//! (supersample 1-4, flat, no outlines, perspective, fill 1.0, coloured background, odd
//! sizes) and prints one line per image: mesh, settings, view, SHA-256 of the RGB pixels,
//! SHA-256 of the PNG file and its size.
//!
//! `--time N` instead times rendering and PNG encoding on one thread, without file I/O:
//! for each real mesh in `front,left,iso` the best of N runs of each (the minimum is what
//! other processes on a shared machine distort least), summed and divided by the views;
//! with `--spheres`, then the same for the generated spheres, the case where triangle
//! setup rather than pixels dominates.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use verdict_render::math::Vec3;
use verdict_render::{
    load_file, CpuRasterizer, Part, PreparedMesh, Projection, RenderSettings, Renderer, Shading,
    UpAxis, ViewSpec,
};

const VIEWS: &str = "front,back,left,right,top,bottom,iso,az:30:el:-20,turntable:5";

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let time_rounds = match args.iter().position(|a| a == "--time") {
        Some(i) => Some(
            args.get(i + 1)
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or("--time needs a number of rounds")?
                .max(1),
        ),
        None => None,
    };
    let views = ViewSpec::parse_list(VIEWS).map_err(|e| e.to_string())?;
    let (_, files) = common::corpus_stl_files()?;
    let base = RenderSettings::default();
    if let Some(rounds) = time_rounds {
        return time_renders(&files, rounds, args.iter().any(|a| a == "--spheres"));
    }
    let variants: Vec<(&str, RenderSettings)> = vec![
        ("default", base.clone()),
        (
            "ss1",
            RenderSettings {
                supersample: 1,
                ..base.clone()
            },
        ),
        (
            "ss3",
            RenderSettings {
                supersample: 3,
                ..base.clone()
            },
        ),
        (
            "ss4",
            RenderSettings {
                supersample: 4,
                ..base.clone()
            },
        ),
        (
            "flat",
            RenderSettings {
                shading: Shading::Flat,
                ..base.clone()
            },
        ),
        (
            "plain",
            RenderSettings {
                outlines: false,
                ..base.clone()
            },
        ),
        (
            "perspective",
            RenderSettings {
                projection: Projection::Perspective { fov_degrees: 40.0 },
                ..base.clone()
            },
        ),
        (
            "fill1",
            RenderSettings {
                fill: 1.0,
                ..base.clone()
            },
        ),
        (
            "colour",
            RenderSettings {
                background: [30, 60, 90],
                ..base.clone()
            },
        ),
        (
            "odd97",
            RenderSettings {
                size: 97,
                supersample: 3,
                ..base.clone()
            },
        ),
        (
            "odd301",
            RenderSettings {
                size: 301,
                supersample: 1,
                outlines: false,
                ..base.clone()
            },
        ),
    ];
    let mut meshes: Vec<(String, Part)> = Vec::new();
    for file in &files {
        // Malformed files of the corpus are skipped (the tests check their errors).
        if let Ok((scene, _)) = load_file(file, &base.limits) {
            let name = format!(
                "{}/{}",
                file.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                file.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            );
            meshes.push((name, scene.merged("merged")));
        }
    }
    meshes.push(("sphere_47960".into(), sphere(220, 110)));
    for (mesh_name, part) in &meshes {
        for (variant, settings) in &variants {
            let crease = (settings.shading == Shading::Smooth).then_some(settings.crease_degrees);
            let mesh = PreparedMesh::new(part, UpAxis::Z, crease).map_err(|e| e.to_string())?;
            for view in &views {
                print_digest(mesh_name, variant, view, &mesh, settings)?;
            }
        }
    }
    let dense = PreparedMesh::new(&sphere(700, 350), UpAxis::Z, Some(base.crease_degrees))
        .map_err(|e| e.to_string())?;
    for view in &views {
        print_digest("sphere_488600", "default", view, &dense, &base)?;
    }
    Ok(())
}

fn print_digest(
    mesh_name: &str,
    variant: &str,
    view: &ViewSpec,
    mesh: &PreparedMesh,
    settings: &RenderSettings,
) -> Result<(), String> {
    let image = CpuRasterizer.render(mesh, view, settings);
    let png = image.encode_png()?;
    println!(
        "{mesh_name} {variant} {} {} {} {}",
        view.name,
        hex::encode(Sha256::digest(&image.pixels)),
        hex::encode(Sha256::digest(&png)),
        png.len()
    );
    Ok(())
}

/// Best-of-`rounds` render and encode times per view of the real meshes and the spheres.
fn time_renders(files: &[PathBuf], rounds: usize, spheres: bool) -> Result<(), String> {
    let settings = RenderSettings::default();
    let views = ViewSpec::parse_list("front,left,iso").map_err(|e| e.to_string())?;
    let crease = Some(settings.crease_degrees);
    let mut corpus = Vec::new();
    for file in files {
        if let Ok((scene, _)) = load_file(file, &settings.limits) {
            let part = scene.merged("merged");
            corpus.push(PreparedMesh::new(&part, UpAxis::Z, crease).map_err(|e| e.to_string())?);
        }
    }
    let best = |work: &mut dyn FnMut()| {
        let mut fastest = Duration::MAX;
        for _ in 0..rounds {
            let start = Instant::now();
            work();
            fastest = fastest.min(start.elapsed());
        }
        fastest
    };
    let ms = |total: Duration, count: usize| total.as_secs_f64() * 1000.0 / count as f64;
    let (mut render, mut encode) = (Duration::ZERO, Duration::ZERO);
    for mesh in &corpus {
        for view in &views {
            render += best(&mut || {
                verdict_render::raster::recycle(CpuRasterizer.render(mesh, view, &settings))
            });
            let image = CpuRasterizer.render(mesh, view, &settings);
            encode += best(&mut || {
                std::hint::black_box(image.encode_png().map(|png| png.len()).unwrap_or(0));
            });
            verdict_render::raster::recycle(image);
        }
    }
    let count = corpus.len() * views.len();
    println!("| what | ms/view (1 thread, best of {rounds}) |");
    println!("|---|---:|");
    println!(
        "| {} real meshes: render | {:.3} |",
        corpus.len(),
        ms(render, count)
    );
    println!(
        "| {} real meshes: PNG encode | {:.3} |",
        corpus.len(),
        ms(encode, count)
    );
    for (slices, stacks) in [(220, 110), (700, 350)] {
        if !spheres {
            break;
        }
        let part = sphere(slices, stacks);
        let mesh = PreparedMesh::new(&part, UpAxis::Z, crease).map_err(|e| e.to_string())?;
        let mut total = Duration::ZERO;
        for view in &views {
            total += best(&mut || {
                verdict_render::raster::recycle(CpuRasterizer.render(&mesh, view, &settings))
            });
        }
        println!(
            "| sphere of {} triangles: render | {:.2} |",
            part.triangles.len(),
            ms(total, views.len())
        );
    }
    Ok(())
}

/// A UV sphere of radius 1 with `slices` around and `stacks` from pole to pole.
fn sphere(slices: usize, stacks: usize) -> Part {
    let point = |i: usize, j: usize| {
        let theta = std::f64::consts::TAU * i as f64 / slices as f64;
        let phi = std::f64::consts::PI * j as f64 / stacks as f64;
        Vec3::new(
            (phi.sin() * theta.cos()) as f32,
            (phi.sin() * theta.sin()) as f32,
            phi.cos() as f32,
        )
    };
    let mut triangles = Vec::new();
    for j in 0..stacks {
        for i in 0..slices {
            let (a, b) = (point(i, j), point(i + 1, j));
            let (c, d) = (point(i, j + 1), point(i + 1, j + 1));
            if j > 0 {
                triangles.push([a, c, b]);
            }
            if j + 1 < stacks {
                triangles.push([b, c, d]);
            }
        }
    }
    Part {
        name: "sphere".into(),
        triangles,
    }
}
