//! The resolver task: every wanted name, its schedule, and a bounded set of lookups in
//! flight. It owns all the state; cluster tasks talk to it only through messages, so a
//! lookup never runs on, or waits in, a cluster task.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::lookup::{self, ResolverSettings};
use super::state::{Answer, MIN_REFRESH, NameState, Outcome};
use crate::metrics::Metrics;

/// Lookups in flight at once. A silent resolver holds each for the lookup deadline, so
/// this bounds both the queries sent and how many names one slow server delays.
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// What cluster tasks (and the registry) tell the resolver task.
#[derive(Debug)]
pub(crate) enum Command {
    /// The configured settings; a change rebuilds the resolver and asks again at once.
    Configure(ResolverSettings),
    /// A subscriber, and where its names' addresses go.
    Join { id: u64, tx: UnboundedSender<Resolved> },
    /// Subscriber `id` needs `name` resolved.
    Want { id: u64, name: Arc<str> },
    /// Subscriber `id` no longer needs `name`.
    Unwant { id: u64, name: Arc<str> },
}

/// A name's addresses changed (empty: it has none now).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) name: Arc<str>,
    pub(crate) addrs: Arc<[IpAddr]>,
}

/// One wanted name.
#[derive(Default)]
struct Tracked {
    state: NameState,
    wanted_by: BTreeSet<u64>,
    /// When its next lookup is due; `None` while one is in flight.
    due: Option<Instant>,
}

/// The resolver as last built, or why it could not be, and when that was tried.
enum Built {
    /// Boxed: a resolver is large, and built once.
    Ready(Box<TokioResolver>),
    Failed(Instant, Arc<str>),
}

pub(crate) struct Task {
    settings: ResolverSettings,
    built: Option<Built>,
    names: HashMap<Arc<str>, Tracked>,
    /// Due lookups by time; an entry whose time is no longer its name's `due` is stale.
    schedule: BTreeSet<(Instant, Arc<str>)>,
    subscribers: HashMap<u64, UnboundedSender<Resolved>>,
    lookups: JoinSet<(Arc<str>, Answer, Answer)>,
    in_flight: HashMap<Id, Arc<str>>,
    metrics: Metrics,
}

