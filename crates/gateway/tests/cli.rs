//! The operator CLI, run as the real binary in a temporary HOME (issue: the seed's commands must
//! work as written).

mod util;

use std::fs;
use std::path::Path;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use util::{assert_contains_all, assert_exit, Gateway, OutputText, MAINNET_WALLET};

/// `init` with exactly these `--id`, `--host` and `--wallet-address` (no port flags).
fn init_args<'a>(id: &'a str, host: &'a str, wallet: &'a str) -> [&'a str; 7] {
    [
        "init",
        "--id",
        id,
        "--host",
        host,
        "--wallet-address",
        wallet,
    ]
}

/// The contents of the four key files in `data`.
fn key_files(data: &Path) -> Vec<Vec<u8>> {
    [
        "private_identity.pem",
        "private_sphinx.pem",
        "public_identity.pem",
        "public_sphinx.pem",
    ]
    .iter()
    .map(|f| fs::read(data.join(f)).unwrap())
    .collect()
}

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
    assert_contains_all(
        &out.stdout_text(),
        &[
            "Initialising gateway supergateway...",
            "Saved identity and mixnet sphinx keypairs",
            "Gateway configuration completed.",
        ],
    );

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

    assert_contains_all(
        &fs::read_to_string(gw.config_path()).unwrap(),
        &[
            "version = '1.0.2'",
            "id = 'supergateway'",
            &format!("wallet_address = '{MAINNET_WALLET}'"),
            &format!("mix_port = {}", gw.mix_port),
            &format!("clients_port = {}", gw.clients_port),
            "enabled_statistics = false",
        ],
    );
}

#[test]
fn node_details_signature_verifies_and_matches_sign_address() {
    let gw = Gateway::new("signer");
    assert!(gw.init(&[]).status.success());
    let details = gw.cmd_stdout(&["node-details", "--id", "signer"]);
    let identity = util::field(&details, "Identity Key: ");
    let owner_signature = util::field(&details, "Owner Signature: ");
    verify_bs58_signature(&identity, MAINNET_WALLET, &owner_signature);
    assert!(
        details.contains("Host: 127.0.0.1 (bind address: 127.0.0.1)"),
        "{details}"
    );
    assert!(details.contains("Version: 1.0.2"));
    assert!(details.contains("Data store is at: \""));

    let stdout = gw.cmd_stdout(&["sign", "--id", "signer", "--address", MAINNET_WALLET]);
    let expected =
        format!("The base58-encoded signature on '{MAINNET_WALLET}' is: {owner_signature}");
    assert!(stdout.contains(&expected), "{stdout}");

    let text = "hello \"gateway\"";
    let stdout = gw.cmd_stdout(&["sign", "--id", "signer", "--text", text]);
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

/// `testdata/nym-node-bonding/`: nym-node 1.31.0's key, a wallet-shaped contract message and
/// what nym-node printed for them (see its README).
fn nym_node_vector(file: &str) -> Vec<u8> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/nym-node-bonding/"
    );
    fs::read(format!("{dir}{file}")).unwrap()
}

fn vector_text(file: &str) -> String {
    String::from_utf8(nym_node_vector(file)).unwrap()
}

