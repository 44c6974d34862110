//! `hangar image`: the host's image store (import, list, remove).

use std::path::PathBuf;

use anyhow::Context;
use hangar_agent::image::ImageStore;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Import an image from an OCI layout directory or a `docker save` tarball.
    ///
    /// Example: hangar image import ./app-oci --name registry.local/app:1
    Import {
        /// OCI image layout directory, or `docker save` tar file.
        path: PathBuf,
        /// Reference to record the image under (default: the name inside it).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images in the store.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an image from the store.
    Rm {
        /// The image reference.
        reference: String,
    },
}

pub async fn run(data_dir: PathBuf, cmd: ImageCommand) -> anyhow::Result<()> {
    let store = ImageStore::open(data_dir.join("images"))
        .with_context(|| format!("image store in {}", data_dir.display()))?;
    match cmd {
        ImageCommand::Import { path, name } => {
            let record = if path.is_dir() {
                store.import_oci_layout(&path, name.as_deref()).await?
            } else {
                store.import_docker_archive(&path, name.as_deref()).await?
            };
            println!("{} {}", record.reference, record.manifest_digest.as_str());
        }
        ImageCommand::List { json } => {
            let images = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                println!("{:<60} {:<20} LAYERS", "REFERENCE", "DIGEST");
                for i in images {
                    let digest = i.manifest_digest.as_str();
                    let short = &digest[..digest.len().min(19)];
                    println!("{:<60} {:<20} {}", i.reference, short, i.layers.len());
                }
            }
        }
        ImageCommand::Rm { reference } => {
            let removed = store.remove(&reference)?;
            println!("removed {}", removed.reference);
        }
    }
    Ok(())
}
