//! nym-sdk clients for the end-to-end tests: connecting one to the local network, and sending
//! and receiving messages that are checked byte for byte.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nym_sdk::mixnet::{
    IncludedSurbs, MixnetClient, MixnetClientBuilder, MixnetMessageSender, Recipient, StoragePaths,
};
use nym_sdk::{DebugConfig, NymNetworkDetails, ValidatorDetails};

use crate::Localnet;

/// Waiting for a batch of messages.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(180);

/// A client with on-disk storage in `dir`, knowing only the nym-api address; defaults otherwise
/// (mix hops, cover traffic, SURB-acks all on) but for `debug`.
///
/// nym-sdk 1.21.6 reads `nym_api_urls` for the topology and key-rotation info but looks up
/// gateways for its first registration through the validator endpoints' `api_url` only, so the
/// address goes in both places (no nyxd is contacted with credentials off, the default).
pub async fn connect(
    localnet: &Localnet,
    dir: &std::path::Path,
    debug: DebugConfig,
) -> anyhow::Result<MixnetClient> {
    let api = localnet.api_url();
    let network = NymNetworkDetails::new_empty()
        .with_nym_api_urls(vec![url::Url::parse(api)?])
        .with_validator_endpoint(ValidatorDetails::new(api, Some(api), None));
    let client = MixnetClientBuilder::new_with_default_storage(StoragePaths::new_from_dir(dir)?)
        .await?
        .network_details(network)
        .debug_config(debug)
        .build()?
        .connect_to_mixnet()
        .await?;
    Ok(client)
}

/// Distinct messages of the given sizes, each starting with a label.
pub fn messages(label: &str, sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut message = format!("{label} #{i} ({size} bytes)|").into_bytes();
            let mut x = (size as u32).wrapping_mul(2_654_435_761) ^ i as u32;
            while message.len() < size {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                message.push(x as u8);
            }
            message.truncate(size);
            message
        })
        .collect()
}

pub async fn send_all(
    from: &MixnetClient,
    to: Recipient,
    messages: &[Vec<u8>],
) -> anyhow::Result<()> {
    for message in messages {
        from.send_message(to, message, IncludedSurbs::none())
            .await
            .context("sending")?;
    }
    Ok(())
}

/// Receives until exactly `expected` (in any order) has arrived; anything else is an error.
pub async fn receive_exactly(
    client: &mut MixnetClient,
    expected: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut missing: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for message in expected {
        *missing.entry(message.clone()).or_default() += 1;
    }
    let deadline = tokio::time::Instant::now() + RECEIVE_TIMEOUT;
    while !missing.is_empty() {
        let batch = tokio::time::timeout_at(deadline, client.wait_for_messages())
            .await
            .with_context(|| {
                format!(
                    "{} of {} messages did not arrive within {RECEIVE_TIMEOUT:?}",
                    missing.values().sum::<usize>(),
                    expected.len()
                )
            })?
            .context("the client stopped")?;
        for received in batch {
            let Some(count) = missing.get_mut(&received.message) else {
                bail!(
                    "unexpected message of {} bytes: {:?}",
                    received.message.len(),
                    String::from_utf8_lossy(&received.message[..received.message.len().min(40)])
                );
            };
            *count -= 1;
            if *count == 0 {
                missing.remove(&received.message);
            }
        }
    }
    Ok(())
}

/// Messages of each of `sizes` from `alice` to `bob` and back, each arriving exactly once.
pub async fn exchange(
    alice: &mut MixnetClient,
    bob: &mut MixnetClient,
    when: &str,
    sizes: &[usize],
) -> anyhow::Result<()> {
    let to_bob = messages(&format!("alice->bob {when}"), sizes);
    let to_alice = messages(&format!("bob->alice {when}"), sizes);
    send_all(alice, *bob.nym_address(), &to_bob).await?;
    send_all(bob, *alice.nym_address(), &to_alice).await?;
    receive_exactly(bob, &to_bob)
        .await
        .with_context(|| format!("bob receives {when}"))?;
    receive_exactly(alice, &to_alice)
        .await
        .with_context(|| format!("alice receives {when}"))?;
    eprintln!("both directions delivered {when}");
    Ok(())
}

/// Waits (up to a minute) until the clients hold an ack for every real packet they sent (no
/// message asks for reply SURBs, so each real packet is a fragment with its own SURB-ack);
/// returns both counts.
pub async fn wait_for_every_ack() -> (f64, f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent = crate::client_statistic("real_packets_sent");
        let acks = crate::client_statistic("real_acks_received");
        if acks >= sent || tokio::time::Instant::now() >= deadline {
            return (sent, acks);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
