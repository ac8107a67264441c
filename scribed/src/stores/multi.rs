//! The multi store: every batch goes to each child, concurrently. It succeeds when all
//! children succeed (`report_success = "all"`, the default) or when any does (`"any"`).

use std::sync::Arc;

use super::{build, Batch, BuildContext, Store, StoreError, StoreStatus};
use crate::config::{parse_report_success, MultiSpec, ReportSuccess};

pub struct MultiStore {
    name: String,
    children: Vec<Arc<dyn Store>>,
    report: ReportSuccess,
}

impl MultiStore {
    pub fn from_spec(spec: &MultiSpec, ctx: &BuildContext<'_>) -> anyhow::Result<MultiStore> {
        let children = spec
            .stores
            .iter()
            .enumerate()
            .map(|(i, s)| build(s, &ctx.child(&format!(".stores[{i}]"), Some(i))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(MultiStore {
            name: ctx.name.clone(),
            children,
            report: parse_report_success(spec.report_success.as_deref())
                .map_err(anyhow::Error::msg)?,
        })
    }
}

#[async_trait::async_trait]
impl Store for MultiStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let results =
            futures::future::join_all(self.children.iter().map(|c| c.write(batches))).await;
        let failures: Vec<&StoreError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        let ok = match self.report {
            ReportSuccess::All => failures.is_empty(),
            ReportSuccess::Any => failures.len() < results.len(),
        };
        if ok {
            return Ok(());
        }
        Err(failures
            .first()
            .map(|e| (*e).clone())
            .unwrap_or_else(|| StoreError::Failed {
                store: self.name.clone(),
                reason: "no child store".into(),
            }))
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new(&self.name, "multi"));
        for c in &self.children {
            c.status(out);
        }
    }

    async fn close(&self) {
        for c in &self.children {
            c.close().await;
        }
    }
}
