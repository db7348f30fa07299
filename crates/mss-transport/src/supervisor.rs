//! Keeps one mailbox connected (SC.MSS/CONF.08/.11).
//!
//! [`supervise`] runs a piece of work that needs an open session — a sync, an IDLE loop, a
//! submission — and decides what to do when it fails, from the error's [`Recovery`]:
//! reconnect after a back-off with jitter, present a fresh token (once at once, then with
//! back-off), or give up and tell the user. When the Pro Santé Connect session ends, the work
//! is dropped on the spot, which closes its connections (SC.MSS/CONF.10).
//!
//! Each mailbox runs its own supervisor in its own task, so one failing mailbox never stalls
//! another; [`BalStatus`] is what the user sees of it.

use crate::error::{Recovery, TransportError};
use secrecy::SecretString;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where access tokens come from: the PSC session of the user (mss-psc, adapted by the
/// caller). Mailboxes authenticated by certificate have none.
pub trait TokenSource: Send + Sync {
    /// A token that is not about to expire; refreshes first when needed.
    fn token(&self) -> impl Future<Output = Result<SecretString, TransportError>> + Send;
    /// A server refused `token`: it must never be handed out again.
    fn refused(&self, token: &SecretString) -> impl Future<Output = ()> + Send;
    /// Completes when the PSC session is over (refresh refused, logout).
    fn ended(&self) -> impl Future<Output = ()> + Send;
}

/// For mailboxes that authenticate by certificate only (BAL APP): there is never a token.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTokens;

impl TokenSource for NoTokens {
    async fn token(&self) -> Result<SecretString, TransportError> {
        Err(TransportError::Config(
            "this mailbox authenticates with its certificate, not with a token".to_owned(),
        ))
    }
    async fn refused(&self, _token: &SecretString) {}
    async fn ended(&self) {
        std::future::pending::<()>().await
    }
}

/// How long to wait between attempts.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Attempts before giving up; `None` keeps trying while the PSC session is valid.
    pub max_attempts: Option<u32>,
    /// A session that lived this long before failing counts as a success: back-off restarts.
    pub healthy_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            max_attempts: None,
            healthy_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// For one-shot commands (`mss send`, `mss sync --once`): a few quick attempts.
    pub fn once() -> Self {
        RetryPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            max_attempts: Some(4),
            healthy_after: Duration::from_secs(60),
        }
    }

    /// "Full jitter": a random delay in the upper half of the exponential step, so that many
    /// mailboxes cut at once do not reconnect in step.
    fn delay(&self, failures: u32) -> Duration {
        let step = self
            .first_delay
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = step / 2;
        let jitter = RandomState::new().hash_one(failures) % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter)
    }
}

/// What the user sees of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalStatus {
    /// Nothing asked of the mailbox yet.
    Idle,
    Connecting {
        attempt: u32,
    },
    Connected,
    /// Waiting before the next attempt, after `reason`.
    Waiting {
        reason: String,
        retry_in: Duration,
    },
    /// Stopped for good; `reason` says why and what to do.
    Stopped {
        reason: String,
    },
    Done,
}

