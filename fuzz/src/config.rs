//! `config.toml` ([`Config::parse`] + [`Config::validate`]), as an operator (or an old gateway
//! version) wrote it. A file that validates renders back to a file that parses to the same
//! config and validates too: `upgrade` relies on that when it rewrites the file.

use nym_gateway::build_info::VERSION;
use nym_gateway::config::upgrade::{check_version, VersionCheck};
use nym_gateway::config::Config;
use nym_gateway::wallet;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(config) => config,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };

    // the other values `run` reads from the file
    match check_version(VERSION, &config.gateway.version) {
        Ok(VersionCheck::Equal) => assert_eq!(config.gateway.version, VERSION),
        Ok(VersionCheck::Compatible) => assert_ne!(config.gateway.version, VERSION),
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    let wallet = config.gateway.wallet_address.trim();
    if !wallet.is_empty() {
        let _ = wallet::validate(wallet, "n").map_err(|e| e.to_string());
    }

    if let Err(err) = config.validate() {
        assert!(!err.to_string().is_empty());
        return;
    }
    let g = &config.gateway;
    assert!(!g.id.is_empty());
    assert_ne!(g.mix_port, g.clients_port);
    assert!(!g.announce_address.trim().is_empty());
    let debug = &config.debug;
    assert!(debug.packet_forwarding_initial_backoff <= debug.packet_forwarding_maximum_backoff);
    assert!(
        debug.replay_filter_false_positive_rate > 0.0
            && debug.replay_filter_false_positive_rate < 1.0
    );

    let rendered = config.render();
    let reparsed = Config::parse(&rendered)
        .unwrap_or_else(|e| panic!("the rendered config does not parse: {e}\n{rendered}"));
    assert_eq!(
        reparsed, config,
        "render → parse changed the config\n{rendered}"
    );
    reparsed.validate().expect("the rendered config validates");
    assert_eq!(reparsed.render(), rendered);
}
