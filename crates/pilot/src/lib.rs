//! pilot: PID 1 of every Hangar machine.
//!
//! Given a machine's spec it runs the machine's containers in dependency order,
//! health-checks them, restarts them by policy, reports to the agent over a unix
//! socket, and shuts them down cleanly.
//!
//! ```text
//! pilot sandbox ... -- pilot run --spec FILE --socket PATH [--state-dir DIR]
//! ```
//!
//! # Code map
//!
//! - [`spec`]: the JSON file the agent writes; [`resolve`] turns it into a
//!   [`plan::MachinePlan`] (commands, env, users via [`users`], files, checks,
//!   restart and stop policies), reporting every problem with its JSON path.
//! - [`supervisor`]: one task owning the machine's state; [`health`] probes,
//!   [`restart`] decides, [`exec`] runs commands in containers, [`logs`] captures
//!   output into a bounded [`journal`], [`reaper`] collects every exit.
//! - [`api`] serves the agent; [`client`] is the agent's typed client.
//! - [`runtime`]: the container runtime seam (namespaces, overlay rootfs, cgroups).
//!
//! # The spec file (written by the agent)
//!
//! One JSON object ([`spec::MachineSpec`]); unknown keys are rejected:
//!
//! ```json
//! {
//!   "machine_id": "3d8d9e2b7c1e48",
//!   "env": {"FLY_MACHINE_ID": "3d8d9e2b7c1e48"},
//!   "config": { "containers": [ ... ] },
//!   "images": {
//!     "registry.local/app:1": {
//!       "layers": ["/var/lib/hangar/layers/sha256-aa", "/var/lib/hangar/layers/sha256-bb"],
//!       "config": {"Entrypoint": ["/app"], "Cmd": ["serve"], "Env": ["PATH=/bin"],
//!                  "WorkingDir": "/srv", "User": "app"},
//!       "raw_config": "{... the image's OCI config JSON ...}"
//!     }
//!   },
//!   "secrets": {"DB_PASSWORD": "aHVudGVyMg=="},
//!   "volumes": [{"source": "/var/lib/hangar/volumes/vol_1", "target": "/data",
//!                "readonly": false, "containers": ["app"]}],
//!   "state_dir": "/run/hangar/machines/3d8d9e2b7c1e48/pilot",
//!   "log_buffer_lines": 10000
//! }
//! ```
//!
//! - `config` is the machine's `MachineConfig` as the Machines API stores it
//!   ([`hangar_types::MachineConfig`]). With `containers`, each entry is one
//!   container. Without, `config.image` is one container named `app` (command from
//!   `init`), or one container per `processes[]` entry (`process-0`, `process-1`,
//!   ...; `app` when there is one), all with the machine-level `restart`.
//! - `images` holds every image the config names, keyed exactly as written there:
//!   unpacked layer directories (lowest first), the image config (OCI or snake_case
//!   spelling), and the raw config JSON for `files[].image_config`.
//! - `secrets`: name → value. `files[].secret_name` takes the value as base64 file
//!   content; `containers[].secrets` / `processes[].secrets` set `env_var` (or the
//!   secret's name) to the value.
//! - Resolution: argv = `exec`, else (`entrypoint` or the image's) + (`cmd`, or the
//!   image's unless `entrypoint` was overridden). Env = the image's (plus a default
//!   `PATH`), then `env` of the spec, then `config.env`, then the container's, then
//!   its secrets. `user` (name, uid, `name:group`, `uid:gid`) is looked up in the
//!   image's `/etc/passwd` and `/etc/group`. Working dir: the image's, else `/`.
//!   Files are written with `mode` (default 0644), owned by the container's user;
//!   `local_path` is an error (the CLI resolves it). Restart: the container's, else
//!   the machine's, else `on-failure` with `max_retries` 10 within 5 minutes and a
//!   backoff of 100 ms doubling up to 10 s. Stop: the container's `stop`, else
//!   `stop_config`, field by field, else SIGINT and 5 s.
//! - Per-container runtime state lives in `state_dir/containers/<name>`; pilot
//!   writes `state_dir/status.json` (a [`status::MachineStatus`], atomically)
//!   before it exits, also when the spec is invalid (then with `error`).
//!
//! # Behaviour
//!
//! A container starts as soon as each `depends_on` is met: `started` (spawned),
//! `healthy` (every check reached `success_threshold` consecutive passes; a
//! container without checks is healthy once started), `exited_successfully`
//! (exited 0). Conditions latch. When a dependency is finished for good without
//! meeting the condition (e.g. exited 1 with no restart left), the dependent is
//! `failed` with a reason naming the dependency, and so are its own dependents.
//! Health checks run after `grace_period`, every `interval`, each within
//! `timeout`; a check reaching `failure_threshold` makes the container
//! `unhealthy`, and with `unhealthy: stop` it is stopped (its stop signal, then
//! SIGKILL after the timeout) and its restart policy applies, the run counting as
//! a failure. Stop: containers that no live container depends on get their stop
//! signal first; SIGKILL after the timeout; then their dependencies. pilot exits
//! once every container is finished, with code 0 after a requested stop or when
//! every container exited 0, else the exit code of the first failed container
//! (128 + signal when killed, 1 when it never ran); 2 for an invalid spec.
//! SIGTERM/SIGINT/SIGHUP to pilot stop the machine like an API `stop`.
//!
//! # The agent API
//!
//! A unix socket (`--socket`). Each request is one JSON object on one line
//! ([`api::protocol::Request`], tagged by `op`); each answer is one JSON object on
//! one line ([`api::protocol::Response`], externally tagged). Several requests
//! may be sent one after another on a connection; a streaming request (`events`,
//! `logs`) takes the connection over until its `"end"`.
//!
//! | request | answer |
//! |---|---|
//! | `{"op":"status"}` | `{"status":{"machine_id":..,"state":"running","containers":[{"name":"app","state":"healthy","restart_count":0,"last_exit":null,"health":[..],..}]}}` |
//! | `{"op":"events","after":17,"follow":true}` | `{"event":{"id":18,"event":{"ts_ms":..,"container":"app","type":"started","pid":42}}}` ... `"end"` |
//! | `{"op":"logs","container":"app","tail":100,"follow":false}` | `{"log":{"id":5,"line":{"ts_ms":..,"container":"app","stream":"stdout","line":"hello"}}}` ... `"end"` |
//! | `{"op":"exec","container":"app","cmd":["cat","/etc/hostname"],"stdin":"","timeout":10}` | `{"exec":{"exit_code":0,"signal":null,"stdout":"..","stderr":"","timed_out":false}}` |
//! | `{"op":"signal","container":"app","signal":"SIGUSR1"}` | `{"signal":{"containers":["app"],"signal":10}}` |
//! | `{"op":"stop","signal":"SIGTERM","timeout":10,"wait":true}` | `{"stop":{"accepted":true,"message":"..","status":{..final status..}}}` |
//!
//! Errors are `{"error":{"code":"unknown_container","message":"container: no container named \"db\" (this machine has: app, worker)"}}`
//! with codes `bad_request`, `unknown_container`, `not_running`, `exec_failed`,
//! `stopping`, `internal`. A second `stop` is answered with `accepted: false`
//! and says the machine is already stopping. Container states: `created`,
//! `starting`, `running`, `healthy`, `unhealthy`, `exited`, `failed`; machine
//! states: `starting`, `running`, `stopping`, `exited`. Events carry increasing ids
//! and can be resumed with `after`; the buffers are bounded (events: 10 000, logs:
//! `log_buffer_lines`) and a reader that asks for dropped entries gets
//! `{"missed":{"count":N}}` first.

pub mod api;
pub mod cli;
pub mod client;
pub mod exec;
pub mod health;
pub mod journal;
pub mod logs;
pub mod plan;
pub mod reaper;
pub mod resolve;
pub mod restart;
pub mod runtime;
pub mod spec;
pub mod status;
pub mod supervisor;
pub mod users;
