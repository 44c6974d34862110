//! The host's iptables/ip6tables rules for the machine network. Each rule carries
//! a comment naming the bridge, is checked (`-C`) before it is inserted, and is
//! deleted on teardown, so `ensure` can run at every agent start.
//!
//! Rules (filter table rules are inserted first in FORWARD so a DROP policy,
//! as Docker sets, does not cut machines off):
//! - always: `FORWARD -i BR -o BR -j ACCEPT` (machine to machine, when
//!   `br_netfilter` sends bridged frames through iptables);
//! - with NAT: `nat POSTROUTING -s NET ! -o BR -j MASQUERADE`,
//!   `FORWARD -i BR ! -o BR -j ACCEPT` and
//!   `FORWARD -o BR -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`.

use std::process::Command;

use super::config::NetworkConfig;
use super::error::{NetworkError, Result};

/// `-C` attempts before giving up deleting duplicates of a rule.
const MAX_DUPLICATES: usize = 16;

/// One rule: tool, table, chain, and the match/target after the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `iptables` or `ip6tables`.
    pub tool: &'static str,
    /// `filter` or `nat`.
    pub table: &'static str,
    /// `FORWARD` or `POSTROUTING`.
    pub chain: &'static str,
    /// Everything after the chain name.
    pub spec: Vec<String>,
}

/// The comment that marks the rules of `config`'s bridge.
pub fn comment(config: &NetworkConfig) -> String {
    format!("hangar:{}", config.bridge)
}

/// The rules `config` wants (`nat` selects the NAT set) for both families.
pub fn rules(config: &NetworkConfig, nat: bool) -> Vec<Rule> {
    let br = config.bridge.as_str();
    let tag = comment(config);
    // Matches, then the comment, then the target.
    let words = |matches: &str, target: &str| -> Vec<String> {
        let mut v: Vec<String> = matches.split_whitespace().map(str::to_string).collect();
        v.extend(["-m", "comment", "--comment", tag.as_str()].map(str::to_string));
        v.extend(target.split_whitespace().map(str::to_string));
        v
    };
    let mut out = Vec::new();
    for (tool, net) in [
        ("iptables", config.ipv4_subnet.to_string()),
        ("ip6tables", config.ipv6_prefix.to_string()),
    ] {
        out.push(Rule {
            tool,
            table: "filter",
            chain: "FORWARD",
            spec: words(&format!("-i {br} -o {br}"), "-j ACCEPT"),
        });
        if nat {
            out.push(Rule {
                tool,
                table: "nat",
                chain: "POSTROUTING",
                spec: words(&format!("-s {net} ! -o {br}"), "-j MASQUERADE"),
            });
            out.push(Rule {
                tool,
                table: "filter",
                chain: "FORWARD",
                spec: words(&format!("-i {br} ! -o {br}"), "-j ACCEPT"),
            });
            out.push(Rule {
                tool,
                table: "filter",
                chain: "FORWARD",
                spec: words(
                    &format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED"),
                    "-j ACCEPT",
                ),
            });
        }
    }
    out
}

/// Runs the tool; `Ok(true)` on exit 0, `Ok(false)` on exit 1 (what `-C` answers
/// for a missing rule), an error otherwise.
fn run(rule: &Rule, action: &str) -> Result<bool> {
    let mut args = vec![
        "-w".to_string(),
        "5".into(),
        "-t".into(),
        rule.table.into(),
        action.into(),
        rule.chain.into(),
    ];
    if action == "-I" {
        args.push("1".into());
    }
    args.extend(rule.spec.iter().cloned());
    let out = Command::new(rule.tool)
        .args(&args)
        .output()
        .map_err(|e| NetworkError::Firewall {
            tool: rule.tool,
            args: args.join(" "),
            problem: e.to_string(),
        })?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) if action == "-C" || action == "-D" => Ok(false),
        _ => Err(NetworkError::Firewall {
            tool: rule.tool,
            args: args.join(" "),
            problem: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

/// Inserts `rule` unless it is there.
pub fn install(rule: &Rule) -> Result<()> {
    if !run(rule, "-C")? {
        run(rule, "-I")?;
    }
    Ok(())
}

/// Deletes every copy of `rule`; nothing there is success.
pub fn remove(rule: &Rule) -> Result<()> {
    for _ in 0..MAX_DUPLICATES {
        if !run(rule, "-C")? {
            return Ok(());
        }
        run(rule, "-D")?;
    }
    Ok(())
}

/// Whether `tool` can be run at all.
fn available(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Installs the rules `config` wants and removes the NAT ones it does not.
/// Without NAT, a host that has no `iptables`/`ip6tables` at all has no
/// forwarding filter to open either, and is left alone.
pub fn ensure(config: &NetworkConfig) -> Result<()> {
    let wanted = rules(config, config.nat);
    let missing: Vec<&str> = ["iptables", "ip6tables"]
        .into_iter()
        .filter(|t| !config.nat && !available(t))
        .collect();
    for rule in rules(config, true) {
        if missing.contains(&rule.tool) {
            continue;
        }
        if wanted.contains(&rule) {
            install(&rule)?;
        } else {
            remove(&rule)?;
        }
    }
    Ok(())
}

/// Removes every rule of `config`'s bridge.
pub fn teardown(config: &NetworkConfig) -> Result<()> {
    for rule in rules(config, true) {
        if !available(rule.tool) {
            continue;
        }
        remove(&rule)?;
    }
    Ok(())
}
