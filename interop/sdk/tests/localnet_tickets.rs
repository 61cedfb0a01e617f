//! A nym-sdk 1.21.6 client in credentials mode pays for its bandwidth, fully offline:
//! `nym-localnet --tickets-required` runs our gateway with `enforce_zk_nyms = true`, and the
//! client imports a ticketbook from the local e-cash authority
//! (`POST /localnet/v1/ecash/ticketbook`) the way nym's clients import one: nym-credentials
//! decodes it, the SDK's `BandwidthImporter` stores it with its master key and signatures in the
//! client's on-disk credential store. The client then connects (its bandwidth controller spends
//! a ticket; a free claim would be refused) and sends messages to itself through the three
//! relays. The same client without the ticketbook cannot connect.

use std::time::Duration;

use anyhow::{ensure, Context as _};
use gateway_interop_sdk::clients::{messages, receive_exactly, send_all};
use gateway_interop_sdk::{http_post, Localnet};
use nym_credentials::ecash::bandwidth::serialiser::VersionedSerialise as _;
use nym_credentials::ImportableTicketBook;
use nym_sdk::mixnet::{
    DisconnectedMixnetClient, MixnetClientBuilder, OnDiskPersistent, StoragePaths,
};
use nym_sdk::{DebugConfig, NymNetworkDetails, ValidatorDetails};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credentials_mode_sdk_client_pays_with_an_imported_ticketbook() -> anyhow::Result<()> {
    let localnet = Localnet::start_with(&["--tickets-required".into()]).await?;
    let result = gateway_interop_sdk::within(TEST_TIMEOUT, scenario(&localnet)).await;
    localnet.finish(result).await
}

async fn scenario(localnet: &Localnet) -> anyhow::Result<()> {
    let answer = http_post(
        localnet.api_address()?,
        "/localnet/v1/ecash/ticketbook",
        r#"{"ticket_type": "v1-mixnet-entry"}"#,
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    let encoded = answer["ticketbook"].as_str().context("no ticketbook")?;
    let importable = ImportableTicketBook::try_unpack(&bs58::decode(encoded).into_vec()?, None)
        .context("not nym's ImportableTicketBook")?;
    let decoded = importable.try_unpack_full()?;

    // Without a ticketbook: nothing to pay with, and the gateway grants nothing for free.
    let broke = tempfile::Builder::new().prefix("sdk-broke-").tempdir()?;
    let refused = tokio::time::timeout(
        Duration::from_secs(120),
        credentials_mode_client(localnet, broke.path())
            .await?
            .connect_to_mixnet(),
    )
    .await
    .context("a client without tickets neither connected nor failed")?;
    let Err(refusal) = refused else {
        anyhow::bail!("a credentials-mode client without tickets connected");
    };
    let refusal = format!("{refusal:#}");
    ensure!(
        refusal.contains("no more bandwidth credentials"),
        "the client without tickets failed for another reason: {refusal}"
    );

    let storage = tempfile::Builder::new().prefix("sdk-paying-").tempdir()?;
    let client = credentials_mode_client(localnet, storage.path()).await?;
    let importer = client.begin_bandwidth_import();
    importer
        .import_master_verification_key(
            decoded
                .master_verification_key
                .as_ref()
                .context("no master key")?,
        )
        .await?;
    importer
        .import_coin_index_signatures(
            decoded
                .coin_index_signatures
                .as_ref()
                .context("no coin index signatures")?,
        )
        .await?;
    importer
        .import_expiration_date_signatures(
            decoded
                .expiration_date_signatures
                .as_ref()
                .context("no expiration date signatures")?,
        )
        .await?;
    importer.import_ticketbook(&decoded.ticketbook).await?;

    let mut client = client
        .connect_to_mixnet()
        .await
        .context("the paying client connects")?;
    let me = *client.nym_address();
    ensure!(
        me.gateway().to_base58_string() == localnet.gateway().identity_key,
        "the client chose a gateway that is not ours: {me}"
    );
    let sent = messages("paid", &[1, 1_500, 30_000]);
    send_all(&client, me, &sent).await?;
    receive_exactly(&mut client, &sent)
        .await
        .context("the paying client receives its messages")?;
    client.disconnect().await;
    Ok(())
}

/// A credentials-mode client with on-disk storage in `dir`. Credentials mode builds a chain
/// client (never contacted here), which needs the chain's denominations; the nym-api address is
/// all else the client knows.
async fn credentials_mode_client(
    localnet: &Localnet,
    dir: &std::path::Path,
) -> anyhow::Result<DisconnectedMixnetClient<OnDiskPersistent>> {
    let api = localnet.api_url();
    let network = NymNetworkDetails::new_empty()
        .with_chain_details(NymNetworkDetails::new_mainnet().chain_details)
        .with_nym_api_urls(vec![url::Url::parse(api)?])
        .with_validator_endpoint(ValidatorDetails::new(api, Some(api), None));
    let mut debug = DebugConfig::default();
    debug.acknowledgements.ack_wait_addition = Duration::from_secs(30);
    Ok(
        MixnetClientBuilder::new_with_default_storage(StoragePaths::new_from_dir(dir)?)
            .await?
            .network_details(network)
            .debug_config(debug)
            .enable_credentials_mode()
            .build()?,
    )
}
