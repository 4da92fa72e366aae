//! Which node delivers for which workspace. A workspace's rate limit is one limit over every
//! request to it, so one node at a time delivers for it: the node that holds the workspace's lease
//! in the queue. Nodes renew their leases every [`RENEW_EVERY`]; a node that dies stops renewing,
//! and within [`LEASE_TTL`] another node takes the lease with the events the first had claimed.
//! Each node holds its fair share (workspaces divided by nodes alive, rounded up): a node started
//! later takes the workspaces the others give up.
//!
//! On an engine only one process opens (SQLite) every lease is this node's at once, and this is
//! simply where the workers run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use config::Config;
use sender::HttpSender;
use store::Queue;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Shared;
use crate::remembered::StoredTraits;
use crate::worker::{self, IntegrationWorker};

/// How long a lease lasts unless renewed: a dead node's workspaces wait at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// How often leases are renewed, and free ones looked for.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// A lease not renewed for this long is treated as lost, whatever the database says: past it,
/// another node may hold it.
const TRUSTED_FOR: Duration = Duration::from_secs(4);

/// The integrations that deliver to one workspace.
pub(crate) struct Workspace {
    /// Its account, as destinations name it.
    pub account: String,
    /// The integrations, by name.
    pub integrations: Vec<String>,
    /// Their pipelines: the events the lease covers.
    pub pipelines: Vec<String>,
    /// The traits remembered for its users, shared by its integrations.
    pub traits: Arc<StoredTraits>,
    /// Woken by the collector, given to each worker.
    pub wakes: Vec<Arc<Notify>>,
}

impl Workspace {
    fn lease(&self) -> String {
        format!("workspace:{}", self.account)
    }
}

/// The workers of a workspace this node delivers for.
struct Delivering {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    renewed: Instant,
}

impl Delivering {
    /// Stops the workers: in-flight deliveries finish or go back to the queue.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// A name for this node's own lease, which says it is alive: unique to this process.
pub(crate) fn node_lease() -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() % 1_000_000_000_000);
    format!("node:{}-{started:x}", std::process::id())
}

/// Delivers for this node's share of `workspaces` until `generation` turns true. When the service
/// stops (`service` is true then), the leases are given up at once for other nodes to take; on a
/// reload they are kept, and the next generation renews them.
pub(crate) async fn deliver<Q: Queue + Clone>(
    shared: Arc<Shared<Q>>,
    sender: Arc<HttpSender>,
    config: Arc<Config>,
    workspaces: Vec<Workspace>,
    node: String,
    mut generation: watch::Receiver<bool>,
    service: watch::Receiver<bool>,
) {
    let queue = &shared.queue;
    let mut delivering: BTreeMap<usize, Delivering> = BTreeMap::new();
    // Workspaces whose workers are stopping: not taken again until they have stopped. Stopping
    // waits for deliveries in flight, which must not hold up the renewal of the other leases.
    let mut stopping_workers: BTreeMap<usize, JoinHandle<()>> = BTreeMap::new();
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = generation.wait_for(|stop| *stop) => break,
        }
        stopping_workers.retain(|_, stopping| !stopping.is_finished());
        let mut trouble = None;
        if let Err(error) = queue.hold_lease(node.clone(), Vec::new(), LEASE_TTL).await {
            trouble = Some(error);
        }
        let alive = match queue.live_nodes().await {
            Ok(alive) => alive.max(1),
            Err(error) => {
                trouble = Some(error);
                1
            }
        };
        let fair_share = workspaces.len().div_ceil(usize::try_from(alive).unwrap_or(1));

        let mut lost = Vec::new();
        for (&index, running) in &mut delivering {
            match queue.hold_lease(workspaces[index].lease(), Vec::new(), LEASE_TTL).await {
                Ok(Some(_)) => running.renewed = Instant::now(),
                Ok(None) => lost.push(index),
                Err(error) => {
                    if running.renewed.elapsed() > TRUSTED_FOR {
                        lost.push(index);
                    }
                    trouble = Some(error);
                }
            }
        }
        for index in lost {
            if let Some(running) = delivering.remove(&index) {
                tracing::warn!(workspace = %workspaces[index].account, "this node could not renew its lease on the workspace: it stops delivering for it, and another node takes over");
                stopping_workers.insert(index, tokio::spawn(running.stop()));
            }
        }
        while delivering.len() > fair_share {
            let Some((index, running)) = delivering.pop_last() else { break };
            tracing::info!(workspace = %workspaces[index].account, nodes = alive, "handing the workspace to another node: each node delivers for its share");
            let (queue, lease) = (queue.clone(), workspaces[index].lease());
            stopping_workers.insert(
                index,
                tokio::spawn(async move {
                    running.stop().await;
                    if let Err(error) = queue.give_up_lease(lease).await {
                        tracing::warn!(%error, "could not give up a workspace's lease; another node takes it when it runs out");
                    }
                }),
            );
        }
        for (index, workspace) in workspaces.iter().enumerate() {
            if delivering.len() + stopping_workers.len() >= fair_share {
                break;
            }
            if delivering.contains_key(&index) || stopping_workers.contains_key(&index) {
                continue;
            }
            match queue.hold_lease(workspace.lease(), workspace.pipelines.clone(), LEASE_TTL).await {
                Ok(Some(held)) => {
                    if held.claimed + held.paused > 0 {
                        tracing::info!(
                            workspace = %workspace.account,
                            in_flight = held.claimed,
                            paused = held.paused,
                            "this node now delivers for the workspace; events left unfinished are queued again"
                        );
                    } else if held.taken {
                        tracing::info!(workspace = %workspace.account, "this node now delivers for the workspace");
                    }
                    delivering.insert(index, start(&shared, &sender, &config, workspace));
                }
                Ok(None) => {}
                Err(error) => trouble = Some(error),
            }
        }
        match trouble {
            Some(error) if !failing => {
                failing = true;
                tracing::error!(%error, "cannot reach the queue to hold this node's leases; trying again every second");
            }
            None if failing => {
                failing = false;
                tracing::info!("the queue answers again");
            }
            _ => {}
        }
    }
    let stopping = *service.borrow();
    for (_, handing_over) in stopping_workers {
        let _ = handing_over.await;
    }
    for (index, running) in std::mem::take(&mut delivering) {
        running.stop().await;
        if stopping && let Err(error) = queue.give_up_lease(workspaces[index].lease()).await {
            tracing::warn!(%error, workspace = %workspaces[index].account, "could not give up the workspace's lease; another node takes it when it runs out");
        }
    }
    if stopping {
        let _ = queue.give_up_lease(node).await;
    }
}

fn start<Q: Queue + Clone>(
    shared: &Arc<Shared<Q>>,
    sender: &Arc<HttpSender>,
    config: &Config,
    workspace: &Workspace,
) -> Delivering {
    let (stop, stopping) = watch::channel(false);
    let tasks = config
        .integrations
        .iter()
        .filter(|integration| workspace.integrations.contains(&integration.name))
        .zip(workspace.wakes.iter())
        .map(|(integration, wake)| {
            let worker = IntegrationWorker::new(integration, config, workspace.traits.clone(), wake.clone());
            tokio::spawn(worker::run(worker, shared.clone(), sender.clone(), stopping.clone()))
        })
        .collect();
    Delivering { stop, tasks, renewed: Instant::now() }
}
