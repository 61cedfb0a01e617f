//! Connections per source address: one host (or one IPv6 /64, what one subscriber is usually
//! given) may hold at most `max` connections on a port, so a single peer cannot take every
//! slot of the global connection limit. Loopback is not counted unless configured: a local
//! TLS proxy in front of the client port, the load generator and the local mixnet all connect
//! from it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The open connections of each source address on one port.
#[derive(Debug, Clone)]
pub struct AddressLimit {
    max: usize,
    include_loopback: bool,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; the count drops when this does.
#[derive(Debug)]
pub struct AddressSlot {
    limit: AddressLimit,
    /// `None` for an address that is not counted.
    key: Option<IpAddr>,
}

impl AddressLimit {
    /// At most `max` connections per address; loopback counted only if `include_loopback`.
    pub fn new(max: usize, include_loopback: bool) -> Self {
        Self {
            max,
            include_loopback,
            open: Arc::default(),
        }
    }

    /// No limit (tests that build a node's parts by hand).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, false)
    }

    /// A slot for a connection from `ip`, or `None` if that address holds `max` already. The
    /// map holds only addresses with a connection open, so it is bounded by the port's global
    /// connection limit.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        if ip.is_loopback() && !self.include_loopback {
            return Some(AddressSlot {
                limit: self.clone(),
                key: None,
            });
        }
        let key = group(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            limit: self.clone(),
            key: Some(key),
        })
    }

    /// Connections counted for `ip`'s group now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&group(ip.to_canonical())).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            return;
        };
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// An IPv4 address stands for itself; an IPv6 address for its /64.
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_share_and_a_slot_frees_on_drop() {
        let limit = AddressLimit::new(2, false);
        let a = limit.try_acquire(ip("198.51.100.1")).unwrap();
        let _b = limit.try_acquire(ip("198.51.100.1")).unwrap();
        assert!(limit.try_acquire(ip("198.51.100.1")).is_none());
        // Another address is not affected.
        assert!(limit.try_acquire(ip("198.51.100.2")).is_some());
        // The same host as IPv4-mapped IPv6 is the same host.
        assert!(limit.try_acquire(ip("::ffff:198.51.100.1")).is_none());
        drop(a);
        assert_eq!(limit.open_from(ip("198.51.100.1")), 1);
        assert!(limit.try_acquire(ip("198.51.100.1")).is_some());
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let limit = AddressLimit::new(1, false);
        let _slot = limit.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(limit.try_acquire(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(limit.try_acquire(ip("2001:db8:1:3::1")).is_some());
    }

    #[test]
    fn loopback_is_counted_only_when_configured() {
        let free = AddressLimit::new(1, false);
        let slots: Vec<_> = (0..5).map(|_| free.try_acquire(ip("127.0.0.1"))).collect();
        assert!(slots.iter().all(Option::is_some));
        assert_eq!(free.open_from(ip("127.0.0.1")), 0);

        let counted = AddressLimit::new(1, true);
        let _slot = counted.try_acquire(ip("::1")).unwrap();
        assert!(counted.try_acquire(ip("::1")).is_none());
    }

    #[test]
    fn the_map_forgets_addresses_without_connections() {
        let limit = AddressLimit::new(3, false);
        for n in 0..100u8 {
            let _slot = limit.try_acquire(IpAddr::from([203, 0, 113, n])).unwrap();
        }
        assert!(limit.open.lock().unwrap().is_empty());
    }
}
