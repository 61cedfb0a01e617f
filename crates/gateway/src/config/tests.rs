use std::num::{NonZeroU64, NonZeroUsize};

use super::*;
use crate::network::Network;

fn sample() -> Config {
    let mut config = Config::new(
        "demo",
        Path::new("/home/op/.nym/gateways"),
        &Network::mainnet(),
    );
    config.gateway.wallet_address = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy".into();
    config.gateway.listening_address = "62.240.134.46".parse().unwrap();
    config.gateway.announce_address = "gw.example.org".into();
    config.debug.client_push_queue_capacity = NonZeroUsize::new(7).unwrap();
    config.gateway.http_api_token = Some("s3cret".into());
    config
}

#[test]
fn render_parses_back_to_the_same_config() {
    let config = sample();
    let text = config.render();
    assert_eq!(Config::parse(&text).unwrap(), config, "{text}");
    config.validate().unwrap();
}

#[test]
fn accepted_terms_is_written_only_when_true_and_leaves_the_rest_byte_identical() {
    let without = sample().render();
    assert!(!without.contains("accepted_operator_terms_and_conditions"));
    let mut accepted = sample();
    accepted.gateway.accepted_operator_terms_and_conditions = true;
    let with = accepted.render();
    let block = "\n# The operator accepted Nym's operator terms and conditions.\naccepted_operator_terms_and_conditions = true\n";
    assert!(with.contains(&format!(
        "wallet_address = 'n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy'\n{block}"
    )));
    assert_eq!(with.replacen(block, "", 1), without);
    assert_eq!(Config::parse(&with).unwrap(), accepted);
    assert!(
        !Config::parse(&without)
            .unwrap()
            .gateway
            .accepted_operator_terms_and_conditions
    );
}

#[test]
fn nym_api_urls_default_to_the_validator_apis_and_are_written_only_when_set() {
    use crate::node::rotation::followed_apis;
    let without = sample();
    assert_eq!(
        followed_apis(&without),
        without.gateway.validator_api_urls.as_slice()
    );
    assert!(!without.render().contains("nym_api_urls"));
    let mut local = sample();
    local.gateway.announce_address = "127.0.0.1".into();
    assert!(
        followed_apis(&local).is_empty(),
        "a local gateway follows no nym-api by default"
    );

    let mut none = sample();
    none.gateway.nym_api_urls = Some(Vec::new());
    assert!(
        followed_apis(&none).is_empty(),
        "an empty list means no nym-api"
    );
    let text = none.render();
    assert!(text.contains("\nnym_api_urls = []\n"), "{text}");
    assert_eq!(Config::parse(&text).unwrap(), none);

    local.gateway.nym_api_urls = Some(vec!["http://127.0.0.1:8000/".into()]);
    assert_eq!(followed_apis(&local), ["http://127.0.0.1:8000/"]);
    assert_eq!(Config::parse(&local.render()).unwrap(), local);

    local.gateway.nym_api_urls = Some(vec!["not a url".into()]);
    let err = local.validate().unwrap_err().to_string();
    assert!(
        err.contains("nym_api_urls") && err.contains("not a url"),
        "{err}"
    );
}

#[test]
fn wss_keys_render_commented_out_until_set_and_parse_back() {
    let without = sample().render();
    assert!(
        without.contains("\n# clients_wss_port = 9001\n"),
        "{without}"
    );
    assert_eq!(Config::parse(&without).unwrap(), sample());

    let mut wss = sample();
    wss.gateway.clients_wss_port = Some(9001);
    wss.gateway.clients_wss_certificate_file = Some("/etc/gw/fullchain.pem".into());
    wss.gateway.clients_wss_private_key_file = Some("/etc/gw/privkey.pem".into());
    let text = wss.render();
    assert!(text.contains("\nclients_wss_port = 9001\n"), "{text}");
    assert_eq!(Config::parse(&text).unwrap(), wss);
    wss.validate().unwrap();
    assert_eq!(
        wss.wss_files().unwrap().unwrap().private_key,
        Path::new("/etc/gw/privkey.pem")
    );
}