#[test]
fn sign_contract_msg_and_bonding_information_print_what_nym_node_prints() {
    let gw = Gateway::new("vector");
    assert!(gw
        .init(&["--announce-host", "203.0.113.7"])
        .status
        .success());
    // The same identity key nym-node had (ed25519 signatures are deterministic).
    let data = gw.dir().join("data");
    fs::write(
        data.join("private_identity.pem"),
        nym_node_vector("ed25519_identity"),
    )
    .unwrap();
    fs::write(
        data.join("public_identity.pem"),
        nym_node_vector("ed25519_identity.pub"),
    )
    .unwrap();
    let msg = vector_text("contract-msg.bs58");

    let out = gw.cmd(&["sign", "--id", "vector", "--contract-msg", &msg]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let stdout = out.stdout_text();
    assert!(stdout.ends_with(&vector_text("sign.stdout")), "{stdout}");
    assert_eq!(out.stderr_text(), vector_text("sign.stderr"));

    let out = gw.cmd(&[
        "sign",
        "--id",
        "vector",
        "--contract-msg",
        &msg,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.stdout_text(), vector_text("sign-json.stdout"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signature = json["encoded_signature"].as_str().unwrap();

    let text = gw.cmd_stdout(&["bonding-information", "--id", "vector"]);
    let nym_node = vector_text("bonding-information.stdout");
    let first_two_lines: String = nym_node.split_inclusive('\n').take(2).collect();
    assert!(text.contains(&first_two_lines), "{text}");
    assert!(
        text.ends_with("\nSoftware: nym-gateway 1.0.2\n\n"),
        "{text}"
    );
    let identity = util::field(&text, "Identity Key: ");

    // The signature is over exactly the decoded bytes.
    let decoded = bs58::decode(msg.trim()).into_vec().unwrap();
    assert_eq!(decoded, nym_node_vector("contract-msg.json"));
    let key: [u8; 32] = bs58::decode(&identity)
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    let sig: [u8; 64] = bs58::decode(signature)
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify(&decoded, &Signature::from_bytes(&sig))
        .expect("signature verifies over the decoded bytes");

    // nym-node's JSON fields, with the same values, plus ours.
    let out = gw.cmd(&["bonding-information", "--id", "vector", "--output", "json"]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let ours: serde_json::Value = serde_json::from_slice(&out.stdout).expect("pure JSON");
    let theirs: serde_json::Value =
        serde_json::from_slice(&nym_node_vector("bonding-information-json.stdout")).unwrap();
    assert_eq!(ours["host"], theirs["host"]);
    assert_eq!(ours["identity_key"], theirs["identity_key"]);
    assert_eq!(ours["binary_name"], "nym-gateway");
    assert_eq!(ours["build_version"], "1.0.2");
    assert_eq!(ours["custom_http_port"], gw.http_port);
}

#[test]
fn sign_contract_msg_refuses_bad_base58_and_non_json() {
    let gw = Gateway::new("refuse");
    assert!(gw.init(&[]).status.success());
    let not_json = bs58::encode(b"bond me please").into_string();
    for (msg, reason) in [
        ("0OIl", "the contract message is not valid base58"),
        (
            not_json.as_str(),
            "the decoded contract message is not JSON",
        ),
    ] {
        for output in ["text", "json"] {
            let out = gw.cmd(&[
                "sign",
                "--id",
                "refuse",
                "--contract-msg",
                msg,
                "-o",
                output,
            ]);
            assert_exit(&out, 1, reason);
            assert_exit(
                &out,
                1,
                "it seems you have incorrectly copied the message to sign",
            );
            let stdout = out.stdout_text();
            assert!(!stdout.contains("signature"), "nothing signed: {stdout}");
        }
    }
    // Only with --contract-msg, and never together with --text or --address.
    assert_exit(
        &gw.cmd(&["sign", "--id", "refuse", "--text", "hi", "--output", "json"]),
        2,
        "cannot be used with",
    );
    assert_exit(
        &gw.cmd(&[
            "sign",
            "--id",
            "refuse",
            "--text",
            "hi",
            "--contract-msg",
            &not_json,
        ]),
        2,
        "cannot be used with",
    );
}

#[test]
fn bonding_information_of_a_local_gateway_asks_for_the_host() {
    let gw = Gateway::new("localbond");
    assert!(gw.init(&[]).status.success());
    let text = gw.cmd_stdout(&["bonding-information", "--id", "localbond"]);
    let details = gw.cmd_stdout(&["node-details", "--id", "localbond"]);
    assert_eq!(
        util::field(&text, "Identity Key: "),
        util::field(&details, "Identity Key: ")
    );
    assert!(
        text.contains("\nHost: NO KNOWN VALID HOSTNAMES - YOU NEED TO FILL IT MANUALLY\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nCustom HTTP Port: {}\n", gw.http_port)),
        "{text}"
    );
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
    let before = key_files(&data);

    // Re-run init the way the seed says, re-supplying only the required flags and one change.
    let required = init_args("reinit", "127.0.0.1", MAINNET_WALLET);
    let out = gw.cmd(&[&required[..], &["--mix-port", "1800"]].concat());
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(out.stdout_text().contains("Gateway \"reinit\" was already initialised before! Config information will be overwritten (but keys will be kept)!"));
    assert!(!out
        .stdout_text()
        .contains("Saved identity and mixnet sphinx keypairs"));
    assert_eq!(before, key_files(&data), "key files are byte-identical");
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
    let out = gw.cmd(&init_args(
        "bad",
        "127.0.0.1",
        "nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9",
    ));
    assert_eq!(out.status.code(), Some(1));
    assert_contains_all(
        &out.stdout_text(),
        &[
            "\x1b[31mError: wallet address type is wrong, your bech32 address prefix should be n, not nymt",
            "Exiting...",
        ],
    );
    // Garbage address.
    let out = gw.cmd(&init_args("bad", "127.0.0.1", "garbage"));
    assert_eq!(out.status.code(), Some(1));
    assert_contains_all(
        &out.stdout_text(),
        &["Error: wallet address decoding failed: "],
    );
    // Invalid mnemonic: refused, and never echoed.
    let out = gw.init_with(&["--mnemonic", "correct horse battery staple"]);
    assert_exit(&out, 1, "Provided mnemonic is invalid");
    assert!(!out.stderr_text().contains("horse") && !out.stdout_text().contains("horse"));
    // A host that is not an IP address.
    assert_exit(
        &gw.cmd(&init_args("bad", "my.host.example", MAINNET_WALLET)),
        1,
        "failed to change listening address. the provided value (my.host.example) was invalid",
    );
    // A boolean that is not true/false is a usage error.
    assert_exit(
        &gw.init_with(&["--enabled-statistics", "yes"]),
        2,
        "--enabled-statistics <ENABLED_STATISTICS>",
    );
    // Missing --id is a usage error.
    let out = gw.cmd(&[
        "init",
        "--host",
        "127.0.0.1",
        "--wallet-address",
        MAINNET_WALLET,
    ]);
    assert_exit(&out, 2, "--id <ID>");
    // A bad validator URL and a bad port.
    assert_exit(
        &gw.init_with(&["--validator-apis", "https://ok.example, :not a url"]),
        1,
        "one of the provided validator api urls is invalid",
    );
    let out = gw.init_with(&["--mix-port", "70000"]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing was created by the failed attempts.
    assert!(!gw.config_path().exists());
}

#[test]
fn a_sandbox_env_file_accepts_sandbox_addresses() {
    let gw = Gateway::new("sandboxgw");
    let env_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../envs/sandbox.env");
    let init = init_args(
        "sandboxgw",
        "127.0.0.1",
        "nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9",
    );
    let out = gw.cmd(&[&["--config-env-file", env_file][..], &init[..]].concat());
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
    assert_exit(&out, 1, "Invalid path to environment configuration file");
}

#[test]
fn corrupt_or_missing_config_is_a_failure_naming_the_file() {
    let gw = Gateway::new("broken");
    assert_exit(
        &gw.cmd(&["run", "--id", "broken"]),
        1,
        "Failed to load config for broken. Are you sure you have run `init` before?",
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
    let http = format!("127.0.0.1:{}", util::free_port());
    let args = ["run", "--id", "supergateway", "--http-api-address", &http];
    gw.run_and_stop(&args, "TERM");
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
    assert_exit(
        &gw.cmd(&["upgrade", "--id", "old"]),
        1,
        "Cannot perform upgrade from 0.10.1 to 1.0.2. Your version is too old",
    );
    // run refuses a semver-incompatible config too.
    assert_exit(
        &gw.cmd(&["run", "--id", "old"]),
        1,
        "please run the `upgrade` command",
    );
}

#[test]
fn run_stops_cleanly_on_sigint_and_sigterm() {
    for signal in ["INT", "TERM"] {
        let gw = Gateway::new("runner");
        assert!(gw.init(&[]).status.success());
        let output = gw.run_and_stop(&["run", "--id", "runner"], signal);
        assert_contains_all(
            &output.stdout_text(),
            &[
                "Starting gateway runner...",
                "##### NOTE #####", // the local bind note
                "You will need to provide the following:",
                "Identity Key: ",
            ],
        );
        assert_contains_all(
            &output.stderr_text(),
            &[
                "Starting nym gateway!",
                "Starting mix packet forwarder...",
                "Starting mix socket listener...",
                "Starting client [web]socket listener...",
                "Finished nym gateway startup procedure",
            ],
        );
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
    let output = gw.run_and_stop(
        &[
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
        ],
        "TERM",
    );
    assert!(gw.config_path().exists());
    let stdout = output.stdout_text();
    assert!(stdout.contains("Owner Signature: none"), "{stdout}");
}

#[test]
fn help_lists_every_subcommand_and_flag() {
    let gw = Gateway::new("help");
    let help = gw.cmd_stdout(&["--help"]);
    assert_contains_all(
        &help,
        &[
            "nym-gateway 1.0.2",
            "Nymtech",
            "Implementation of the Nym Mixnet Gateway",
            "--config-env-file <CONFIG_ENV_FILE>",
            "Path pointing to an env file that configures the gateway",
            "-h, --help",
            "-V, --version",
            "bonding-information",
            "Show what today's wallet asks for to bond this gateway (as a Nym node)",
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
        ],
    );
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
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
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
                (
                    "--contract-msg <CONTRACT_MSG>",
                    "Signs the base58 contract message today's wallet shows when bonding",
                ),
                (
                    "-o, --output <OUTPUT>",
                    "Output format of the --contract-msg signature",
                ),
            ],
        ),
        (
            "bonding-information",
            vec![
                ("--id <ID>", "The id of the gateway you want to bond"),
                (
                    "-o, --output <OUTPUT>",
                    "Output format of the bonding information",
                ),
            ],
        ),
        (
            "upgrade",
            vec![("--id <ID>", "Id of the nym-gateway we want to upgrade")],
        ),
    ];
    for (sub, expected) in cases {
        let help = gw.cmd_stdout(&[sub, "--help"]);
        for (flag, description) in expected {
            assert_contains_all(&help, &[flag, description]);
        }
    }
    assert!(gw
        .cmd_stdout(&["init", "--help"])
        .contains("nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9"));
}

#[test]
fn version_prints_the_build_information_block() {
    let gw = Gateway::new("version");
    assert_contains_all(
        &gw.cmd_stdout(&["--version"]),
        &[
            "Build Timestamp:    ",
            "Build Version:      1.0.2",
            "Commit SHA:         ",
            "Commit Date:        ",
            "Commit Branch:      ",
            "rustc Version:      ",
            "rustc Channel:      ",
            "cargo Profile:      ",
        ],
    );
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
    assert_exit(
        &gw.cmd(&["sign", "--id", "x"]),
        2,
        "--address <ADDRESS>|--text <TEXT>|--contract-msg <CONTRACT_MSG>",
    );
    assert_exit(
        &gw.cmd(&["sign", "--id", "x", "--address", "a", "--text", "b"]),
        2,
        "cannot be used with",
    );
}
