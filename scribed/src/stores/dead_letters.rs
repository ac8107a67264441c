//! What a store does with a message its next hop can never take (longer than an upstream's
//! frame or a broker's `message.max.bytes`): append it to the store's dead-letter file
//! (fdatasynced, on the blocking pool, before the batch is acknowledged), count it
//! (`dead lettered`), and log the first one of each category. The network and kafka stores
//! both keep this one policy.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use scribe_archive::{Category, DeadLetter};

use crate::counters::{Counters, DEAD_LETTERED};

/// Categories whose first dead letter is logged; past this many, the counter alone tells.
const MAX_LOGGED_CATEGORIES: usize = 10_000;

/// One store's dead letters.
pub struct DeadLetters {
    store: String,
    file: DeadLetter,
    counters: Arc<Counters>,
    logged: Mutex<HashSet<Category>>,
}

impl DeadLetters {
    pub fn new(store: String, file: DeadLetter, counters: Arc<Counters>) -> DeadLetters {
        DeadLetters {
            store,
            file,
            counters,
            logged: Mutex::default(),
        }
    }

    /// Keeps `message` of `category`, which `hop` ("the upstream 10.0.0.2:1463", "the
    /// brokers") will not take because it is longer than `limit` bytes. The error names the
    /// dead-letter file's problem.
    pub async fn keep(
        self: &Arc<Self>,
        category: &Category,
        message: Bytes,
        hop: &str,
        limit: usize,
    ) -> Result<(), String> {
        let (me, c, len) = (self.clone(), category.clone(), message.len());
        let path = tokio::task::spawn_blocking(move || me.file.append(&c, &message))
            .await
            .map_err(|e| format!("dead-letter task: {e}"))?
            .map_err(|e| e.to_string())?;
        self.counters.add(Some(category.as_str()), DEAD_LETTERED, 1);
        let first = {
            let mut l = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            l.len() < MAX_LOGGED_CATEGORIES && l.insert(category.clone())
        };
        if first {
            tracing::warn!(
                store = %self.store,
                "a message of {len} bytes in category {category} is longer than {hop} takes \
                 ({limit} bytes): kept in the dead-letter file {} and delivery goes on; more in \
                 this category are only counted (`dead lettered`)",
                path.display()
            );
        }
        Ok(())
    }
}
