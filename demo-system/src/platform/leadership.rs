//! Leader election among a service's instances through the registry's sessions and locks
//! ([`crate::registry::locks`]): each instance keeps a session with a TTL and tries to take
//! the lock `service/{name}/leader` every third of it; the one holding it leads, with the
//! key's `LockIndex` as its fencing token (larger for each new leader), and only it runs
//! the service's singleton work. A leader that cannot renew in time (paused, cut off)
//! stops counting itself leader when its TTL would have run out, measured on its own
//! monotonic clock from before the renewal it last sent, so the registry never ends its
//! session before the leader has stepped down; a write it started before that and
//! finishes after carries the old token, which the resource refuses (see
//! `orders::settlement`). On shutdown the session is destroyed, and another instance takes
//! over at its next try.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::registry::{RegistryClient, RegistryClientError};

/// Whether this instance leads now, and with which token; cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    term: Arc<Mutex<Option<Term>>>,
    /// `--disable leader-election`: every instance counts itself leader, token 0.
    everyone: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Term {
    token: u64,
    until: Instant,
}

impl Leadership {
    /// Not leading until [`campaign`] wins.
    pub fn candidate() -> Self {
        Self {
            term: Arc::default(),
            everyone: false,
        }
    }

    /// Every instance leads, with token 0: what the singleton work does without election
    /// (`--disable leader-election`), and for a service with one instance in tests.
    pub fn everyone() -> Self {
        Self {
            term: Arc::default(),
            everyone: true,
        }
    }

    /// The fencing token while this instance leads; `None` otherwise.
    pub fn token(&self) -> Option<u64> {
        if self.everyone {
            return Some(0);
        }
        let term = *crate::platform::lock(&self.term);
        term.filter(|t| t.until > Instant::now()).map(|t| t.token)
    }

    /// Replaces the term; the token of the one before (lapsed or not) and of the new one.
    fn set(&self, term: Option<Term>) -> (Option<u64>, Option<u64>) {
        let mut held = crate::platform::lock(&self.term);
        let before = held.map(|t| t.token);
        *held = term;
        (before, term.map(|t| t.token))
    }
}

/// How an instance campaigns.
#[derive(Clone, Debug)]
pub struct Campaign {
    pub registry: RegistryClient,
    /// `service/{name}/leader`.
    pub key: String,
    /// This instance's name (`orders-1`): the lock's value, so anyone can see who leads.
    pub holder: String,
    /// The session's TTL: how long a silent leader keeps the lock.
    pub ttl: Duration,
}

impl Campaign {
    /// The lock key of `service`'s leader.
    pub fn key_of(service: &str) -> String {
        format!("service/{service}/leader")
    }

    /// One try: renew (or make) the session, take the lock, read the token. The term it
    /// gives lasts the TTL from before the first request. A leader whose session renews
    /// holds the lock still (only its session's end or its own release frees it), so it
    /// only renews: no write, so the store's index, which wakes every blocking reader of
    /// the registry's keys, does not move each second.
    async fn attempt(
        &self,
        session: &mut Option<Uuid>,
        held: Option<u64>,
    ) -> Result<Option<Term>, RegistryClientError> {
        let sent = Instant::now();
        let id = match *session {
            Some(id) if self.registry.session_renew(id).await? => {
                if let Some(token) = held {
                    return Ok(Some(Term {
                        token,
                        until: sent + self.ttl,
                    }));
                }
                id
            }
            _ => {
                let id = self.registry.session_create(&self.holder, self.ttl).await?;
                *session = Some(id);
                id
            }
        };
        if !self
            .registry
            .kv_acquire(&self.key, id, &self.holder)
            .await?
        {
            return Ok(None);
        }
        let entry = self.registry.kv_get(&self.key).await?;
        Ok(entry
            .filter(|e| e.session.as_deref() == Some(&id.to_string()))
            .map(|e| Term {
                token: e.lock_index,
                until: sent + self.ttl,
            }))
    }
}

/// Campaigns for `leadership` until `shutdown`, trying every third of the TTL; then gives
/// the lock up by ending the session.
pub async fn campaign(
    leadership: Leadership,
    campaign: Campaign,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut session = None;
    let every = campaign.ttl / 3;
    loop {
        let held = *crate::platform::lock(&leadership.term);
        let term = match campaign.attempt(&mut session, held.map(|t| t.token)).await {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "leader election: the registry did not answer; not leading until it does");
                None
            }
        };
        match leadership.set(term) {
            (before, Some(now)) if before != Some(now) => {
                tracing::info!(holder = %campaign.holder, token = now, "leader.elected: this instance leads");
            }
            (Some(before), None) => {
                tracing::warn!(holder = %campaign.holder, token = before, "leader.lost: this instance's term is over (another leads, or the registry cannot be reached)");
            }
            _ => {}
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    leadership.set(None);
    if let Some(id) = session
        && let Err(e) = campaign.registry.session_destroy(id).await
    {
        tracing::warn!(error = %e, "leader election: could not end the session; its TTL will");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_term_ends_on_the_leaders_own_clock_and_everyone_leads_without_election() {
        let l = Leadership::candidate();
        assert_eq!(l.token(), None);
        l.set(Some(Term {
            token: 3,
            until: Instant::now() + Duration::from_secs(3),
        }));
        assert_eq!(l.token(), Some(3));
        // Paused (SIGSTOP) past its TTL: it no longer counts itself leader, renewed or not.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(l.token(), None);
        assert_eq!(Leadership::everyone().token(), Some(0));
    }
}