impl Task {
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self {
            settings: ResolverSettings::default(),
            built: None,
            names: HashMap::new(),
            schedule: BTreeSet::new(),
            subscribers: HashMap::new(),
            lookups: JoinSet::new(),
            in_flight: HashMap::new(),
            metrics,
        }
    }

    /// Runs until every sender of commands is gone.
    pub(crate) async fn run(mut self, mut commands: UnboundedReceiver<Command>) {
        loop {
            self.start_due(Instant::now());
            let next = self.schedule.first().map(|(at, _)| *at).filter(|_| self.in_flight.len() < MAX_IN_FLIGHT);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some(done) = self.lookups.join_next_with_id(), if !self.lookups.is_empty() => match done {
                    Ok((id, (name, v4, v6))) => {
                        self.in_flight.remove(&id);
                        self.finish(&name, &v4, &v6);
                    }
                    Err(e) => {
                        // A lookup that panicked: ask again later rather than never.
                        if let Some(name) = self.in_flight.remove(&e.id()) {
                            self.finish(&name, &Answer::Failed(e.to_string()), &Answer::Failed(e.to_string()));
                        }
                    }
                },
                () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Configure(settings) => {
                if settings != self.settings {
                    info!(servers = ?settings.name_servers, "load-balancer hostnames: resolver changed, asking again");
                    self.settings = settings;
                    self.built = None;
                    let now = Instant::now();
                    let idle: Vec<Arc<str>> =
                        self.names.iter().filter(|(_, t)| t.due.is_some()).map(|(n, _)| n.clone()).collect();
                    for name in idle {
                        self.schedule_at(&name, now);
                    }
                }
            }
            Command::Join { id, tx } => {
                self.subscribers.insert(id, tx);
            }
            Command::Want { id, name } => self.want(id, name),
            Command::Unwant { id, name } => {
                if let Some(t) = self.names.get_mut(&name) {
                    t.wanted_by.remove(&id);
                    if t.wanted_by.is_empty() {
                        self.forget(&name);
                    }
                }
            }
        }
    }

    fn want(&mut self, id: u64, name: Arc<str>) {
        let fresh = !self.names.contains_key(&name);
        let t = self.names.entry(name.clone()).or_default();
        t.wanted_by.insert(id);
        let addrs: Arc<[IpAddr]> = t.state.addresses().into();
        if fresh {
            self.schedule_at(&name, Instant::now());
            self.metrics.lb_names(self.names.len());
        } else if !addrs.is_empty()
            && let Some(tx) = self.subscribers.get(&id)
        {
            // A newcomer (a restarted cluster task) gets what is known at once.
            let _ = tx.send(Resolved { name, addrs });
        }
    }

    fn forget(&mut self, name: &Arc<str>) {
        self.names.remove(name);
        self.metrics.lb_names(self.names.len());
    }

    fn schedule_at(&mut self, name: &Arc<str>, at: Instant) {
        if let Some(t) = self.names.get_mut(name) {
            t.due = Some(at);
            self.schedule.insert((at, name.clone()));
        }
    }

    /// Starts the lookups that are due, while slots are free.
    fn start_due(&mut self, now: Instant) {
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some((at, name)) = self.schedule.first().cloned() else { return };
            if at > now {
                return;
            }
            self.schedule.pop_first();
            match self.names.get_mut(&name) {
                Some(t) if t.due == Some(at) => t.due = None,
                _ => continue,
            }
            match self.resolver(now) {
                Ok(resolver) => {
                    let n = name.clone();
                    let handle = self.lookups.spawn(async move {
                        let (v4, v6) = lookup::lookup(&resolver, &n).await;
                        (n, v4, v6)
                    });
                    self.in_flight.insert(handle.id(), name);
                }
                Err(why) => {
                    let failed = Answer::Failed(why.to_string());
                    self.finish(&name, &failed, &failed);
                }
            }
        }
    }

    /// The resolver, built on first use and after a change; a failed build is tried again
    /// after [`MIN_REFRESH`], not at every name's lookup.
    fn resolver(&mut self, now: Instant) -> Result<TokioResolver, Arc<str>> {
        match &self.built {
            Some(Built::Ready(r)) => return Ok(TokioResolver::clone(r)),
            Some(Built::Failed(at, why)) if now.duration_since(*at) < MIN_REFRESH => return Err(why.clone()),
            _ => {}
        }
        match lookup::build(&self.settings) {
            Ok(r) => {
                self.built = Some(Built::Ready(Box::new(r.clone())));
                Ok(r)
            }
            Err(e) => {
                let why: Arc<str> = crate::causes::chain(&e).into();
                warn!(error = %why, "load-balancer hostnames cannot be resolved");
                self.built = Some(Built::Failed(now, why.clone()));
                Err(why)
            }
        }
    }

    /// Applies a lookup's answers, tells the name's users when its addresses changed, and
    /// schedules its next lookup.
    fn finish(&mut self, name: &Arc<str>, v4: &Answer, v6: &Answer) {
        let now = Instant::now();
        let subscribers = &self.subscribers;
        let Some(t) = self.names.get_mut(name) else { return };
        // Subscribers that went away (a cluster task stopped) want nothing any more.
        t.wanted_by.retain(|id| subscribers.get(id).is_some_and(|tx| !tx.is_closed()));
        if t.wanted_by.is_empty() {
            self.forget(name);
            return;
        }
        let applied = t.state.apply(v4, v6, now);
        self.metrics.lb_name_lookup(applied.outcome.label());
        let addrs: Arc<[IpAddr]> = t.state.addresses().into();
        log_lookup(name, &applied.outcome, applied.changed, &addrs, v4, v6);
        if applied.changed {
            for id in &t.wanted_by {
                if let Some(tx) = self.subscribers.get(id) {
                    let _ = tx.send(Resolved { name: name.clone(), addrs: addrs.clone() });
                }
            }
        }
        self.subscribers.retain(|_, tx| !tx.is_closed());
        self.schedule_at(name, now + applied.next);
    }
}

/// Changes at info (a load balancer moved, or its addresses went stale), failures and the
/// rest at debug: a resolver outage must not flood the log with a line per name.
fn log_lookup(name: &str, outcome: &Outcome, changed: bool, addrs: &[IpAddr], v4: &Answer, v6: &Answer) {
    let why = || [v4, v6].into_iter().find_map(|a| if let Answer::Failed(w) = a { Some(w.clone()) } else { None });
    match (changed, outcome) {
        (true, Outcome::Failed) => {
            info!(%name, ?addrs, error = ?why(), "load-balancer hostname: stale addresses dropped (lookups keep failing)")
        }
        (true, _) => info!(%name, ?addrs, result = outcome.label(), "load-balancer hostname resolved"),
        (false, Outcome::Failed) => debug!(%name, error = ?why(), "load-balancer hostname: lookup failed"),
        (false, _) => debug!(%name, result = outcome.label(), "load-balancer hostname: unchanged"),
    }
}
