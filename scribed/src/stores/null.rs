//! The null store: accepts and discards, counting `ignored` (as Scribe's).

use crate::counters::{Counters, IGNORED};
use std::sync::Arc;

use super::{Batch, BuildContext, Store, StoreError, StoreStatus};

pub struct NullStore {
    name: String,
    counters: Arc<Counters>,
}

impl NullStore {
    pub fn new(ctx: &BuildContext<'_>) -> NullStore {
        NullStore {
            name: ctx.name.clone(),
            counters: ctx.counters.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Store for NullStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        for b in batches {
            self.counters
                .add(Some(b.category.as_str()), IGNORED, b.messages.len() as i64);
        }
        Ok(())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new(&self.name, "null"));
    }

    async fn close(&self) {}
}
