//! Mesh loading (STL, OBJ, 3MF) and deterministic multi-view rendering to PNG.
