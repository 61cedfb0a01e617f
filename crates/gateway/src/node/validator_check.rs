//! The start-up duplicate-host check: is another gateway bonded with our announce host?
//!
//! Best effort: an unreachable validator API is a warning and the gateway starts (it must work
//! offline). A different identity bonded with our host is a refusal to start. A gateway that
//! announces a local address is not in any directory, so the check is skipped for it.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tracing::{info, warn};

/// What the check found.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Not done (local host or no API configured), with the reason.
    Skipped(&'static str),
    /// The API could not be asked; the gateway starts anyway.
    Unreachable(String),
    /// No bonded gateway uses our host.
    Clear,
    /// Our own identity is bonded with our host (we did not unbond when going offline).
    OurselvesBonded,
}

/// Another identity is bonded with our announce host.
#[derive(Debug, Error)]
#[error(
    "Our announce-host is identical to an existing node's announce-host! (its key is {identity:?})"
)]
pub struct DuplicateHost {
    /// The other gateway's identity key.
    pub identity: String,
}

#[derive(Deserialize)]
struct GatewayBond {
    gateway: BondedGateway,
}

#[derive(Deserialize)]
struct BondedGateway {
    host: String,
    identity_key: String,
}

/// Whether `host` is an address no other node could reach.
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// `<api>/v1/gateways`, tolerant of a trailing slash in the configured URL.
pub fn gateways_url(api: &str) -> String {
    format!("{}/v1/gateways", api.trim_end_matches('/'))
}

/// Runs the check against the first validator API that answers. Blocking (call it from
/// `spawn_blocking`).
pub fn check(
    apis: &[String],
    announce_host: &str,
    identity: &str,
    timeout: Duration,
) -> Result<CheckOutcome, DuplicateHost> {
    if is_local_host(announce_host) {
        return Ok(CheckOutcome::Skipped(
            "the announce host is a local address",
        ));
    }
    if apis.is_empty() {
        return Ok(CheckOutcome::Skipped("no validator API is configured"));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut last_error = String::new();
    for api in apis {
        let url = gateways_url(api);
        let bonds: Vec<GatewayBond> = match agent.get(&url).call() {
            Ok(mut response) => match response.body_mut().read_json() {
                Ok(bonds) => bonds,
                Err(e) => {
                    last_error = format!("{url}: unexpected response: {e}");
                    continue;
                }
            },
            Err(e) => {
                last_error = format!("{url}: {e}");
                continue;
            }
        };
        return match bonds.iter().find(|b| b.gateway.host == announce_host) {
            None => Ok(CheckOutcome::Clear),
            Some(b) if b.gateway.identity_key == identity => Ok(CheckOutcome::OurselvesBonded),
            Some(b) => Err(DuplicateHost {
                identity: b.gateway.identity_key.clone(),
            }),
        };
    }
    Ok(CheckOutcome::Unreachable(last_error))
}

/// Logs the outcome the way operators know it.
pub fn report(outcome: &CheckOutcome) {
    match outcome {
        CheckOutcome::Skipped(why) => info!("duplicate-host check skipped: {why}"),
        CheckOutcome::Unreachable(e) => warn!("failed to grab initial network gateways - {e}. Starting anyway; the duplicate-host check will be done at the next start"),
        CheckOutcome::Clear => info!("no other gateway is bonded with our announce host"),
        CheckOutcome::OurselvesBonded => warn!("We seem to have not unregistered after going offline - there's a node with identical identity and announce-host as us registered."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts_are_recognised() {
        for host in ["127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]", "::"] {
            assert!(is_local_host(host), "{host}");
        }
        for host in ["62.240.134.46", "gw.example.org", "2001:db8::1"] {
            assert!(!is_local_host(host), "{host}");
        }
    }

    #[test]
    fn url_join_has_one_slash() {
        assert_eq!(
            gateways_url("https://validator.nymtech.net/api/"),
            "https://validator.nymtech.net/api/v1/gateways"
        );
        assert_eq!(
            gateways_url("http://127.0.0.1:9/api"),
            "http://127.0.0.1:9/api/v1/gateways"
        );
    }

    #[test]
    fn a_local_gateway_never_asks() {
        let apis = vec!["http://127.0.0.1:9/".to_owned()];
        let outcome = check(&apis, "127.0.0.1", "id", Duration::from_millis(100)).unwrap();
        assert!(matches!(outcome, CheckOutcome::Skipped(_)));
    }
}