#[test]
fn a_wss_port_needs_both_files_and_files_need_the_port() {
    let with_port = |cert: Option<&str>, key: Option<&str>| {
        let mut config = sample();
        config.gateway.clients_wss_port = Some(9001);
        config.gateway.clients_wss_certificate_file = cert.map(Into::into);
        config.gateway.clients_wss_private_key_file = key.map(Into::into);
        config
    };
    let err = with_port(None, None).validate().unwrap_err().to_string();
    assert!(err.contains("clients_wss_certificate_file"), "{err}");
    let err = with_port(Some("/c.pem"), None)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("clients_wss_private_key_file"), "{err}");

    let mut files_only = with_port(Some("/c.pem"), Some("/k.pem"));
    files_only.gateway.clients_wss_port = None;
    let err = files_only.validate().unwrap_err().to_string();
    assert!(err.contains("clients_wss_port"), "{err}");

    let mut clash = with_port(Some("/c.pem"), Some("/k.pem"));
    clash.gateway.clients_wss_port = Some(clash.gateway.clients_port);
    let err = clash.validate().unwrap_err().to_string();
    assert!(err.contains("must differ"), "{err}");
}

#[test]
fn render_keeps_the_1_0_2_key_order() {
    let text = sample().render();
    let order = [
        "version =",
        "id =",
        "disabled_credentials_mode =",
        "listening_address =",
        "private_identity_key_file =",
        "public_identity_key_file =",
        "private_sphinx_key_file =",
        "public_sphinx_key_file =",
        "announce_address =",
        "mix_port =",
        "clients_port =",
        "enabled_statistics =",
        "statistics_service_url =",
        "validator_api_urls =",
        "validator_nymd_urls =",
        "cosmos_mnemonic =",
        "wallet_address =",
        "nym_root_directory =",
        "persistent_storage =",
        "[logging]",
        "[debug]",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| {
            text.find(&format!("\n{k}"))
                .unwrap_or_else(|| panic!("{k} missing"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("statistics_service_url = 'https://mainnet-stats.nymte.ch:8090/'"));
}

#[test]
fn a_1_0_1_config_loads_with_defaults_for_the_new_keys() {
    let text = include_str!("../../tests/fixtures/config-1.0.1.toml").replace("@ROOT@", "/r");
    let config = Config::parse(&text).unwrap();
    assert_eq!(config.gateway.version, "1.0.1");
    assert!(!config.gateway.enabled_statistics);
    assert_eq!(
        config.gateway.statistics_service_url,
        "https://mainnet-stats.nymte.ch:8090/"
    );
    assert_eq!(
        config.gateway.eth_endpoint.as_deref(),
        Some("https://rinkeby.infura.io/v3/00000000000000000000000000000000")
    );
    assert_eq!(config.debug, Tuning::default());
    config.validate().unwrap();
}

#[test]
fn unknown_keys_and_bad_types_are_errors_naming_the_key() {
    let text = sample().render();
    let typo = text.replace("mix_port =", "mixport =");
    assert!(Config::parse(&typo).unwrap_err().contains("mixport"));
    let bad_type = text.replace("clients_port = 9000", "clients_port = 'nine'");
    assert!(Config::parse(&bad_type)
        .unwrap_err()
        .contains("clients_port"));
    let bad_ip = text.replace(
        "listening_address = '62.240.134.46'",
        "listening_address = 'nowhere'",
    );
    assert!(Config::parse(&bad_ip)
        .unwrap_err()
        .contains("listening_address"));
}

#[test]
fn invalid_values_are_rejected_by_validate() {
    let mut config = sample();
    config.gateway.clients_port = config.gateway.mix_port;
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid {
            key: "clients_port",
            ..
        })
    ));
    let mut config = sample();
    config.debug.free_bandwidth_per_claim = -1;
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid {
            key: "free_bandwidth_per_claim",
            ..
        })
    ));
    let mut config = sample();
    config.gateway.statistics_service_url = "not a url".into();
    assert!(config.validate().is_err());
}

