//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

pub fn truncate(path: &Path) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}
