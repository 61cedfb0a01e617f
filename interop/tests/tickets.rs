//! Paying clients, offline: `nym-localnet --tickets-required` runs our gateway with
//! `enforce_zk_nyms = true` and an e-cash authority, and the real
//! `nym_gateway_client::GatewayClient` (2.0.0) in credentials mode gets its tickets from that
//! authority through a `BandwidthTicketProvider`.
//!
//! 1. Without a ticket (disabled credentials mode, `claimFreeTestnetBandwidth`) the client is
//!    refused; nym's own test credential (a ticket spent at another gateway) is refused too.
//! 2. With a ticket it gets the bandwidth of a mixnet-entry ticket, sends a packet through the
//!    gateway's mix port and receives it back, with its SURB-ack.
//! 3. The same ticket from another client is refused as spent.
//! 4. nym-api's client (nym-http-api-client with nym-validator-client's API) reads the
//!    authority's master key (which verifies the tickets) and asks the signers' endpoint to
//!    verify a ticket: accepted once, then refused as a replay.
//! 5. A whole ticketbook from the authority, imported as nym's clients import one
//!    (nym-credentials decodes it into an in-memory credential store), is spent by nym's own
//!    `BandwidthController`: bandwidth, a packet both ways, one ticket of 50 used.

use gateway_interop::client::{Bandwidth, ConnectedClient};
use gateway_interop::keys::GatewayKeys;
use gateway_interop::localnet::Localnet;
use gateway_interop::packets::{
    expected_final_hop, gateway_node, route_provider, Framing, PacketFactory, TestClient,
};
use gateway_interop::tickets::{
    fetch_ticket, imported_ticketbook, IssuedTicketBookInfo, LocalnetTickets, Supply,
};
use gateway_interop::within;
use nym_bandwidth_controller::mock::MockBandwidthController;
use nym_bandwidth_controller::BandwidthController;
use nym_credential_storage::storage::Storage as _;
use nym_credentials_interface::TicketType;
use nym_sphinx::params::PacketSize;
use nym_topology::RoutingNode;
use nym_validator_client::ecash::models::{
    EcashTicketVerificationRejection, VerifyEcashTicketBody,
};
use nym_validator_client::nym_api::NymApiClientExt;
use nym_validator_client::nyxd::AccountId;
use std::time::Duration;
use time::OffsetDateTime;

const TEST_LIMIT: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(30);
/// What one mixnet-entry ticket buys (nym's network defaults).
const ENTRY_TICKET_BANDWIDTH: i64 = 200_000_000;
/// The local authority's DKG epoch.
const EPOCH: u64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_pays_with_tickets_from_the_local_authority() -> anyhow::Result<()> {
    within(TEST_LIMIT, async {
        let net = Localnet::start(&["--tickets-required"]).await?;
        let result = scenario(&net).await;
        net.finish(result).await
    })
    .await
}

