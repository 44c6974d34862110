//! `GET /v1/apps/{app}/machines/{id}/logs`: a started machine's output as
//! JSON lines (`timestamp`, `container`, `stream`, `message`), the kept lines
//! first (`tail=N` for the last N), then with `follow=true` new lines as they
//! come. `container=NAME` keeps one container's lines. Hangar's own endpoint:
//! Fly serves logs elsewhere.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hangar_agent::store::MachineState;

use crate::backend::LogOptions;
use crate::body::Params;
use crate::error::ApiError;
use crate::lookup;
use crate::state::ApiState;

pub async fn logs(
    State(state): State<ApiState>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q);
    let opts = LogOptions {
        container: p
            .get("container")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        tail: p
            .u64("tail")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        follow: p.bool("follow")?.unwrap_or(false),
    };
    let m = lookup::machine(&state, &app, &id).await?;
    if m.state != MachineState::Started {
        return Err(ApiError::PreconditionFailed(format!(
            "machine {id} is {}: its init keeps logs only while it runs",
            m.state
        )));
    }
    let rx = state.machines.logs(&m, &opts).await?;
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let entry = rx.recv().await?;
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
