//! Reading a category back out of scribed's archive.

use std::path::{Path, PathBuf};

use scribe_archive::{layout, Category};

/// The numbered files of a category, oldest first.
pub fn category_files(data_dir: &Path, category: &str) -> Vec<PathBuf> {
    let c: Category = category.parse().expect("valid category");
    layout::list_files(data_dir, &c)
        .expect("listing category files")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The concatenation of a category's files, oldest first.
pub fn read_category(data_dir: &Path, category: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in category_files(data_dir, category) {
        out.extend(std::fs::read(&p).expect("reading category file"));
    }
    out
}

/// Total size of a category's files (cheap progress check while waiting).
pub fn category_bytes(data_dir: &Path, category: &str) -> u64 {
    category_files(data_dir, category)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
