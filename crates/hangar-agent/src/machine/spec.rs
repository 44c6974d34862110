//! Building the spec pilot runs from a machine's record: its config, the images
//! it names (already in the image store), secrets, volumes and environment.

use std::collections::BTreeMap;

use hangar_types::MachineConfig;
use pilot::spec::{ImageConfig, ImageSpec, MachineSpec, VolumeSpec};

use super::AgentError;
use super::paths::MachinePaths;
use crate::image::{ImageRecord, ImageStore};
use crate::store::MachineRecord;

/// Every image reference the config names, once each, in order.
pub fn image_refs(config: &MachineConfig) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    let named = config
        .image
        .iter()
        .chain(config.containers().iter().filter_map(|c| c.image.as_ref()));
    for r in named {
        if !r.is_empty() && !refs.contains(r) {
            refs.push(r.clone());
        }
    }
    refs
}

fn image_spec(record: &ImageRecord, raw_config: Option<String>) -> ImageSpec {
    let c = &record.config;
    ImageSpec {
        layers: record.layer_dirs(),
        config: ImageConfig {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env: Some(c.env.clone()),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
        },
        raw_config,
    }
}

/// The environment every process of the machine gets, Fly's names.
fn machine_env(machine: &MachineRecord, image: Option<&str>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("FLY_APP_NAME".into(), machine.app.clone());
    env.insert("FLY_MACHINE_ID".into(), machine.id.clone());
    env.insert("FLY_ALLOC_ID".into(), machine.id.clone());
    env.insert("FLY_REGION".into(), machine.region.clone());
    env.insert("FLY_MACHINE_VERSION".into(), machine.version.clone());
    if let Some(ip) = &machine.private_ip {
        env.insert("FLY_PRIVATE_IP".into(), ip.clone());
    }
    if let Some(image) = image {
        env.insert("FLY_IMAGE_REF".into(), image.to_owned());
    }
    if let Some(group) = machine.metadata.get("fly_process_group") {
        env.insert("FLY_PROCESS_GROUP".into(), group.clone());
    }
    env
}

/// Assembles pilot's spec for `machine`.
pub fn build(
    machine: &MachineRecord,
    config: &MachineConfig,
    images: &ImageStore,
    secrets: BTreeMap<String, String>,
    volumes: Vec<VolumeSpec>,
    paths: &MachinePaths,
) -> Result<MachineSpec, AgentError> {
    let mut specs = BTreeMap::new();
    for reference in image_refs(config) {
        let record = images.get(&reference)?.ok_or_else(|| {
            AgentError::Invalid(format!("image {reference}: not in this host's image store"))
        })?;
        let raw = std::fs::read_to_string(images.blob_path(&record.config_digest)).ok();
        specs.insert(reference, image_spec(&record, raw));
    }
    Ok(MachineSpec {
        machine_id: machine.id.clone(),
        env: machine_env(machine, config.image.as_deref()),
        config: config.clone(),
        images: specs,
        secrets,
        volumes,
        state_dir: paths.state_dir(),
        log_buffer_lines: None,
    })
}
