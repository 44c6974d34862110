//! The proxy's view of the machines and its control over them: the [`Fleet`]
//! seam, and [`HttpFleet`], which talks to a Machines API (the one inside
//! `hangar serve` on loopback, or a remote one for `hangar proxy`).

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use hangar_types::config::MachineService;
use serde::Deserialize;

/// A machine as the proxy needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineInfo {
    pub app: String,
    pub id: String,
    pub state: MachineState,
    pub region: String,
    /// The address the host reaches the machine on (none with `--network none`).
    pub private_ip: Option<IpAddr>,
    pub cordoned: bool,
    pub services: Vec<MachineService>,
}

/// The machine states the proxy tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MachineState {
    Created = 0,
    Starting = 1,
    Started = 2,
    Stopping = 3,
    Stopped = 4,
    Suspended = 5,
    Failed = 6,
    /// Destroyed, replacing, or a state this proxy does not know.
    Other = 7,
}

impl MachineState {
    pub fn parse(s: &str) -> MachineState {
        match s {
            "created" => MachineState::Created,
            "starting" => MachineState::Starting,
            "started" => MachineState::Started,
            "stopping" => MachineState::Stopping,
            "stopped" => MachineState::Stopped,
            "suspending" | "suspended" => MachineState::Suspended,
            "failed" => MachineState::Failed,
            _ => MachineState::Other,
        }
    }

    pub fn from_u8(n: u8) -> MachineState {
        match n {
            0 => MachineState::Created,
            1 => MachineState::Starting,
            2 => MachineState::Started,
            3 => MachineState::Stopping,
            4 => MachineState::Stopped,
            5 => MachineState::Suspended,
            6 => MachineState::Failed,
            _ => MachineState::Other,
        }
    }

    /// Whether the proxy may start a machine in this state.
    pub fn startable(self) -> bool {
        matches!(
            self,
            MachineState::Created
                | MachineState::Stopped
                | MachineState::Suspended
                | MachineState::Failed
                | MachineState::Starting
        )
    }
}

/// Why a fleet call failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("Machines API at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Machines API {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Machines API {url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
}

impl FleetError {
    /// The HTTP status the API answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FleetError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What the proxy needs from the Machines API.
#[async_trait]
pub trait Fleet: Send + Sync + 'static {
    /// Every machine of every app (destroyed ones left out).
    async fn machines(&self) -> Result<Vec<MachineInfo>, FleetError>;
    /// Starts a machine (an error with status 412 when it already runs).
    async fn start(&self, app: &str, id: &str) -> Result<(), FleetError>;
    /// Stops a machine.
    async fn stop(&self, app: &str, id: &str) -> Result<(), FleetError>;
    /// Suspends a machine (501 where the host cannot).
    async fn suspend(&self, app: &str, id: &str) -> Result<(), FleetError>;
}

/// A [`Fleet`] over a Machines API's HTTP interface.
#[derive(Debug, Clone)]
pub struct HttpFleet {
    base: String,
    token: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct AppsBody {
    #[serde(default)]
    apps: Vec<AppBody>,
}

#[derive(Deserialize)]
struct AppBody {
    name: String,
}

#[derive(Deserialize)]
struct MachineBody {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    private_ip: Option<String>,
    #[serde(default)]
    cordoned: bool,
    #[serde(default)]
    config: Option<ConfigBody>,
}

#[derive(Deserialize)]
struct ConfigBody {
    #[serde(default)]
    services: Option<Vec<MachineService>>,
}

impl HttpFleet {
    /// `base` is the API's root, e.g. `http://127.0.0.1:4280` (with or
    /// without `/v1`).
    pub fn new(base: &str, token: &str) -> HttpFleet {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
        HttpFleet {
            base,
            token: token.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(8)
                .build()
                .expect("an HTTP client with default TLS settings"),
        }
    }

    async fn call(&self, post: bool, path: &str) -> Result<bytes::Bytes, FleetError> {
        let url = format!("{}/v1{path}", self.base);
        let req = if post {
            self.client.post(&url)
        } else {
            self.client.get(&url)
        };
        let transport = |source| FleetError::Transport {
            url: url.clone(),
            source,
        };
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(FleetError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            });
        }
        Ok(body)
    }

    fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, FleetError> {
        serde_json::from_slice(body).map_err(|e| FleetError::Decode {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

#[async_trait]
impl Fleet for HttpFleet {
    async fn machines(&self) -> Result<Vec<MachineInfo>, FleetError> {
        let apps: AppsBody = Self::decode("/v1/apps", &self.call(false, "/apps").await?)?;
        let mut out = Vec::new();
        for app in apps.apps {
            let path = format!("/apps/{}/machines", app.name);
            let ms: Vec<MachineBody> = match self.call(false, &path).await {
                Ok(body) => Self::decode(&path, &body)?,
                // The app went away between the two calls.
                Err(FleetError::Status { status: 404, .. }) => continue,
                Err(e) => return Err(e),
            };
            for m in ms {
                out.push(MachineInfo {
                    app: app.name.clone(),
                    id: m.id,
                    state: MachineState::parse(&m.state),
                    region: m.region,
                    private_ip: m.private_ip.as_deref().and_then(|s| s.parse().ok()),
                    cordoned: m.cordoned,
                    services: m.config.and_then(|c| c.services).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn start(&self, app: &str, id: &str) -> Result<(), FleetError> {
        self.call(true, &format!("/apps/{app}/machines/{id}/start"))
            .await
            .map(drop)
    }

    async fn stop(&self, app: &str, id: &str) -> Result<(), FleetError> {
        self.call(true, &format!("/apps/{app}/machines/{id}/stop"))
            .await
            .map(drop)
    }

    async fn suspend(&self, app: &str, id: &str) -> Result<(), FleetError> {
        self.call(true, &format!("/apps/{app}/machines/{id}/suspend"))
            .await
            .map(drop)
    }
}
