//! Writes Hangar's sample image (busybox + testapp) as an OCI image layout, so a
//! host without internet access has something to run:
//!
//! ```text
//! cargo run -p hangar-test-support --example sample-image -- OUT_DIR
//! hangar image import OUT_DIR --name hangar.local/sample:latest
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: sample-image OUT_DIR");
        return ExitCode::from(2);
    };
    let image = hangar_test_support::ImageBuilder::new().build();
    match image.write_oci_layout(&out, Some("hangar.local/sample:latest")) {
        Ok(()) => {
            println!("{}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sample-image: {e}");
            ExitCode::FAILURE
        }
    }
}
