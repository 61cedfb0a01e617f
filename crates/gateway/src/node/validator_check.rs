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

/// A bonded gateway as the validator API lists it: the fields the check reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BondedGateway {
    /// Its announce host.
    pub host: String,
    /// Its identity key (base58).
    pub identity_key: String,
}

/// The bonded gateways in a `/v1/gateways` response body.
pub fn parse_gateways(body: &[u8]) -> Result<Vec<BondedGateway>, serde_json::Error> {
    let bonds: Vec<GatewayBond> = serde_json::from_slice(body)?;
    Ok(bonds.into_iter().map(|bond| bond.gateway).collect())
}

/// What the bonded gateways say about our `announce_host` and `identity`: the first one bonded
/// with our host decides.
pub fn outcome(
    bonded: &[BondedGateway],
    announce_host: &str,
    identity: &str,
) -> Result<CheckOutcome, DuplicateHost> {
    match bonded.iter().find(|g| g.host == announce_host) {
        None => Ok(CheckOutcome::Clear),
        Some(g) if g.identity_key == identity => Ok(CheckOutcome::OurselvesBonded),
        Some(g) => Err(DuplicateHost {
            identity: g.identity_key.clone(),
        }),
    }
}

/// Whether `host` is an address no other node could reach: `localhost`, a loopback,
/// unspecified or multicast IP (bracketed IPv6 too).
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified() || ip.is_multicast())
}

/// `<api>/v1/gateways`, tolerant of a trailing slash in the configured URL.
pub fn gateways_url(api: &str) -> String {
    format!("{}/v1/gateways", api.trim_end_matches('/'))
}

/// Runs the check against the first validator API that answers, each request bounded by
/// `timeout` and its answer by `max_answer` bytes (a larger one counts as no answer). Blocking
/// (call it from `spawn_blocking`).
pub fn check(
    apis: &[String],
    announce_host: &str,
    identity: &str,
    timeout: Duration,
    max_answer: usize,
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
        // The body is read whole and parsed on its own.
        let body = match agent.get(&url).call() {
            Ok(mut response) => response
                .body_mut()
                .with_config()
                .limit(max_answer as u64)
                .read_to_vec(),
            Err(e) => Err(e),
        };
        let bonded = match body.map(|body| parse_gateways(&body)) {
            Ok(Ok(bonded)) => bonded,
            Ok(Err(e)) => {
                last_error = format!("{url}: unexpected response: {e}");
                continue;
            }
            Err(e) => {
                last_error = format!("{url}: {e}");
                continue;
            }
        };
        return outcome(&bonded, announce_host, identity);
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
    use crate::node::test_http::Server;

    #[test]
    fn local_hosts_are_recognised() {
        for host in [
            "127.0.0.1",
            "localhost",
            "0.0.0.0",
            "::1",
            "[::1]",
            "::",
            "224.0.0.1",
            "ff02::1",
        ] {
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
        let outcome = check(&apis, "127.0.0.1", "id", Duration::from_millis(100), 1024).unwrap();
        assert!(matches!(outcome, CheckOutcome::Skipped(_)));
    }

    #[test]
    fn an_answer_over_the_configured_size_counts_as_an_unreachable_api() {
        let bonds =
            r#"[{"gateway":{"host":"gw.example.org","identity_key":"TheirKey","mix_port":1789}}]"#;
        let api = Server::answering(bonds);
        let apis = [api.url.clone()];
        let with_limit = |limit| {
            check(
                &apis,
                "gw.example.org",
                "OurKey",
                Duration::from_secs(5),
                limit,
            )
        };

        let refused = with_limit(bonds.len()).unwrap_err();
        assert_eq!(refused.identity, "TheirKey");
        assert_eq!(
            with_limit(bonds.len() - 1).unwrap(),
            CheckOutcome::Unreachable(format!(
                "{}: the response body is larger than request limit: {}",
                gateways_url(&api.url),
                bonds.len() - 1
            ))
        );
    }
}