/// Runs `work` until it succeeds or nothing more can be done. `work` gets the token to
/// present (`None` for certificate mailboxes) and must report a refused token as
/// [`TransportError::TokenRefused`].
///
/// `work` is an async closure so that it can borrow the caller's state (a sync position
/// that each attempt continues from).
pub async fn supervise<S, R>(
    policy: &RetryPolicy,
    tokens: Option<&S>,
    status: &watch::Sender<BalStatus>,
    mut work: impl AsyncFnMut(Option<SecretString>) -> Result<R, TransportError>,
) -> Result<R, TransportError>
where
    S: TokenSource,
{
    let mut failures = 0u32;
    let mut attempts = 0u32;
    let mut fresh_token_tried = false;
    loop {
        attempts += 1;
        status.send_replace(BalStatus::Connecting { attempt: attempts });
        let started = Instant::now();
        // A token that cannot be had now (PSC unreachable) is retried like a dropped
        // connection; a PSC session that is over stops everything.
        let (token, outcome) = match tokens {
            Some(source) => match source.token().await {
                Ok(token) => {
                    let outcome = tokio::select! {
                        outcome = work(Some(token.clone())) => outcome,
                        () = source.ended() => return stop(status, TransportError::PscSessionOver),
                    };
                    (Some(token), outcome)
                }
                Err(error) => (None, Err(error)),
            },
            None => (None, work(None).await),
        };
        let error = match outcome {
            Ok(value) => {
                status.send_replace(BalStatus::Done);
                return Ok(value);
            }
            Err(error) => error,
        };
        if started.elapsed() >= policy.healthy_after {
            failures = 0;
            fresh_token_tried = false;
        }
        failures += 1;
        let wait = match error.recovery() {
            Recovery::GiveUp => return stop(status, error),
            Recovery::RefreshToken => {
                if let (Some(source), Some(token)) = (tokens, token.as_ref()) {
                    source.refused(token).await;
                }
                // A refused token usually only needs a fresh one: try that at once, but
                // only once in a row, so a server that refuses everything is not hammered.
                if fresh_token_tried {
                    policy.delay(failures)
                } else {
                    fresh_token_tried = true;
                    Duration::ZERO
                }
            }
            Recovery::Reconnect => policy.delay(failures),
        };
        if policy.max_attempts.is_some_and(|max| attempts >= max) {
            return stop(status, error);
        }
        status.send_replace(BalStatus::Waiting {
            reason: error.to_string(),
            retry_in: wait,
        });
        match tokens {
            Some(source) => tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = source.ended() => return stop(status, TransportError::PscSessionOver),
            },
            None => tokio::time::sleep(wait).await,
        }
    }
}

