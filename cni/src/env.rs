//! The `CNI_*` environment: the command, the attachment's identity (container id, interface
//! name), the namespace path and `CNI_ARGS`. Every malformed or missing variable is code 4 with
//! the variable's name in the message; the container id and interface name are checked against
//! the spec's rules before they are used in file and interface names.

use crate::error::{CniError, Code, Result};
use std::path::PathBuf;

/// `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify the attachment against `prevResult`.
    Check,
    /// Report the supported spec versions.
    Version,
    /// Whether the plugin can serve ADD (spec 1.1.0).
    Status,
    /// Remove state of attachments not in `cni.dev/valid-attachments` (spec 1.1.0).
    Gc,
}

impl Command {
    /// Reads `CNI_COMMAND`.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let c = get("CNI_COMMAND")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| CniError::new(Code::InvalidEnv, "CNI_COMMAND: missing"))?;
        Ok(match c.as_str() {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "VERSION" => Self::Version,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            other => {
                return Err(CniError::new(
                    Code::InvalidEnv,
                    format!(
                        "CNI_COMMAND: unknown command '{}' (expected ADD, DEL, CHECK, STATUS, GC or VERSION)",
                        other.escape_debug()
                    ),
                ))
            }
        })
    }
}

/// What `CNI_ARGS` says about the pod (Kubernetes runtimes pass these four).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodArgs {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub name: Option<String>,
    /// `K8S_POD_UID`.
    pub uid: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub infra_container_id: Option<String>,
}

impl PodArgs {
    /// Parses `KEY=VALUE;KEY=VALUE`. Unknown keys (`IgnoreUnknown` and others) are accepted; a
    /// pair without `=` or with an empty key is an error.
    pub fn parse(s: &str) -> Result<Self> {
        let mut a = PodArgs::default();
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    CniError::new(
                        Code::InvalidEnv,
                        format!(
                            "CNI_ARGS: '{}' is not KEY=VALUE (pairs are separated by ';')",
                            pair.escape_debug()
                        ),
                    )
                })?;
            let slot = match k {
                "K8S_POD_NAMESPACE" => &mut a.namespace,
                "K8S_POD_NAME" => &mut a.name,
                "K8S_POD_UID" => &mut a.uid,
                "K8S_POD_INFRA_CONTAINER_ID" => &mut a.infra_container_id,
                _ => continue,
            };
            *slot = Some(v.to_string()).filter(|v| !v.is_empty());
        }
        Ok(a)
    }
}

/// The attachment's parameters from the environment.
#[derive(Clone, Debug)]
pub struct Env {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_NETNS`, when given (required for ADD and CHECK).
    pub netns: Option<PathBuf>,
    /// `CNI_ARGS`.
    pub pod: PodArgs,
}

/// Whether `s` is a valid container id: the spec's rule (it also keeps ids safe as file names).
pub fn valid_container_id(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
}

/// Whether `s` is a valid Linux interface name: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace (the kernel's `dev_valid_name`). We also refuse control characters and `@`, which
/// our file names use as a separator.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c == '@' || c.is_whitespace() || c.is_control())
}

impl Env {
    /// Reads the attachment variables for an attachment command (ADD, DEL, CHECK).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>, need_netns: bool) -> Result<Self> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let container_id = var("CNI_CONTAINERID")
            .ok_or_else(|| CniError::new(Code::InvalidEnv, "CNI_CONTAINERID: missing"))?;
        if !valid_container_id(&container_id) {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!(
                    "CNI_CONTAINERID: '{}' must start with a letter or digit and hold only letters, digits, '_', '.' and '-'",
                    container_id.escape_debug()
                ),
            ));
        }
        let ifname = var("CNI_IFNAME")
            .ok_or_else(|| CniError::new(Code::InvalidEnv, "CNI_IFNAME: missing"))?;
        if !valid_ifname(&ifname) {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!(
                    "CNI_IFNAME: '{}' is not a valid interface name (1-15 bytes, no '/', ':', '@' or whitespace)",
                    ifname.escape_debug()
                ),
            ));
        }
        let netns = var("CNI_NETNS").map(PathBuf::from);
        if need_netns && netns.is_none() {
            return Err(CniError::new(Code::InvalidEnv, "CNI_NETNS: missing"));
        }
        // iproute2 reads a bare name as /var/run/netns/NAME; an absolute path means the same
        // file to us and to it.
        if let Some(p) = netns.as_ref().filter(|p| !p.is_absolute()) {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_NETNS: '{}' is not an absolute path", p.display()),
            ));
        }
        let pod = PodArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        Ok(Env {
            container_id,
            ifname,
            netns,
            pod,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn commands() {
        assert_eq!(
            Command::from_env(&env(&[("CNI_COMMAND", "ADD")])).unwrap(),
            Command::Add
        );
        assert_eq!(
            Command::from_env(&env(&[("CNI_COMMAND", "GC")])).unwrap(),
            Command::Gc
        );
        let e = Command::from_env(&env(&[("CNI_COMMAND", "add")])).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnv);
        assert!(e.msg.contains("unknown command 'add'"), "{e}");
        let e = Command::from_env(&env(&[])).unwrap_err();
        assert_eq!(e.msg, "CNI_COMMAND: missing");
    }

    #[test]
    fn cni_args() {
        let a = PodArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
        )
        .unwrap();
        assert_eq!(a.namespace.as_deref(), Some("default"));
        assert_eq!(a.name.as_deref(), Some("web-0"));
        assert_eq!(a.uid.as_deref(), Some("u-1"));
        assert_eq!(a.infra_container_id.as_deref(), Some("abc"));
        assert_eq!(PodArgs::parse("").unwrap(), PodArgs::default());
        assert_eq!(PodArgs::parse("A=1;;").unwrap(), PodArgs::default());
        let e = PodArgs::parse("K8S_POD_NAME").unwrap_err();
        assert!(e.msg.starts_with("CNI_ARGS:"), "{e}");
        assert!(PodArgs::parse("=x").is_err());
    }

    #[test]
    fn attachment_identity_is_validated() {
        let base = [
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/var/run/netns/x"),
        ];
        let e = Env::from_env(&env(&base), true).unwrap();
        assert_eq!(e.container_id, "c0ffee");
        for (k, v, what) in [
            ("CNI_CONTAINERID", "../etc", "CNI_CONTAINERID:"),
            ("CNI_CONTAINERID", "", "CNI_CONTAINERID: missing"),
            ("CNI_IFNAME", "a/b", "CNI_IFNAME:"),
            ("CNI_IFNAME", "sixteen-bytes-xx", "CNI_IFNAME:"),
            ("CNI_IFNAME", "..", "CNI_IFNAME:"),
            ("CNI_NETNS", "", "CNI_NETNS: missing"),
            (
                "CNI_NETNS",
                "netns/x",
                "CNI_NETNS: 'netns/x' is not an absolute path",
            ),
            ("CNI_ARGS", "junk", "CNI_ARGS:"),
        ] {
            let mut p: Vec<(&str, &str)> = base.iter().copied().filter(|(b, _)| *b != k).collect();
            p.push((k, v));
            let e = Env::from_env(&env(&p), true).unwrap_err();
            assert_eq!(e.code, Code::InvalidEnv);
            assert!(e.msg.starts_with(what), "{k}={v}: {e}");
        }
        // DEL may come without a namespace.
        let p: Vec<_> = base
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        assert!(Env::from_env(&env(&p), false).unwrap().netns.is_none());
    }
}
