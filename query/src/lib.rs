//! `logq`: grep, cut and awk-style filtering and aggregation over logs: plain files,
//! directories, stdin and Scribe category archives (rotated plain and `.gz` files, read in
//! write order), with parallel workers across files and byte ranges.
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`app::run`], which hands the
//! command to its module: [`grep`], [`cut`], [`records`] (where/print/count/stats). Under
//! them: [`source`] (what a command reads, and its stdout), [`input`] (what to read),
//! [`plan`] (tasks), [`par`] (ordered parallel run), [`lines`] (line and blank-field
//! splitting), [`formats`] and [`timefmt`] (named fields, times), [`expr`] (filters),
//! [`agg`] (aggregates), [`output`], [`plot`], [`timerange`] (`--since`/`--until`),
//! [`progress`].

pub mod agg;
pub mod app;
pub mod cli;
pub mod custom;
pub mod cut;
pub mod errorlog;
pub mod expr;
pub mod fields;
pub mod follow;
pub mod formats;
pub mod grep;
pub mod input;
pub mod lines;
pub mod live;
pub mod output;
pub mod par;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod records;
pub mod source;
pub mod timefmt;
pub mod timerange;
pub mod zone;