#[test]
fn a_zero_limit_is_refused_when_the_file_is_read_naming_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let text = sample().render();
    let zero = text.replace(
        "maximum_client_connections = 8192",
        "maximum_client_connections = 0",
    );
    assert_ne!(zero, text);
    std::fs::write(&path, zero).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    let message = err.to_string();
    for part in [
        "config.toml",
        "is not a valid gateway configuration",
        "maximum_client_connections = 0",
        "invalid value: integer `0`, expected a nonzero usize",
    ] {
        assert!(message.contains(part), "{part:?} missing from:\n{message}");
    }
    // Every other count that must not be 0 is refused the same way.
    for key in [
        "store_cache_kib",
        "replay_filter_initial_capacity",
        "store_max_batch",
        "zk_nym_key_max_answer_size",
        "zk_nym_signer_max_answer_size",
        "key_rotation_max_answer_size",
        "noise_directory_max_answer_size",
        "noise_directory_max_pages",
        "validator_check_max_answer_size",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap();
        let message = Config::parse(&text.replace(line, &format!("{key} = 0"))).unwrap_err();
        assert!(message.contains(&format!("{key} = 0")), "{message}");
        assert!(message.contains("expected a nonzero"), "{message}");
    }
}

#[test]
fn answer_limits_have_defaults_and_are_read_from_the_file() {
    type Read = fn(&Tuning) -> usize;
    let keys: [(&str, usize, Read); 6] = [
        ("zk_nym_key_max_answer_size", 262_144, |d| {
            d.zk_nym_key_max_answer_size.get()
        }),
        ("zk_nym_signer_max_answer_size", 65_536, |d| {
            d.zk_nym_signer_max_answer_size.get()
        }),
        ("key_rotation_max_answer_size", 65_536, |d| {
            d.key_rotation_max_answer_size.get()
        }),
        ("noise_directory_max_answer_size", 33_554_432, |d| {
            d.noise_directory_max_answer_size.get()
        }),
        ("noise_directory_max_pages", 64, |d| {
            d.noise_directory_max_pages.get()
        }),
        ("validator_check_max_answer_size", 10_485_760, |d| {
            d.validator_check_max_answer_size.get()
        }),
    ];
    let text = sample().render();
    let mut smaller = text.clone();
    for (n, (key, default, _)) in keys.iter().enumerate() {
        let line = format!("\n{key} = {default}\n");
        assert!(text.contains(&line), "{key} missing from:\n{text}");
        smaller = smaller.replace(&line, &format!("\n{key} = {}\n", 100 + n));
    }
    let debug = Config::parse(&smaller).unwrap().debug;
    for (n, (key, _, read)) in keys.iter().enumerate() {
        assert_eq!(read(&debug), 100 + n, "{key}");
    }
}

#[test]
fn load_reports_missing_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    assert!(matches!(
        Config::load(&path),
        Err(ConfigError::Missing { .. })
    ));
    std::fs::write(&path, "[gateway\nid = ").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(err.to_string().contains("config.toml"), "{err}");
}

#[test]
fn save_writes_owner_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/config.toml");
    sample().save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(Config::load(&path).unwrap(), sample());
}

#[test]
fn url_lists_are_split_trimmed_and_checked() {
    assert_eq!(
        parse_url_list(" https://a.example/api , http://b.example").unwrap(),
        vec![
            "https://a.example/api".to_owned(),
            "http://b.example/".to_owned()
        ]
    );
    assert!(parse_url_list("https://ok.example, not a url").is_err());
}