async fn scenario(net: &Localnet) -> anyhow::Result<()> {
    let keys = net.gateway.keys()?;
    let ws = net.gateway.ws_url();
    let gateway = gateway_node(
        &keys,
        net.gateway.mix_address,
        net.gateway.clients_address.port(),
    );

    // 1. no ticket, no bandwidth
    let free = TestClient::new(keys.identity);
    let refused = ConnectedClient::connect(&ws, keys.identity, &free, None).await;
    let error = format!("{:#}", refused.err().expect("a free claim must be refused"));
    anyhow::ensure!(
        error.contains("only accepting coconut credentials"),
        "the free claim failed for another reason: {error}"
    );
    let stranger = TestClient::new(keys.identity);
    let foreign = ConnectedClient::connect_with(
        &ws,
        keys.identity,
        &stranger,
        None,
        Bandwidth::Tickets(Box::new(MockBandwidthController::default())),
    )
    .await;
    let error = format!(
        "{:#}",
        foreign.err().expect("a foreign ticket must be refused")
    );
    anyhow::ensure!(
        error.contains("payinfo's public key does not match provider's"),
        "the foreign ticket failed for another reason: {error}"
    );

    // 2. a ticket from the local authority
    let tickets = LocalnetTickets::new(net.api, "alice", Supply::Fresh);
    let spent = tickets.received.clone();
    let me = TestClient::new(keys.identity);
    let mut client = ConnectedClient::connect_with(
        &ws,
        keys.identity,
        &me,
        None,
        Bandwidth::Tickets(Box::new(tickets)),
    )
    .await?;
    let first = spent
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the client asked for no ticket"))?;
    anyhow::ensure!(spent.lock().expect("lock").len() == 1, "one ticket spent");
    anyhow::ensure!(first.epoch_id == EPOCH && first.tickets_left == 49);
    anyhow::ensure!(
        client.client.remaining_bandwidth() == ENTRY_TICKET_BANDWIDTH,
        "bandwidth after one ticket: {}",
        client.client.remaining_bandwidth()
    );

    echo(&mut client, &me, &gateway, &keys).await?;
    client.close().await?;

    // 3. alice's ticket once more, from another client
    let replayed = LocalnetTickets::new(net.api, "mallory", Supply::Replay);
    replayed.received.lock().expect("lock").push(first.clone());
    let mallory = TestClient::new(keys.identity);
    let again = ConnectedClient::connect_with(
        &ws,
        keys.identity,
        &mallory,
        None,
        Bandwidth::Tickets(Box::new(replayed)),
    )
    .await;
    let error = format!("{:#}", again.err().expect("a spent ticket must be refused"));
    anyhow::ensure!(
        error.contains("already been spent before at this gateway"),
        "the spent ticket failed for another reason: {error}"
    );

    // 4. nym-api and the signers, through nym's own API client
    let api = nym_http_api_client::Client::new_url(net.api_url(), Some(WAIT))?;
    let key = api.master_verification_key(Some(EPOCH)).await?.key;
    anyhow::ensure!(
        first.credential.verify(&key).is_ok(),
        "the served master key does not verify the authority's tickets"
    );
    anyhow::ensure!(
        api.master_verification_key(None).await?.key == key,
        "the current epoch's key differs"
    );
    anyhow::ensure!(
        api.master_verification_key(Some(EPOCH + 1)).await.is_err(),
        "a key for an epoch that never was"
    );
    let fresh = fetch_ticket(
        net.api,
        "signer-check",
        TicketType::V1MixnetEntry,
        &keys.identity,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let body = VerifyEcashTicketBody {
        credential: fresh.credential,
        gateway_cosmos_addr: AccountId::new("n", &[1; 20])
            .map_err(|e| anyhow::anyhow!("account id: {e}"))?,
    };
    let verdict = api.verify_ecash_ticket(&body).await?;
    anyhow::ensure!(verdict.verified.is_ok(), "the signer refused: {verdict:?}");
    let verdict = api.verify_ecash_ticket(&body).await?;
    anyhow::ensure!(
        matches!(
            verdict.verified,
            Err(EcashTicketVerificationRejection::ReplayedTicket)
        ),
        "the signer accepted a ticket twice: {verdict:?}"
    );

    // 5. nym's own bandwidth controller, spending an imported ticketbook
    let (storage, book) = imported_ticketbook(net.api, TicketType::V1MixnetEntry).await?;
    let today = OffsetDateTime::now_utc().date();
    anyhow::ensure!(
        book == IssuedTicketBookInfo {
            epoch_id: EPOCH,
            ticket_type: TicketType::V1MixnetEntry,
            expiration_date: today + time::Duration::days(6),
            spent_tickets: 0,
            key_epoch: EPOCH,
            coin_index_signatures: 50,
            expiration_date_signatures: 7,
        },
        "the imported ticketbook: {book:?}"
    );
    let carol = TestClient::new(keys.identity);
    let controller = BandwidthController::new(storage.clone());
    let mut client = ConnectedClient::connect_with(
        &ws,
        keys.identity,
        &carol,
        None,
        Bandwidth::Tickets(Box::new(controller)),
    )
    .await?;
    anyhow::ensure!(
        client.client.remaining_bandwidth() == ENTRY_TICKET_BANDWIDTH,
        "bandwidth after the controller's ticket: {}",
        client.client.remaining_bandwidth()
    );
    echo(&mut client, &carol, &gateway, &keys).await?;
    client.close().await?;
    let stored: Vec<(u32, u32)> = storage
        .get_ticketbooks_info()
        .await?
        .iter()
        .map(|book| (book.used_tickets, book.total_tickets))
        .collect();
    anyhow::ensure!(
        stored == [(1, 50)],
        "the credential store after one spend (used, total): {stored:?}"
    );
    Ok(())
}

/// A packet to ourselves through the gateway's mix port, pushed back with its SURB-ack.
async fn echo(
    client: &mut ConnectedClient,
    me: &TestClient,
    gateway: &RoutingNode,
    keys: &GatewayKeys,
) -> anyhow::Result<()> {
    let mut own = PacketFactory::new(me, route_provider(std::slice::from_ref(gateway)));
    let text = b"paid for with a zk-nym ticket".to_vec();
    let packet = own.prepare_single(&me.recipient(), &text, PacketSize::RegularPacket)?;
    let expected = expected_final_hop(&packet.frame(Framing::V7), keys)?;
    client.send(packet.mix_packet()).await?;
    let pushed = client.messages(1, WAIT).await?;
    anyhow::ensure!(
        pushed[0] == expected.message,
        "the pushed message differs from the final-hop message"
    );
    anyhow::ensure!(
        me.reassembler().push(&pushed[0])? == Some(text),
        "the pushed message does not decrypt to what was sent"
    );
    let acks = client.acks(1, WAIT).await?;
    anyhow::ensure!(
        me.acked_fragment(&acks[0])? == packet.fragment_id,
        "the pushed ack does not acknowledge the fragment we sent"
    );
    Ok(())
}
