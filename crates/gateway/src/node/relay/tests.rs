//! The delay queue on its own: order, capacity, the cap, refusals and stopping. Time is paused,
//! and packets go to a recorder, never to a socket.

use std::net::SocketAddr;

use gateway_protocol::packet_size::PacketSize;

use super::*;
use crate::node::metrics::MixDrop;

/// Records what would have gone to egress, with the (paused) time it left.
#[derive(Clone, Default)]
struct Recorder {
    sent: Arc<Mutex<Vec<(Instant, MixPacket)>>>,
}

impl Recorder {
    fn forward(&self) -> Forward {
        let sent = self.sent.clone();
        Arc::new(move |packet: &MixPacket| {
            sent.lock().unwrap().push((Instant::now(), packet.clone()));
            Ok(())
        })
    }

    fn markers(&self) -> Vec<u8> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.packet[0])
            .collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.sent.lock().unwrap().iter().map(|(t, _)| *t).collect()
    }
}

fn relay(capacity: usize, maximum_delay: Duration, forward: Forward) -> (Relay, Metrics) {
    let metrics = Metrics::new();
    let config = RelayConfig {
        maximum_delay,
        queue_capacity: capacity,
    };
    (Relay::new(config, forward, metrics.clone()), metrics)
}

/// A regular-size forward hop whose bytes all equal `marker` (the relay never looks inside).
fn hop(marker: u8, delay: Duration) -> ForwardHop {
    ForwardHop {
        next_hop: SocketAddr::from(([192, 0, 2, 1], 1789)),
        delay,
        packet: vec![marker; PacketSize::Regular.size()],
    }
}

fn dropped(metrics: &Metrics, reason: MixDrop) -> u64 {
    metrics.mix_packets_dropped.get_or_create(&reason).get()
}

