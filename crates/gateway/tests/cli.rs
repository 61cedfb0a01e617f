//! The operator CLI, run as the real binary in a temporary HOME (issue: the seed's commands must
//! work as written).

mod util;

use std::fs;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use util::{Gateway, OutputText, MAINNET_WALLET};

fn verify_bs58_signature(identity_bs58: &str, message: &str, signature_bs58: &str) {
    let key: [u8; 32] = bs58::decode(identity_bs58)
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    let sig: [u8; 64] = bs58::decode(signature_bs58)
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify(message.as_bytes(), &Signature::from_bytes(&sig))
        .expect("signature verifies");
}

#[test]
fn init_creates_config_keys_and_store_with_owner_only_modes() {
    let gw = Gateway::new("supergateway");
    let out = gw.init(&[]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let stdout = out.stdout_text();
    assert!(stdout.contains("Initialising gateway supergateway..."));
    assert!(stdout.contains("Saved identity and mixnet sphinx keypairs"));
    assert!(stdout.contains("Gateway configuration completed."));

    let data = gw.dir().join("data");
    let expected = [
        ("private_identity.pem", "ED25519 PRIVATE KEY"),
        ("public_identity.pem", "ED25519 PUBLIC KEY"),
        ("private_sphinx.pem", "X25519 PRIVATE KEY"),
        ("public_sphinx.pem", "X25519 PUBLIC KEY"),
    ];
    for (file, tag) in expected {
        let text = fs::read_to_string(data.join(file)).unwrap();
        assert!(
            text.starts_with(&format!("-----BEGIN {tag}-----\r\n")),
            "{file}: {text:?}"
        );
        assert!(
            text.ends_with(&format!("-----END {tag}-----\r\n")),
            "{file}: {text:?}"
        );
        assert_eq!(util::mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(util::mode(&gw.config_path()), 0o600);
    assert!(
        data.join("db.sqlite").exists(),
        "the store is created by init"
    );

    let config = fs::read_to_string(gw.config_path()).unwrap();
    assert!(config.contains("version = '1.0.2'"));
    assert!(config.contains("id = 'supergateway'"));
    assert!(config.contains(&format!("wallet_address = '{MAINNET_WALLET}'")));
    assert!(config.contains(&format!("mix_port = {}", gw.mix_port)));
    assert!(config.contains(&format!("clients_port = {}", gw.clients_port)));
    assert!(config.contains("enabled_statistics = false"));
}

#[test]
fn node_details_signature_verifies_and_matches_sign_address() {
    let gw = Gateway::new("signer");
    assert!(gw.init(&[]).status.success());
    let out = gw.cmd(&["node-details", "--id", "signer"]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let details = out.stdout_text();
    let identity = util::field(&details, "Identity Key: ");
    let owner_signature = util::field(&details, "Owner Signature: ");
    verify_bs58_signature(&identity, MAINNET_WALLET, &owner_signature);
    assert!(
        details.contains("Host: 127.0.0.1 (bind address: 127.0.0.1)"),
        "{details}"
    );
    assert!(details.contains("Version: 1.0.2"));
    assert!(details.contains("Data store is at: \""));

    let out = gw.cmd(&["sign", "--id", "signer", "--address", MAINNET_WALLET]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let expected =
        format!("The base58-encoded signature on '{MAINNET_WALLET}' is: {owner_signature}");
    assert!(
        out.stdout_text().contains(&expected),
        "{}",
        out.stdout_text()
    );

    let text = "hello \"gateway\"";
    let out = gw.cmd(&["sign", "--id", "signer", "--text", text]);
    assert!(out.status.success());
    let stdout = out.stdout_text();
    assert!(stdout.contains("Signing the text \"hello \\\"gateway\\\"\" using your mixnode's Ed25519 identity key..."), "{stdout}");
    let sig = util::field(
        &stdout,
        &format!("The base58-encoded signature on '{text}' is: "),
    );
    verify_bs58_signature(&identity, text, &sig);
}

#[test]
fn node_details_json_has_the_same_facts() {
    let gw = Gateway::new("jsonout");
    assert!(gw.init(&[]).status.success());
    let out = gw.cmd(&["node-details", "--id", "jsonout", "--output", "json"]);
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("pure JSON, no banner");
    let text = gw.cmd(&["node-details", "--id", "jsonout"]).stdout_text();
    assert_eq!(
        util::field(&text, "Identity Key: "),
        json["identity_key"].as_str().unwrap()
    );
    assert_eq!(json["mix_port"], gw.mix_port);
}

#[test]
fn re_init_keeps_keys_and_customised_values() {
    let gw = Gateway::new("reinit");
    assert!(gw
        .init(&[
            "--clients-port",
            "9100",
            "--announce-host",
            "gw.example.org"
        ])
        .status
        .success());
    let data = gw.dir().join("data");
    let before: Vec<Vec<u8>> = [
        "private_identity.pem",
        "private_sphinx.pem",
        "public_identity.pem",
        "public_sphinx.pem",
    ]
    .iter()
    .map(|f| fs::read(data.join(f)).unwrap())
    .collect();

    // Re-run init the way the seed says, re-supplying only the required flags and one change.
    let out = gw.cmd(&[
        "init",
        "--id",
        "reinit",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        MAINNET_WALLET,
        "--mix-port",
        "1800",
    ]);
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(out.stdout_text().contains("Gateway \"reinit\" was already initialised before! Config information will be overwritten (but keys will be kept)!"));
    assert!(!out
        .stdout_text()
        .contains("Saved identity and mixnet sphinx keypairs"));
    let after: Vec<Vec<u8>> = [
        "private_identity.pem",
        "private_sphinx.pem",
        "public_identity.pem",
        "public_sphinx.pem",
    ]
    .iter()
    .map(|f| fs::read(data.join(f)).unwrap())
    .collect();
    assert_eq!(before, after, "key files are byte-identical");
    let config = fs::read_to_string(gw.config_path()).unwrap();
    assert!(
        config.contains("clients_port = 9100"),
        "customised value kept:\n{config}"
    );
    assert!(
        config.contains("announce_address = 'gw.example.org'"),
        "{config}"
    );
    assert!(
        config.contains("mix_port = 1800"),
        "re-supplied value applied"
    );
}

#[test]
fn bad_values_give_the_documented_errors() {
    let gw = Gateway::new("bad");
    // A sandbox address on mainnet defaults.
    let out = gw.cmd(&[
        "init",
        "--id",
        "bad",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        "nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout_text().contains("\x1b[31mError: wallet address type is wrong, your bech32 address prefix should be n, not nymt"), "{}", out.stdout_text());
    assert!(out.stdout_text().contains("Exiting..."));
    // Garbage address.
    let out = gw.cmd(&[
        "init",
        "--id",
        "bad",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        "garbage",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout_text()
            .contains("Error: wallet address decoding failed: "),
        "{}",
        out.stdout_text()
    );
    // Invalid mnemonic: refused, and never echoed.
    let out = gw.init_with(&["--mnemonic", "correct horse battery staple"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text().contains("Provided mnemonic is invalid"),
        "{}",
        out.stderr_text()
    );
    assert!(!out.stderr_text().contains("horse") && !out.stdout_text().contains("horse"));
    // A host that is not an IP address.
    let out = gw.cmd(&[
        "init",
        "--id",
        "bad",
        "--host",
        "my.host.example",
        "--wallet-address",
        MAINNET_WALLET,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text().contains(
            "failed to change listening address. the provided value (my.host.example) was invalid"
        ),
        "{}",
        out.stderr_text()
    );
    // A boolean that is not true/false is a usage error.
    let out = gw.init_with(&["--enabled-statistics", "yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text()
            .contains("--enabled-statistics <ENABLED_STATISTICS>"),
        "{}",
        out.stderr_text()
    );
    // Missing --id is a usage error.
    let out = gw.cmd(&[
        "init",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        MAINNET_WALLET,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr_text().contains("--id <ID>"));
    // A bad validator URL and a bad port.
    let out = gw.init_with(&["--validator-apis", "https://ok.example, :not a url"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .stderr_text()
        .contains("one of the provided validator api urls is invalid"));
    let out = gw.init_with(&["--mix-port", "70000"]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing was created by the failed attempts.
    assert!(!gw.config_path().exists());
}

#[test]
fn a_sandbox_env_file_accepts_sandbox_addresses() {
    let gw = Gateway::new("sandboxgw");
    let env_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../envs/sandbox.env");
    let out = gw.cmd(&[
        "--config-env-file",
        env_file,
        "init",
        "--id",
        "sandboxgw",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        "nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        out.stdout_text(),
        out.stderr_text()
    );
    let out = gw.cmd(&[
        "--config-env-file",
        "/nonexistent.env",
        "node-details",
        "--id",
        "sandboxgw",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .stderr_text()
        .contains("Invalid path to environment configuration file"));
}

#[test]
fn corrupt_or_missing_config_is_a_failure_naming_the_file() {
    let gw = Gateway::new("broken");
    let out = gw.cmd(&["run", "--id", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("Failed to load config for broken. Are you sure you have run `init` before?"),
        "{}",
        out.stderr_text()
    );

    assert!(gw.init(&[]).status.success());
    fs::write(
        gw.config_path(),
        "[gateway]\nid = 'broken'\nmix_port = 'not a port'\n",
    )
    .unwrap();
    for args in [
        &["run", "--id", "broken"][..],
        &["node-details", "--id", "broken"],
        &["sign", "--id", "broken", "--text", "x"],
    ] {
        let out = gw.cmd(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = out.stderr_text();
        assert!(stderr.contains("config.toml"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn upgrade_turns_a_1_0_1_config_into_a_current_one() {
    let gw = Gateway::new("supergateway");
    // Keys from a real init, config replaced by a 1.0.1 file.
    assert!(gw.init(&[]).status.success());
    let keys_before = fs::read(gw.dir().join("data/private_identity.pem")).unwrap();
    let fixture = include_str!("fixtures/config-1.0.1.toml")
        .replace("@ROOT@", gw.root().to_str().unwrap())
        .replace(
            "mix_port = 1789",
            &format!("mix_port = {}", util::free_port()),
        )
        .replace(
            "clients_port = 9000",
            &format!("clients_port = {}", util::free_port()),
        );
    fs::write(gw.config_path(), &fixture).unwrap();

    let out = gw.cmd(&["upgrade", "--id", "supergateway"]);
    assert!(
        out.status.success(),
        "{}{}",
        out.stdout_text(),
        out.stderr_text()
    );
    assert!(out
        .stdout_text()
        .contains("Upgrade from 1.0.1 to 1.0.2 was successful!"));
    let config = fs::read_to_string(gw.config_path()).unwrap();
    assert!(config.contains("version = '1.0.2'"));
    assert!(config.contains("enabled_statistics = false"));
    assert!(config.contains("statistics_service_url = 'https://mainnet-stats.nymte.ch:8090/'"));
    assert_eq!(
        fs::read_to_string(gw.dir().join("config/config.toml.1.0.1.bak")).unwrap(),
        fixture
    );
    assert_eq!(
        fs::read(gw.dir().join("data/private_identity.pem")).unwrap(),
        keys_before
    );

    let out = gw.cmd(&["upgrade", "--id", "supergateway"]);
    assert!(out
        .stdout_text()
        .contains("You're using the most recent version!"));

    // `run` accepts the upgraded config.
    let http = util::free_port();
    let mut child = gw.spawn(&[
        "run",
        "--id",
        "supergateway",
        "--http-api-address",
        &format!("127.0.0.1:{http}"),
    ]);
    child.wait_ready();
    let output = child.terminate("TERM");
    assert_eq!(output.status.code(), Some(0), "{}", output.stderr_text());
}

#[test]
fn upgrade_refuses_configs_it_cannot_migrate() {
    let gw = Gateway::new("old");
    assert!(gw.init(&[]).status.success());
    let config = fs::read_to_string(gw.config_path()).unwrap();
    fs::write(
        gw.config_path(),
        config.replace("version = '1.0.2'", "version = '0.10.1'"),
    )
    .unwrap();
    let out = gw.cmd(&["upgrade", "--id", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("Cannot perform upgrade from 0.10.1 to 1.0.2. Your version is too old"),
        "{}",
        out.stderr_text()
    );
    // run refuses a semver-incompatible config too.
    let out = gw.cmd(&["run", "--id", "old"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("please run the `upgrade` command"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn run_stops_cleanly_on_sigint_and_sigterm() {
    for signal in ["INT", "TERM"] {
        let gw = Gateway::new("runner");
        assert!(gw.init(&[]).status.success());
        let mut child = gw.spawn(&["run", "--id", "runner"]);
        child.wait_ready();
        let output = child.terminate(signal);
        assert_eq!(
            output.status.code(),
            Some(0),
            "SIG{signal}: {}",
            output.stderr_text()
        );
        let stdout = output.stdout_text();
        assert!(stdout.contains("Starting gateway runner..."));
        assert!(stdout.contains("##### NOTE #####"), "local bind note");
        assert!(stdout.contains("You will need to provide the following:"));
        assert!(stdout.contains("Identity Key: "));
        let log = output.stderr_text();
        for line in [
            "Starting nym gateway!",
            "Starting mix packet forwarder...",
            "Starting mix socket listener...",
            "Starting client [web]socket listener...",
            "Finished nym gateway startup procedure",
        ] {
            assert!(log.contains(line), "{line} missing from:\n{log}");
        }
    }
}

#[test]
fn run_init_if_missing_needs_no_wallet() {
    let gw = Gateway::new("demo");
    let (mix, clients, http) = (
        gw.mix_port.to_string(),
        gw.clients_port.to_string(),
        format!("127.0.0.1:{}", gw.http_port),
    );
    let mut child = gw.spawn(&[
        "run",
        "--id",
        "demo",
        "--init-if-missing",
        "--mix-port",
        &mix,
        "--clients-port",
        &clients,
        "--http-api-address",
        &http,
    ]);
    child.wait_ready();
    assert!(gw.config_path().exists());
    let output = child.terminate("TERM");
    assert_eq!(output.status.code(), Some(0), "{}", output.stderr_text());
    let stdout = output.stdout_text();
    assert!(stdout.contains("Owner Signature: none"), "{stdout}");
}

#[test]
fn help_lists_every_subcommand_and_flag() {
    let gw = Gateway::new("help");
    let out = gw.cmd(&["--help"]);
    assert!(out.status.success());
    let help = out.stdout_text();
    for needle in [
        "nym-gateway 1.0.2",
        "Nymtech",
        "Implementation of the Nym Mixnet Gateway",
        "--config-env-file <CONFIG_ENV_FILE>",
        "Path pointing to an env file that configures the gateway",
        "-h, --help",
        "-V, --version",
        "init",
        "Initialise the gateway",
        "node-details",
        "Show details of this gateway",
        "run",
        "Starts the gateway",
        "sign",
        "Sign text to prove ownership of this mixnode",
        "upgrade",
        "Try to upgrade the gateway",
        "help",
    ] {
        assert!(
            help.contains(needle),
            "top-level help lacks {needle:?}:\n{help}"
        );
    }
    let shared = [
        ("--announce-host <ANNOUNCE_HOST>", "The host that will be reported to the directory server"),
        ("--clients-port <CLIENTS_PORT>", "The port on which the gateway will be listening for clients gateway-requests"),
        ("--datastore <DATASTORE>", "Path to sqlite database containing all gateway persistent data"),
        ("--enabled-statistics <ENABLED_STATISTICS>", "Enable/disable gateway anonymized statistics that get sent to a statistics aggregator server"),
        ("--host <HOST>", "The custom host on which the gateway will be running for receiving sphinx packets"),
        ("--mix-port <MIX_PORT>", "The port on which the gateway will be listening for sphinx packets"),
        ("--statistics-service-url <STATISTICS_SERVICE_URL>", "URL where a statistics aggregator is running. The default value is a Nym aggregator server"),
        ("--validator-apis <VALIDATOR_APIS>", "Comma separated list of endpoints of the validators APIs"),
        ("--validators <VALIDATORS>", "Comma separated list of endpoints of the validator"),
        ("--wallet-address <WALLET_ADDRESS>", "The wallet address you will use to bond this gateway, e.g."),
        ("--mnemonic <MNEMONIC>", "Cosmos wallet mnemonic"),
    ];
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "init",
            [
                &shared[..],
                &[
                    (
                        "--id <ID>",
                        "Id of the gateway we want to create config for",
                    ),
                    (
                        "--mnemonic <MNEMONIC>",
                        "Cosmos wallet mnemonic needed for double spending protection",
                    ),
                    ("nym-gateway-init", "Initialise the gateway"),
                ],
            ]
            .concat(),
        ),
        (
            "run",
            [
                &shared[..],
                &[
                    ("--id <ID>", "Id of the gateway we want to run"),
                    ("nym-gateway-run", "Starts the gateway"),
                ],
            ]
            .concat(),
        ),
        (
            "node-details",
            vec![(
                "--id <ID>",
                "The id of the gateway you want to show details for",
            )],
        ),
        (
            "sign",
            vec![
                ("--id <ID>", "The id of the mixnode you want to sign with"),
                (
                    "--address <ADDRESS>",
                    "Signs your blockchain address with your identity key",
                ),
                (
                    "--text <TEXT>",
                    "Signs an arbitrary piece of text with your identity key",
                ),
            ],
        ),
        (
            "upgrade",
            vec![("--id <ID>", "Id of the nym-gateway we want to upgrade")],
        ),
    ];
    for (sub, expected) in cases {
        let out = gw.cmd(&[sub, "--help"]);
        assert!(out.status.success());
        let help = out.stdout_text();
        for (flag, description) in expected {
            assert!(help.contains(flag), "{sub} --help lacks {flag:?}:\n{help}");
            assert!(
                help.contains(description),
                "{sub} --help lacks {description:?}:\n{help}"
            );
        }
    }
    let out = gw.cmd(&["init", "--help"]);
    assert!(out
        .stdout_text()
        .contains("nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9"));
}

#[test]
fn version_prints_the_build_information_block() {
    let gw = Gateway::new("version");
    let out = gw.cmd(&["--version"]);
    assert!(out.status.success());
    let text = out.stdout_text();
    for label in [
        "Build Timestamp:    ",
        "Build Version:      1.0.2",
        "Commit SHA:         ",
        "Commit Date:        ",
        "Commit Branch:      ",
        "rustc Version:      ",
        "rustc Channel:      ",
        "cargo Profile:      ",
    ] {
        assert!(text.contains(label), "{label:?} missing:\n{text}");
    }
    let short = gw.cmd(&["-V"]).stdout_text();
    assert!(short.trim_end().ends_with("nym-gateway 1.0.2"), "{short}");
    assert!(!short.contains("Build Timestamp"));
}

#[test]
fn usage_errors_exit_2_and_no_subcommand_prints_help() {
    let gw = Gateway::new("usage");
    let out = gw.cmd(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr_text().contains("SUBCOMMANDS") || out.stderr_text().contains("Usage"));
    let out = gw.cmd(&["sign", "--id", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text()
            .contains("--address <ADDRESS>|--text <TEXT>"),
        "{}",
        out.stderr_text()
    );
    let out = gw.cmd(&["sign", "--id", "x", "--address", "a", "--text", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text().contains("cannot be used with"),
        "{}",
        out.stderr_text()
    );
}
