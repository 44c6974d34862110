//! Test harness: a real API server on 127.0.0.1:0 over a real SQLite store,
//! with a recording test double in place of the agent's lifecycle (it
//! records each call and moves the machine through its states in the store
//! as the agent would, without running anything).
#![allow(dead_code)]

use async_trait::async_trait;
use hangar_agent::store::{
    MachineRecord, MachineState, NewEvent, OperationId, Store, Transition, VolumeRecord,
};
use hangar_api::{
    ApiConfig, ApiState, BackendError, DestroyOptions, ExecRequest, ExecResponse, LaunchOptions,
    MachineBackend, ProcessStat, StopOptions, VolumeBackend,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Test double for the agent: records calls, and performs the state
/// transitions a real agent would record (unless `hold` is set, so a test
/// can drive states itself).
#[derive(Default)]
pub struct RecordingBackend {
    pub calls: Mutex<Vec<String>>,
    pub hold: AtomicBool,
    store: Mutex<Option<Store>>,
}

impl RecordingBackend {
    fn store(&self) -> Store {
        self.store.lock().unwrap().clone().expect("store set")
    }

    fn record(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    async fn go(&self, id: &str, to: MachineState, kind: &str) -> Result<(), BackendError> {
        self.store()
            .transition(Transition {
                machine_id: id.into(),
                to,
                event: NewEvent::agent(kind),
            })
            .await?;
        Ok(())
    }

    async fn run(&self, id: &str, kind: &str) -> Result<(), BackendError> {
        if self.hold.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.go(id, MachineState::Starting, kind).await?;
        self.go(id, MachineState::Started, "start").await
    }
}

#[async_trait]
impl MachineBackend for RecordingBackend {
    async fn create(
        &self,
        m: &MachineRecord,
        op: OperationId,
        o: &LaunchOptions,
    ) -> Result<(), BackendError> {
        self.record(format!("create {} skip_launch={}", m.id, o.skip_launch));
        if !o.skip_launch {
            self.run(&m.id, "start").await?;
        }
        self.store().finish_operation(op, "done").await?;
        Ok(())
    }

    async fn update(
        &self,
        m: &MachineRecord,
        op: OperationId,
        o: &LaunchOptions,
    ) -> Result<(), BackendError> {
        self.record(format!("update {} {}", m.id, m.version));
        let cur = self.store().machine(&m.id).await?.state;
        if cur == MachineState::Started {
            self.go(&m.id, MachineState::Replacing, "update").await?;
            self.go(&m.id, MachineState::Stopped, "exit").await?;
        }
        if !o.skip_launch {
            self.run(&m.id, "start").await?;
        }
        self.store().finish_operation(op, "done").await?;
        Ok(())
    }

    async fn start(&self, m: &MachineRecord) -> Result<(), BackendError> {
        self.record(format!("start {}", m.id));
        self.run(&m.id, "start").await
    }

    async fn stop(&self, m: &MachineRecord, o: &StopOptions) -> Result<(), BackendError> {
        self.record(format!(
            "stop {} signal={:?} timeout={:?}",
            m.id, o.signal, o.timeout
        ));
        if self.hold.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.go(&m.id, MachineState::Stopping, "stop").await?;
        self.go(&m.id, MachineState::Stopped, "exit").await
    }

    async fn restart(&self, m: &MachineRecord, o: &StopOptions) -> Result<(), BackendError> {
        self.record(format!("restart {} signal={:?}", m.id, o.signal));
        self.go(&m.id, MachineState::Stopping, "stop").await?;
        self.go(&m.id, MachineState::Stopped, "exit").await?;
        self.run(&m.id, "restart").await
    }

    async fn signal(&self, m: &MachineRecord, signal: i32) -> Result<(), BackendError> {
        self.record(format!("signal {} {signal}", m.id));
        Ok(())
    }

    async fn destroy(&self, m: &MachineRecord, o: &DestroyOptions) -> Result<(), BackendError> {
        self.record(format!("destroy {} force={}", m.id, o.force));
        self.go(&m.id, MachineState::Destroying, "destroy").await?;
        self.go(&m.id, MachineState::Destroyed, "destroy").await
    }

    async fn exec(&self, m: &MachineRecord, r: &ExecRequest) -> Result<ExecResponse, BackendError> {
        self.record(format!("exec {} {:?}", m.id, r.command));
        Ok(ExecResponse {
            exit_code: 0,
            exit_signal: None,
            stdout: r.command.join(" "),
            stderr: String::new(),
        })
    }

    async fn ps(&self, m: &MachineRecord) -> Result<Vec<ProcessStat>, BackendError> {
        self.record(format!("ps {}", m.id));
        Ok(vec![ProcessStat {
            pid: 1,
            command: "pilot".into(),
            ..Default::default()
        }])
    }
}

#[async_trait]
impl VolumeBackend for RecordingBackend {
    async fn create(&self, v: &VolumeRecord) -> Result<(), BackendError> {
        self.record(format!("volume create {}", v.id));
        self.store()
            .update_volume(&v.id, |v| v.state = "created".into())
            .await?;
        Ok(())
    }

    async fn extend(&self, v: &VolumeRecord, size_gb: i64) -> Result<bool, BackendError> {
        self.record(format!("volume extend {} {size_gb}", v.id));
        Ok(false)
    }

    async fn destroy(&self, v: &VolumeRecord) -> Result<(), BackendError> {
        self.record(format!("volume destroy {}", v.id));
        Ok(())
    }
}

/// A running API server and a client for it.
pub struct Server {
    pub url: String,
    pub token: String,
    pub store: Store,
    pub backend: Arc<RecordingBackend>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub const MAX_BODY: usize = 64 * 1024;

pub async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("hangar.db")).unwrap();
    let token = "test-admin-token-".to_owned() + &hangar_agent::store::ids::nonce();
    hangar_api::bootstrap_admin_token(&store, dir.path(), Some(token.clone()))
        .await
        .unwrap();
    let backend = Arc::new(RecordingBackend::default());
    *backend.store.lock().unwrap() = Some(store.clone());
    let config = ApiConfig {
        max_body_bytes: MAX_BODY,
        volume_dir: dir.path().join("volumes"),
        ..Default::default()
    };
    let state = ApiState::new(store.clone(), backend.clone(), backend.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hangar_api::serve(listener, state, async {
        let _ = rx.await;
    }));
    Server {
        url,
        token,
        store,
        backend,
        http: reqwest::Client::new(),
        dir,
        shutdown: Some(tx),
    }
}

/// A response: status and JSON body (`null` when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// The `error` message of an error body.
    pub fn error(&self) -> String {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {:?}", self.body))
            .to_owned()
    }

    /// Asserts the status and that the error message contains every part.
    pub fn expect_error(&self, status: u16, parts: &[&str]) {
        assert_eq!(self.status, status, "status of {:?}", self.body);
        let msg = self.error();
        for p in parts {
            assert!(msg.contains(p), "error {msg:?} should contain {p:?}");
        }
    }
}

impl Server {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.req(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> Resp {
        self.send(
            self.req(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }

    pub async fn create_app(&self, name: &str) {
        let r = self
            .post(
                "/v1/apps",
                json!({"app_name": name, "org_slug": "personal"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    /// Creates a started machine and returns its JSON.
    pub async fn create_machine(&self, app: &str, body: Value) -> Value {
        let r = self.post(&format!("/v1/apps/{app}/machines"), body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }
}