#[test]
fn replay_filter_keys_load_from_old_configs_and_are_checked() {
    // A config written before the filter grew carries only replay_filter_capacity: it loads,
    // keeping it as the bound, and the new keys take their defaults.
    let old = sample()
        .render()
        .lines()
        .filter(|line| {
            !line.starts_with("replay_filter_initial_capacity")
                && !line.starts_with("replay_filter_generation_lifetime")
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "replay_filter_capacity = 180000000",
            "replay_filter_capacity = 2000000",
        );
    let config = Config::parse(&old).unwrap();
    assert_eq!(config.debug.replay_filter_capacity.get(), 2_000_000);
    assert_eq!(config.debug.replay_filter_initial_capacity.get(), 500_000);
    assert_eq!(
        config.debug.replay_filter_generation_lifetime,
        std::time::Duration::from_secs(45_000)
    );
    config.validate().unwrap();
    assert!(sample()
        .render()
        .contains("replay_filter_generation_lifetime = \"12h 30m\""));

    let invalid = |change: fn(&mut Tuning), key: &str| {
        let mut config = sample();
        change(&mut config.debug);
        match config.validate() {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    };
    invalid(
        |d| d.replay_filter_generation_lifetime = std::time::Duration::ZERO,
        "replay_filter_generation_lifetime",
    );
    invalid(
        |d| d.replay_filter_capacity = NonZeroU64::MAX,
        "replay_filter_capacity",
    );
    // 2^40 packets at about 3 bytes each: more than the 1 TiB accepted.
    invalid(
        |d| d.replay_filter_capacity = NonZeroU64::new(1 << 40).unwrap(),
        "replay_filter_capacity",
    );
}

#[test]
fn the_dashboard_history_is_bounded_by_its_keys() {
    use std::time::Duration;
    let mut config = sample();
    assert_eq!(config.debug.dashboard_samples(), 450);
    config.debug.dashboard_history = Duration::from_secs(24 * 3600);
    config.debug.dashboard_sample_interval = Duration::from_secs(1);
    assert_eq!(config.debug.dashboard_samples(), 86_400);
    config.validate().unwrap();
    config.debug.dashboard_sample_interval = Duration::from_millis(100);
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid {
            key: "dashboard_history",
            ..
        })
    ));
    config.debug.dashboard_sample_interval = Duration::ZERO;
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Invalid {
            key: "dashboard_sample_interval",
            ..
        })
    ));
    // Less history than one interval still keeps the latest sample.
    config.debug.dashboard_sample_interval = Duration::from_secs(10);
    config.debug.dashboard_history = Duration::ZERO;
    assert_eq!(config.debug.dashboard_samples(), 1);
}

#[test]
fn upgrade_mode_keys_are_written_only_when_set_parse_back_and_are_checked() {
    let without = sample().render();
    assert!(!without.contains("upgrade_mode_att"), "{without}");
    let mut config = sample();
    config.gateway.upgrade_mode_attestation_url = Some(String::new());
    config.gateway.upgrade_mode_attester_public_key =
        Some("3bgffBYcfFkTTXc2npNNn9MkddFZ3H2LrPjXDmnJzrqd".into());
    let text = config.render();
    assert!(text.contains("upgrade_mode_attestation_url = ''"), "{text}");
    assert_eq!(Config::parse(&text).unwrap(), config);
    config.validate().unwrap();

    let mut bad = config.clone();
    bad.gateway.upgrade_mode_attester_public_key = Some("not a key".into());
    assert!(matches!(
        bad.validate(),
        Err(ConfigError::Invalid {
            key: "upgrade_mode_attester_public_key",
            ..
        })
    ));
    let mut bad = config;
    bad.gateway.upgrade_mode_attestation_url = Some("no url".into());
    assert!(matches!(
        bad.validate(),
        Err(ConfigError::Invalid {
            key: "upgrade_mode_attestation_url",
            ..
        })
    ));
}

#[test]
fn the_shutdown_stage_timeout_is_read_from_the_file_and_zero_is_refused() {
    let text = sample().render();
    let default = "\nshutdown_stage_timeout = \"10s\"\n";
    assert!(text.contains(default), "{text}");
    let longer =
        Config::parse(&text.replace(default, "\nshutdown_stage_timeout = \"2m\"\n")).unwrap();
    assert_eq!(
        longer.debug.shutdown_stage_timeout,
        std::time::Duration::from_secs(120)
    );
    let mut zero = sample();
    zero.debug.shutdown_stage_timeout = std::time::Duration::ZERO;
    match zero.validate() {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "shutdown_stage_timeout"),
        other => panic!("{other:?}"),
    }
}
