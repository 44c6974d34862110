//! Image reference rewrites (`--image-rewrite FROM=TO`, env
//! `HANGAR_IMAGE_REWRITE="from=to,from2=to2"`): run a config written for
//! other images against local ones without editing the file. Applied to
//! `image` and `containers[].image` of every config the CLI sends.

use serde_json::Value;

/// The environment variable holding comma-separated `from=to` rewrites.
pub const ENV: &str = "HANGAR_IMAGE_REWRITE";

/// A bad `FROM=TO` rewrite.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {given:?} is not FROM=TO (both image references, not empty)")]
pub struct RewriteError {
    origin: &'static str,
    given: String,
}

/// An ordered list of `from → to` rewrites; the first match wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageRewrites(Vec<(String, String)>);

/// `nginx` and `nginx:latest` are the same reference.
fn normalize(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn parse_one(origin: &'static str, s: &str) -> Result<(String, String), RewriteError> {
    match s.split_once('=') {
        Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
            Ok((from.trim().to_owned(), to.trim().to_owned()))
        }
        _ => Err(RewriteError {
            origin,
            given: s.to_owned(),
        }),
    }
}

impl ImageRewrites {
    /// Flags first, then the environment's rewrites.
    pub fn from_flags_and_env(flags: &[String]) -> Result<ImageRewrites, RewriteError> {
        let env = std::env::var(ENV).unwrap_or_default();
        Self::parse(flags, &env)
    }

    pub fn parse(flags: &[String], env: &str) -> Result<ImageRewrites, RewriteError> {
        let mut out = Vec::new();
        for f in flags {
            out.push(parse_one("--image-rewrite", f)?);
        }
        for part in env.split(',').filter(|p| !p.trim().is_empty()) {
            out.push(parse_one(ENV, part)?);
        }
        Ok(ImageRewrites(out))
    }

    /// The image to use instead of `image` (itself when no rewrite matches).
    pub fn image(&self, image: &str) -> String {
        let n = normalize(image);
        self.0
            .iter()
            .find(|(from, _)| from == image || normalize(from) == n)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| image.to_owned())
    }

    /// Rewrites `image` and `containers[].image` of a machine config.
    pub fn apply(&self, config: &mut Value) {
        if self.0.is_empty() {
            return;
        }
        if let Some(Value::String(i)) = config.get_mut("image") {
            *i = self.image(i);
        }
        if let Some(Value::Array(cs)) = config.get_mut("containers") {
            for c in cs {
                if let Some(Value::String(i)) = c.get_mut("image") {
                    *i = self.image(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_config_and_container_images() {
        let r = ImageRewrites::parse(
            &["nginx:latest=127.0.0.1:5000/t:1".into()],
            "ealen/echo-server=127.0.0.1:5000/t:2, x=y",
        )
        .unwrap();
        let mut c = json!({"image": "nginx", "containers": [
            {"image": "ealen/echo-server"}, {"image": "other:1"}]});
        r.apply(&mut c);
        assert_eq!(c["image"], "127.0.0.1:5000/t:1");
        assert_eq!(c["containers"][0]["image"], "127.0.0.1:5000/t:2");
        assert_eq!(c["containers"][1]["image"], "other:1");
        assert_eq!(r.image("registry:5000/nginx"), "registry:5000/nginx");
    }

    #[test]
    fn bad_rewrites_name_where_they_came_from() {
        let e = ImageRewrites::parse(&["nginx".into()], "").unwrap_err();
        assert!(
            e.to_string().starts_with("--image-rewrite: \"nginx\""),
            "{e}"
        );
        let e = ImageRewrites::parse(&[], "a=b,=c").unwrap_err();
        assert!(e.to_string().starts_with("HANGAR_IMAGE_REWRITE"), "{e}");
    }
}
