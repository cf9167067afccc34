//! Throttling of failed logins per client address. An attempt is counted as a
//! failure when it starts and given back when it succeeds, so concurrent guesses
//! cannot all slip in before the first of them fails.

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
    /// Starts an attempt from `client`, counted as failed until [`Self::succeeded`];
    /// `Err(seconds to wait)` when it has failed too often recently.
    pub fn begin(&self, client: IpAddr) -> Result<(), u64> {
        let mut failures = self.failures.lock().expect("throttle lock");
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        let elapsed = entry.1.elapsed();
        if elapsed >= WINDOW {
            *entry = (0, Instant::now());
        } else if entry.0 >= FAILURES_PER_WINDOW {
            return Err((WINDOW - elapsed).as_secs().max(1));
        }
        entry.0 += 1;
        Ok(())
    }

    /// Gives back the attempt of a login from `client` that succeeded.
    pub fn succeeded(&self, client: IpAddr) {
        if let Some(entry) = self
            .failures
            .lock()
            .expect("throttle lock")
            .get_mut(&client)
        {
            entry.0 = entry.0.saturating_sub(1);
        }
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
            assert_eq!(t.begin(a), Ok(()));
        }
        assert!(t.begin(a).is_err_and(|s| (1..=60).contains(&s)));
        assert_eq!(t.begin(b), Ok(()));
        t.succeeded(b);
        for _ in 0..FAILURES_PER_WINDOW {
            assert_eq!(t.begin(b), Ok(()), "a success gives its attempt back");
            t.succeeded(b);
        }
    }
}
