//! The bucket store: shards messages over `num_buckets` copies of one store, by a hash of the
//! text before a delimiter (`key_hash`) or at random. As in Scribe, buckets `1..=N` take keyed
//! messages and bucket `0` takes messages without a delimiter. File-store copies write under
//! `<path>/<bucket_subdir>NNN/<category>/` (three digits).

use std::sync::Arc;

use super::file::FileStore;
use super::null::NullStore;
use super::{Batch, BuildContext, CategoryBatch, Store, StoreError, StoreStatus};
use crate::config::{parse_bucket_type, parse_delimiter, BucketSpec, BucketType, StoreSpec};

pub struct BucketStore {
    name: String,
    buckets: Vec<Arc<dyn Store>>,
    kind: BucketType,
    delimiter: u8,
    remove_key: bool,
}

impl BucketStore {
    pub fn from_spec(spec: &BucketSpec, ctx: &BuildContext<'_>) -> anyhow::Result<BucketStore> {
        let subdir = spec.bucket_subdir.as_deref().unwrap_or("bucket");
        let mut buckets: Vec<Arc<dyn Store>> = Vec::new();
        for i in 0..=spec.num_buckets {
            let child = ctx.child(&format!(".bucket{i:03}"), None);
            buckets.push(match &*spec.bucket {
                StoreSpec::File(f) => {
                    let base = f
                        .path
                        .clone()
                        .unwrap_or_else(|| ctx.settings.data_dir.clone());
                    let dir = base.join(format!("{subdir}{i:03}"));
                    Arc::new(FileStore::from_spec(f, &child, Some(dir))?)
                }
                StoreSpec::Null(_) => Arc::new(NullStore::new(&child)),
                other => anyhow::bail!("bucket copies cannot be {} stores", other.type_name()),
            });
        }
        Ok(BucketStore {
            name: ctx.name.clone(),
            buckets,
            kind: parse_bucket_type(spec.bucket_type.as_deref()).map_err(anyhow::Error::msg)?,
            delimiter: parse_delimiter(spec.delimiter.as_deref()).map_err(anyhow::Error::msg)?,
            remove_key: spec.remove_key,
        })
    }

    /// The bucket for a message, and the message as stored.
    fn place(&self, message: &bytes::Bytes) -> (usize, bytes::Bytes) {
        let n = (self.buckets.len() - 1) as u64;
        match memchr::memchr(self.delimiter, message) {
            None => (0, message.clone()),
            Some(at) => {
                let bucket = match self.kind {
                    BucketType::KeyHash => djb2(&message[..at]) % n + 1,
                    BucketType::Random => fastrand::u64(..n) + 1,
                };
                let stored = if self.remove_key {
                    message.slice(at + 1..)
                } else {
                    message.clone()
                };
                (bucket as usize, stored)
            }
        }
    }
}

/// Scribe's key hash (djb2), kept so keys land in the same bucket numbers as with Scribe.
fn djb2(key: &[u8]) -> u64 {
    key.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    }) as u64
}

#[async_trait::async_trait]
impl Store for BucketStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let mut per_bucket: Vec<Vec<Batch>> = vec![Vec::new(); self.buckets.len()];
        for b in batches {
            let mut split: Vec<(Vec<bytes::Bytes>, Vec<_>)> =
                vec![(Vec::new(), Vec::new()); self.buckets.len()];
            for (j, m) in b.messages.iter().enumerate() {
                let (i, stored) = self.place(m);
                split[i].0.push(stored);
                split[i].1.push(b.id(j));
            }
            for (i, (msgs, ids)) in split.into_iter().enumerate() {
                if !msgs.is_empty() {
                    per_bucket[i].push(Arc::new(CategoryBatch::with_ids(
                        b.category.clone(),
                        msgs,
                        ids,
                    )));
                }
            }
        }
        let writes = per_bucket
            .iter()
            .zip(&self.buckets)
            .filter(|(b, _)| !b.is_empty())
            .map(|(b, store)| store.write(b));
        for r in futures::future::join_all(writes).await {
            r?;
        }
        Ok(())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new(&self.name, "bucket"));
        for b in &self.buckets {
            b.status(out);
        }
    }

    async fn close(&self) {
        for b in &self.buckets {
            b.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::djb2;

    #[test]
    fn djb2_matches_the_reference_values() {
        assert_eq!(djb2(b""), 5381);
        // 5381*33 + 'a'(97) = 177670
        assert_eq!(djb2(b"a"), 177_670);
    }
}