fn stop<R>(status: &watch::Sender<BalStatus>, error: TransportError) -> Result<R, TransportError> {
    status.send_replace(BalStatus::Stopped {
        reason: error.to_string(),
    });
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Hands out token-1, token-2, … ; a refused token is replaced on the next call.
    #[derive(Default)]
    struct Counter {
        issued: AtomicU32,
        current: Mutex<Option<String>>,
        refused: Mutex<Vec<String>>,
        over: watch::Sender<bool>,
    }

    impl TokenSource for Counter {
        async fn token(&self) -> Result<SecretString, TransportError> {
            if *self.over.borrow() {
                return Err(TransportError::PscSessionOver);
            }
            let mut current = self.current.lock().unwrap();
            let token = current.get_or_insert_with(|| {
                format!("token-{}", self.issued.fetch_add(1, Ordering::SeqCst) + 1)
            });
            Ok(SecretString::from(token.clone()))
        }
        async fn refused(&self, token: &SecretString) {
            self.refused
                .lock()
                .unwrap()
                .push(token.expose_secret().to_owned());
            *self.current.lock().unwrap() = None;
        }
        async fn ended(&self) {
            let mut over = self.over.subscribe();
            let _ = over.wait_for(|over| *over).await;
        }
    }

    fn network() -> TransportError {
        TransportError::Network {
            host: "imap.test".into(),
            detail: "connection reset".into(),
        }
    }

    fn refused() -> TransportError {
        TransportError::TokenRefused {
            host: "imap.test".into(),
            detail: "invalid_token".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn network_failures_back_off_then_recover() {
        let (status, _) = watch::channel(BalStatus::Done);
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = supervise(&RetryPolicy::default(), None::<&Counter>, &status, |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 3 { Err(network()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        // Waits of at least 0.5 s, 1 s and 2 s (the lower half of each jittered step).
        assert!(
            started.elapsed() >= Duration::from_millis(3500),
            "{:?}",
            started.elapsed()
        );
        assert!(started.elapsed() <= Duration::from_secs(7));
        assert_eq!(*status.borrow(), BalStatus::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_never_presented_again() {
        let (status, _) = watch::channel(BalStatus::Done);
        let source = Counter::default();
        let presented = Mutex::new(Vec::new());
        let result = supervise(
            &RetryPolicy::default(),
            Some(&source),
            &status,
            |token: Option<SecretString>| {
                let token = token
                    .expect("a PSC mailbox gets a token")
                    .expose_secret()
                    .to_owned();
                presented.lock().unwrap().push(token.clone());
                async move {
                    if token == "token-3" {
                        Ok(())
                    } else {
                        Err(refused())
                    }
                }
            },
        )
        .await;
        assert!(result.is_ok());
        let presented = presented.into_inner().unwrap();
        assert_eq!(presented, ["token-1", "token-2", "token-3"]);
        assert_eq!(*source.refused.lock().unwrap(), ["token-1", "token-2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_refusal_retries_at_once() {
        let (status, _) = watch::channel(BalStatus::Done);
        let source = Counter::default();
        let started = Instant::now();
        let policy = RetryPolicy {
            max_attempts: Some(3),
            ..RetryPolicy::default()
        };
        let result: Result<(), _> = supervise(&policy, Some(&source), &status, |_| async {
            Err(refused())
        })
        .await;
        assert!(matches!(result, Err(TransportError::TokenRefused { .. })));
        // First retry immediate, second after a back-off step.
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(matches!(*status.borrow(), BalStatus::Stopped { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn tls_failures_are_not_retried() {
        let (status, _) = watch::channel(BalStatus::Done);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> =
            supervise(&RetryPolicy::default(), None::<&Counter>, &status, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(TransportError::Tls {
                        host: "imap.test".into(),
                        failure: crate::TlsFailure::Untrusted,
                    })
                }
            })
            .await;
        assert!(matches!(result, Err(TransportError::Tls { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_the_psc_session_drops_the_running_work() {
        let (status, _) = watch::channel(BalStatus::Done);
        let source = std::sync::Arc::new(Counter::default());
        let ender = source.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            ender.over.send_replace(true);
        });
        let result: Result<(), _> = supervise(
            &RetryPolicy::default(),
            Some(&*source),
            &status,
            |_| async {
                // An IDLE that would last an hour.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            },
        )
        .await;
        assert!(matches!(result, Err(TransportError::PscSessionOver)));
        match &*status.borrow() {
            BalStatus::Stopped { reason } => assert!(reason.contains("log in again")),
            other => panic!("unexpected status {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_mailbox_does_not_stall_another() {
        let failing = tokio::spawn(async {
            let (status, _) = watch::channel(BalStatus::Done);
            let _: Result<(), _> = supervise(
                &RetryPolicy::default(),
                None::<&Counter>,
                &status,
                |_| async { Err(network()) },
            )
            .await;
        });
        let healthy = tokio::spawn(async {
            let (status, _) = watch::channel(BalStatus::Done);
            supervise(
                &RetryPolicy::default(),
                None::<&Counter>,
                &status,
                |_| async { Ok(7) },
            )
            .await
        });
        let value = tokio::time::timeout(Duration::from_secs(1), healthy).await;
        assert_eq!(value.unwrap().unwrap().unwrap(), 7);
        failing.abort();
    }

    /// A PSC that cannot be reached for its first `failures` refreshes.
    struct Unreachable {
        failures: AtomicU32,
    }

    impl TokenSource for Unreachable {
        async fn token(&self) -> Result<SecretString, TransportError> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(TransportError::Network {
                    host: "psc.test".into(),
                    detail: "timed out".into(),
                });
            }
            Ok(SecretString::from("fresh"))
        }
        async fn refused(&self, _token: &SecretString) {}
        async fn ended(&self) {
            std::future::pending::<()>().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_psc_is_waited_for_not_given_up_on() {
        let (status, _) = watch::channel(BalStatus::Done);
        let source = Unreachable {
            failures: AtomicU32::new(2),
        };
        let calls = AtomicU32::new(0);
        let result = supervise(
            &RetryPolicy::default(),
            Some(&source),
            &status,
            |token: Option<SecretString>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok(token.unwrap().expose_secret().to_owned()) }
            },
        )
        .await;
        assert_eq!(result.unwrap(), "fresh");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "work runs only with a token"
        );
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for failures in 1..40 {
            let delay = policy.delay(failures);
            assert!(delay <= policy.max_delay, "{failures}: {delay:?}");
            let step = policy.first_delay * 2u32.pow((failures - 1).min(16));
            assert!(delay >= step.min(policy.max_delay) / 2);
        }
    }
}
