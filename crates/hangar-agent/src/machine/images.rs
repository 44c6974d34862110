//! The machine's images: pulled into the image store when missing, with the
//! pull reported as `pull` events of the machine and in the log.

use hangar_types::MachineConfig;
use serde_json::json;

use super::{Agent, AgentError, spec};
use crate::image::{LayerState, PullProgress};
use crate::store::NewEvent;

impl Agent {
    /// Makes sure every image of `config` is in the image store. A pull is
    /// reported as `pull` events of the machine (started, each layer, done)
    /// and in the log.
    pub(super) async fn ensure_images(
        &self,
        config: &MachineConfig,
        machine_id: &str,
    ) -> Result<(), AgentError> {
        for reference in spec::image_refs(config) {
            if self.0.images.get(&reference)?.is_none() {
                self.pull_reporting(&reference, machine_id).await?;
            }
        }
        Ok(())
    }

    async fn pull_reporting(&self, reference: &str, machine_id: &str) -> Result<(), AgentError> {
        let store = &self.0.store;
        let event = |request: serde_json::Value| NewEvent::agent("pull").with_request(request);
        tracing::info!(machine_id, image = reference, "pulling");
        let _ = store
            .record_event(
                machine_id,
                event(json!({"image": reference, "status": "started"})),
            )
            .await;
        // Progress arrives in a synchronous callback: it is forwarded to a task
        // that records each layer's last report (one event per layer).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PullProgress>();
        let recorder = {
            let store = store.clone();
            let id = machine_id.to_owned();
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    let cached = p.state == LayerState::Cached;
                    tracing::info!(
                        machine_id = id,
                        image = p.reference,
                        "layer {}/{} {} ({} bytes)",
                        p.index + 1,
                        p.layers,
                        if cached { "cached" } else { "ready" },
                        p.total
                    );
                    let _ = store
                        .record_event(
                            &id,
                            NewEvent::agent("pull").with_request(json!({
                                "image": p.reference,
                                "status": "layer",
                                "layer": p.index + 1,
                                "layers": p.layers,
                                "bytes": p.total,
                                "cached": cached,
                            })),
                        )
                        .await;
                }
            })
        };
        let progress = move |p: &PullProgress| {
            if matches!(p.state, LayerState::Ready | LayerState::Cached) {
                let _ = tx.send(p.clone());
            }
        };
        let pulled = self
            .0
            .images
            .pull(reference, &self.0.config.registry_auth, &progress)
            .await;
        drop(progress);
        let _ = recorder.await;
        match pulled {
            Ok(record) => {
                let bytes: u64 = record.layers.iter().map(|l| l.size).sum();
                tracing::info!(
                    machine_id,
                    image = reference,
                    "pulled {}",
                    record.manifest_digest
                );
                let _ = store
                    .record_event(
                        machine_id,
                        event(json!({"image": reference, "status": "done",
                                     "digest": record.manifest_digest.as_str(),
                                     "layers": record.layers.len(), "bytes": bytes})),
                    )
                    .await;
                Ok(())
            }
            Err(e) => {
                let _ = store
                    .record_event(
                        machine_id,
                        event(
                            json!({"image": reference, "status": "failed", "error": e.to_string()}),
                        ),
                    )
                    .await;
                Err(e.into())
            }
        }
    }
}