#[tokio::test(start_paused = true)]
async fn packets_leave_in_deadline_order_and_ties_in_arrival_order() {
    let recorder = Recorder::default();
    let (relay, metrics) = relay(16, Duration::from_secs(10), recorder.forward());
    let task = tokio::spawn(relay.clone().run());
    let start = Instant::now();
    let ms = Duration::from_millis;
    for (marker, delay) in [(1, ms(30)), (2, ms(10)), (3, ms(20)), (4, ms(10))] {
        let accepted = relay
            .accept(hop(marker, delay), KeyRotation::Unknown, start)
            .unwrap();
        assert_eq!(accepted, Accepted::Delayed(delay));
    }
    assert_eq!(relay.waiting(), 4);
    assert_eq!(metrics.relay_queue_depth.get(), 4);

    tokio::time::sleep(ms(15)).await;
    assert_eq!(recorder.markers(), [2, 4], "only the 10 ms packets are due");
    tokio::time::sleep(ms(20)).await;
    assert_eq!(recorder.markers(), [2, 4, 3, 1]);
    let offsets: Vec<Duration> = recorder.times().iter().map(|t| *t - start).collect();
    assert_eq!(
        offsets,
        [ms(10), ms(10), ms(20), ms(30)],
        "each left when due"
    );
    assert_eq!(metrics.relay_packets_forwarded.get(), 4);
    assert_eq!(metrics.relay_queue_depth.get(), 0);

    relay.stop();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_earlier_packet_arriving_later_is_not_held_behind_the_queue_head() {
    let recorder = Recorder::default();
    let (relay, _) = relay(16, Duration::from_secs(10), recorder.forward());
    let task = tokio::spawn(relay.clone().run());
    let now = Instant::now();
    relay
        .accept(hop(1, Duration::from_secs(5)), KeyRotation::Unknown, now)
        .unwrap();
    // Let the timer task go to sleep until the 5 s deadline.
    tokio::time::sleep(Duration::from_millis(1)).await;
    relay
        .accept(
            hop(2, Duration::from_millis(10)),
            KeyRotation::Unknown,
            Instant::now(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(recorder.markers(), [2]);
    relay.stop();
    task.await.unwrap();
}

#[test]
fn no_delay_goes_straight_to_egress_with_the_frame_key_rotation() {
    let recorder = Recorder::default();
    let (relay, metrics) = relay(1, Duration::from_secs(10), recorder.forward());
    // A current-thread runtime only for `Instant::now()`; no timer task is needed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let accepted = relay
            .accept(hop(7, Duration::ZERO), KeyRotation::Odd, Instant::now())
            .unwrap();
        assert_eq!(accepted, Accepted::Forwarded);
    });
    let sent = recorder.sent.lock().unwrap();
    let (_, packet) = &sent[0];
    assert_eq!(packet.next_hop, SocketAddr::from(([192, 0, 2, 1], 1789)));
    assert_eq!(packet.key_rotation, KeyRotation::Odd);
    assert_eq!(packet.packet_size, PacketSize::Regular);
    assert_eq!(metrics.relay_packets_forwarded.get(), 1);
    assert_eq!(relay.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delay_above_the_maximum_is_capped_and_counted() {
    let recorder = Recorder::default();
    let cap = Duration::from_millis(200);
    let (relay, metrics) = relay(4, cap, recorder.forward());
    let task = tokio::spawn(relay.clone().run());
    let start = Instant::now();
    let accepted = relay
        .accept(
            hop(1, Duration::from_secs(3600)),
            KeyRotation::Unknown,
            start,
        )
        .unwrap();
    assert_eq!(accepted, Accepted::Delayed(cap));
    assert_eq!(metrics.relay_delays_capped.get(), 1);
    // A delay exactly at the cap is not "capped".
    relay
        .accept(hop(2, cap), KeyRotation::Unknown, start)
        .unwrap();
    assert_eq!(metrics.relay_delays_capped.get(), 1);
    tokio::time::sleep(cap + Duration::from_millis(1)).await;
    assert_eq!(recorder.markers(), [1, 2]);
    assert!(recorder.times().iter().all(|t| *t - start == cap));
    relay.stop();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts() {
    let recorder = Recorder::default();
    let (relay, metrics) = relay(2, Duration::from_secs(10), recorder.forward());
    let now = Instant::now();
    let delay = Duration::from_millis(50);
    relay
        .accept(hop(1, delay), KeyRotation::Unknown, now)
        .unwrap();
    relay
        .accept(hop(2, delay), KeyRotation::Unknown, now)
        .unwrap();
    assert_eq!(
        relay.accept(hop(3, delay), KeyRotation::Unknown, now),
        Err(RelayError::QueueFull)
    );
    assert_eq!(dropped(&metrics, MixDrop::RelayQueueFull), 1);
    assert_eq!(relay.waiting(), 2, "the refused packet took no room");
    // A packet without delay never needs room in the queue.
    assert_eq!(
        relay.accept(hop(4, Duration::ZERO), KeyRotation::Unknown, now),
        Ok(Accepted::Forwarded)
    );
    let task = tokio::spawn(relay.clone().run());
    tokio::time::sleep(delay * 2).await;
    assert_eq!(recorder.markers(), [4, 1, 2]);
    relay.stop();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_egress_refusal_is_a_counted_drop() {
    let refuse: Forward = Arc::new(|_: &MixPacket| Err(EgressError::QueueFull));
    let (relay, metrics) = relay(4, Duration::from_secs(10), refuse);
    let task = tokio::spawn(relay.clone().run());
    let now = Instant::now();
    assert_eq!(
        relay.accept(hop(1, Duration::ZERO), KeyRotation::Unknown, now),
        Err(RelayError::Egress(EgressError::QueueFull))
    );
    relay
        .accept(hop(2, Duration::from_millis(5)), KeyRotation::Unknown, now)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(dropped(&metrics, MixDrop::RelayEgressRefused), 2);
    assert_eq!(metrics.relay_packets_forwarded.get(), 0);
    assert_eq!(metrics.relay_queue_depth.get(), 0);
    relay.stop();
    task.await.unwrap();
}

#[test]
fn a_packet_of_no_sphinx_size_is_dropped() {
    let recorder = Recorder::default();
    let (relay, metrics) = relay(4, Duration::from_secs(10), recorder.forward());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut bad = hop(1, Duration::ZERO);
    bad.packet.pop();
    let result = rt.block_on(async { relay.accept(bad, KeyRotation::Unknown, Instant::now()) });
    assert_eq!(result, Err(RelayError::InvalidPacket));
    assert_eq!(dropped(&metrics, MixDrop::RelayInvalidPacket), 1);
    assert!(recorder.markers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stopping_forwards_what_waits_and_later_packets_go_at_once() {
    let recorder = Recorder::default();
    let (relay, metrics) = relay(4, Duration::from_secs(10), recorder.forward());
    let task = tokio::spawn(relay.clone().run());
    let start = Instant::now();
    relay
        .accept(hop(1, Duration::from_secs(8)), KeyRotation::Unknown, start)
        .unwrap();
    relay
        .accept(hop(2, Duration::from_secs(4)), KeyRotation::Unknown, start)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    relay.stop();
    task.await.unwrap();
    let mut markers = recorder.markers();
    markers.sort_unstable();
    assert_eq!(markers, [1, 2], "nothing waiting is lost at shutdown");
    assert!(recorder
        .times()
        .iter()
        .all(|t| *t - start < Duration::from_secs(1)));
    assert_eq!(metrics.relay_queue_depth.get(), 0);
    assert_eq!(
        relay.accept(hop(3, Duration::from_secs(5)), KeyRotation::Unknown, start),
        Ok(Accepted::Forwarded)
    );
    assert_eq!(recorder.markers().len(), 3);
}
