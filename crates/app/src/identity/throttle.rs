//! Throttling of failed logins per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins one address may make per window before it must wait.
const FAILURES_PER_WINDOW: u32 = 10;
/// The window.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; past that, the oldest windows are dropped.
const MAX_ADDRESSES: usize = 65_536;

/// Counts failed logins per address.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Some(seconds to wait)` when `client` has failed too often recently.
    pub fn check(&self, client: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().expect("throttle lock");
        let (count, since) = failures.get(&client)?;
        let elapsed = since.elapsed();
        (*count >= FAILURES_PER_WINDOW && elapsed < WINDOW)
            .then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts a failed login from `client`.
    pub fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_back_after_too_many_failures() {
        let t = LoginThrottle::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..FAILURES_PER_WINDOW {
            assert_eq!(t.check(a), None);
            t.failed(a);
        }
        assert!(t.check(a).is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(t.check(b), None);
    }
}
