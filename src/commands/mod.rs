//! One command per file (the others still live in `app.rs` and move here one by one).

pub mod plan;
