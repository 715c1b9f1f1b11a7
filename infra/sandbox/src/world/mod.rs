//! The sandbox's **world**: three places (the pair and the claim store's witness region) and
//! cuttable links between them, served by one daemon process (`switchyard sandbox world`,
//! which `Sandbox::up` starts from the `switchyard` binary). It serves:
//! - an **AWS front** per (caller region, target region): every AWS call a region makes goes
//!   through one, so a partition can cut it; the fronts also make moto's per-region control
//!   tables one multi-Region strongly consistent (MRSC) table ([`front`]);
//! - **TCP links** for every cross-region database connection (replication included) and
//!   every cross-region call to an order API ([`tcp`]);
//! - the **regional order APIs** (and their catch-up)
//!   ([`orders`]);
//! - the **clock**: alarms evaluated, rules matched and delivered, schedules fired ([`clock`]);
//! - **Route 53's health checkers** on each region's `/writer`, every interval ([`checkers`]);
//! - a **control API** on loopback: `GET|PUT /links` (the partition), `PUT /parts/REGION`
//!   (crash or restore a region's order API), `GET|PUT /clock`, `POST /clock/tick` and
//!   `GET /dns-checks` (each region's health check status) and `POST /events/REGION` (an
//!   event on a region's default bus, e.g. Step Functions' execution status changes).
//!
//! What it does not model is listed in ARCHITECTURE.md ("Sandbox stand-ins").

pub mod checkers;
pub mod clock;
pub mod front;
pub mod http;
pub mod links;
pub mod orders;
pub mod tcp;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use switchyard_core::{Region, config::AwsEndpoints};
use switchyard_model::Deployment;
use switchyard_postgres::PgEndpoint;
use tokio::net::{TcpListener, TcpStream};

pub use links::{CutMode, Links, ServiceCut, Shape};

/// The service name of a region's database in a service cut.
pub const POSTGRES: &str = "postgres";

/// One listening port of the world that stands for a path from `caller` to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub caller: Region,
    pub target: Region,
    pub port: u16,
    /// Where it leads (TCP links only): the target's own port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<u16>,
    /// The target's service it reaches (TCP links to a database: `postgres`), which a
    /// service cut can take down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Everything the world daemon serves, decided by `Sandbox::up` (which picks the ports) and
/// saved in `sandbox.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldPlan {
    /// The sandbox instance it belongs to (the clock starts its executions there).
    pub instance: String,
    /// The pair, then the witness.
    pub places: Vec<Region>,
    /// moto: the one AWS API emulator all fronts lead to.
    pub moto_port: u16,
    pub control_port: u16,
    /// The operator's (tests', CLI's) AWS endpoint: outside every region, never cut.
    pub operator_port: u16,
    /// Caller ∈ the pair, target ∈ all three places.
    pub aws_fronts: Vec<Route>,
    /// Caller → the other region's database.
    pub db_links: Vec<Route>,
    /// Each region's own order API (`caller` = `target`), then caller → the other region's.
    pub apis: Vec<Route>,
    pub api_links: Vec<Route>,
    /// Each region's database (the order API's `/health` asks it).
    pub databases: BTreeMap<Region, PgEndpoint>,
}

impl WorldPlan {
    /// Picks a free port for everything, given the places and the databases' own ports.
    pub fn new(
        d: &Deployment,
        instance: &str,
        moto_port: u16,
        databases: BTreeMap<Region, PgEndpoint>,
    ) -> Result<Self> {
        let witness = d.claim_store_witness().context("the pair has no claim-store witness region")?;
        let pair: Vec<Region> = d.regions.iter().cloned().collect();
        let places: Vec<Region> = pair.iter().cloned().chain([witness]).collect();
        let port = || crate::process::free_port();
        let route = |caller: &Region, target: &Region, upstream: Option<u16>| -> Result<Route> {
            Ok(Route { caller: caller.clone(), target: target.clone(), port: port()?, upstream, service: None })
        };
        let mut aws_fronts = Vec::new();
        let mut db_links = Vec::new();
        let mut apis = Vec::new();
        for caller in &pair {
            for target in &places {
                aws_fronts.push(route(caller, target, None)?);
            }
            apis.push(route(caller, caller, None)?);
        }
        let mut api_links = Vec::new();
        for caller in &pair {
            // A region's own database too goes through a link: a service cut reaches it.
            for target in &pair {
                let link = route(caller, target, Some(databases[target].port))?;
                db_links.push(Route { service: Some(POSTGRES.into()), ..link });
            }
            for target in pair.iter().filter(|t| *t != caller) {
                let api = apis.iter().find(|a| a.target == *target).map(|a| a.port);
                api_links.push(route(caller, target, api)?);
            }
        }
        Ok(WorldPlan {
            instance: instance.to_owned(),
            places,
            moto_port,
            control_port: port()?,
            operator_port: port()?,
            aws_fronts,
            db_links,
            apis,
            api_links,
            databases,
        })
    }

    pub fn witness(&self) -> &Region {
        &self.places[2]
    }

    /// The claim store's replicas (the pair; the witness holds no readable copy).
    pub fn replicas(&self) -> &[Region] {
        &self.places[..2]
    }

    /// Where moto keeps the claim store's one table (its first replica's region).
    pub fn backing(&self) -> &Region {
        &self.places[0]
    }

    pub fn operator_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.operator_port)
    }

    /// What `caller`'s functions get as `SWITCHYARD_AWS_ENDPOINTS`.
    pub fn aws_endpoints(&self, caller: &Region) -> AwsEndpoints {
        AwsEndpoints(
            self.aws_fronts
                .iter()
                .filter(|f| f.caller == *caller)
                .map(|f| (f.target.clone(), format!("http://127.0.0.1:{}", f.port)))
                .collect(),
        )
    }

    /// `target`'s database as `caller` reaches it: over a link (its own region's too). A plan
    /// from before own-region links reaches its own database directly.
    pub fn database_from(&self, caller: &Region, target: &Region) -> Option<PgEndpoint> {
        let mut endpoint = self.databases.get(target)?.clone();
        match self.db_links.iter().find(|l| l.caller == *caller && l.target == *target) {
            Some(link) => endpoint.port = link.port,
            None if caller == target => {}
            None => return None,
        }
        Some(endpoint)
    }

    /// `target`'s order API as `caller` reaches it.
    pub fn api_url(&self, caller: &Region, target: &Region) -> Option<String> {
        let routes = if caller == target { &self.apis } else { &self.api_links };
        let route = routes.iter().find(|r| r.caller == *caller && r.target == *target)?;
        Some(format!("http://127.0.0.1:{}", route.port))
    }

    pub fn ports(&self) -> Vec<u16> {
        let routes = self.aws_fronts.iter().chain(&self.db_links).chain(&self.apis).chain(&self.api_links);
        [self.control_port, self.operator_port].into_iter().chain(routes.map(|r| r.port)).collect()
    }
}

/// What the daemon holds while it runs.
pub struct World {
    pub plan: WorldPlan,
    pub deployment: Deployment,
    links: RwLock<Links>,
    /// Bumped on every change of `links` or `down`: blocked connections re-check on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Per replica region: the claim tables as they were when it lost its majority.
    snapshots: Mutex<BTreeMap<Region, BTreeMap<String, Vec<serde_json::Value>>>>,
    /// Regions whose order API is crashed.
    down: Mutex<BTreeSet<Region>>,
    clock: Mutex<clock::ClockState>,
    /// Route 53's health check of each region's `/writer`, as its checkers see it now.
    checks: Mutex<BTreeMap<Region, checkers::CheckStatus>>,
    targets: Arc<dyn clock::Targets>,
    /// Each region API's clients (claim store, queues), made on first use.
    views: tokio::sync::Mutex<BTreeMap<Region, (switchyard_aws::control_table::ControlTable, orders::Queues)>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("plan", &self.plan).field("links", &self.links()).finish_non_exhaustive()
    }
}

impl World {
    pub fn links(&self) -> Links {
        self.links.read().map(|l| l.clone()).unwrap_or_default()
    }

    /// How the link between two places is cut now.
    pub fn cut(&self, a: &Region, b: &Region) -> Option<CutMode> {
        self.links.read().ok().and_then(|l| l.between(a, b))
    }

    /// How `service` of `region` is cut now.
    pub fn service_cut(&self, region: &Region, service: &str) -> Option<CutMode> {
        self.links.read().ok().and_then(|l| l.service(region, service))
    }

    /// How the path `route` stands for is cut: the link between its places, else its service.
    pub fn route_cut(&self, route: &Route) -> Option<CutMode> {
        self.cut(&route.caller, &route.target)
            .or_else(|| route.service.as_deref().and_then(|s| self.service_cut(&route.target, s)))
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.links.read().map(|l| l.delay_ms).unwrap_or(0))
    }

    pub fn reaches_majority(&self, place: &Region) -> bool {
        self.links.read().map(|l| l.reaches_majority(place, &self.plan.places)).unwrap_or(false)
    }

    pub fn is_down(&self, region: &Region) -> bool {
        self.down.lock().map(|d| d.contains(region)).unwrap_or(false)
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Replaces the links. A replica that loses its majority keeps a snapshot of the claim
    /// tables (what its eventually consistent reads answer from until it rejoins).
    async fn set_links(&self, new: Links) -> Result<()> {
        let before = self.links();
        let mut taken = BTreeMap::new();
        for replica in self.plan.replicas() {
            let (had, has) =
                (before.reaches_majority(replica, &self.plan.places), new.reaches_majority(replica, &self.plan.places));
            if had && !has {
                taken.insert(replica.clone(), front::snapshot_claim_tables(self).await?);
            }
        }
        if let Ok(mut snapshots) = self.snapshots.lock() {
            for replica in self.plan.replicas() {
                if new.reaches_majority(replica, &self.plan.places) {
                    snapshots.remove(replica);
                }
            }
            snapshots.extend(taken);
        }
        if let Ok(mut links) = self.links.write() {
            *links = new;
        }
        self.bump();
        Ok(())
    }

    pub fn snapshot(&self, replica: &Region, table: &str) -> Option<Vec<serde_json::Value>> {
        self.snapshots.lock().ok()?.get(replica)?.get(table).cloned()
    }
}

/// What serves one accepted connection of a listener.
type Handler = Box<dyn Fn(Arc<World>, TcpStream) + Send + Sync>;

/// Runs the world until the process is stopped. Fails at once if any port cannot be bound.
pub async fn serve(plan: WorldPlan, targets: Arc<dyn clock::Targets>) -> Result<()> {
    let (changed, _) = tokio::sync::watch::channel(0);
    let world = Arc::new(World {
        plan: plan.clone(),
        deployment: Deployment::sandbox(),
        links: RwLock::new(Links::default()),
        changed,
        snapshots: Mutex::default(),
        down: Mutex::default(),
        clock: Mutex::default(),
        checks: Mutex::default(),
        targets,
        views: tokio::sync::Mutex::default(),
    });
    let bind = |port: u16| async move {
        TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding 127.0.0.1:{port}"))
    };
    let control = bind(plan.control_port).await?;
    let mut listeners: Vec<(TcpListener, Handler)> = Vec::new();
    listeners.push((bind(plan.operator_port).await?, Box::new(|w, s| spawn(front::serve(w, None, None, s)))));
    for f in &plan.aws_fronts {
        let (caller, target) = (f.caller.clone(), f.target.clone());
        listeners.push((
            bind(f.port).await?,
            Box::new(move |w, s| spawn(front::serve(w, Some(caller.clone()), Some(target.clone()), s))),
        ));
    }
    for l in plan.db_links.iter().chain(&plan.api_links) {
        let route = l.clone();
        listeners.push((bind(l.port).await?, Box::new(move |w, s| spawn(tcp::serve(w, route.clone(), s)))));
    }
    for a in &plan.apis {
        let region = a.target.clone();
        listeners.push((bind(a.port).await?, Box::new(move |w, s| spawn(orders::serve_api(w, region.clone(), s)))));
    }
    for (listener, handle) in listeners {
        let world = world.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    handle(world.clone(), stream);
                }
            }
        });
    }
    tokio::spawn(clock::run(world.clone()));
    tokio::spawn(checkers::run(world.clone()));
    for region in world.plan.replicas().to_vec() {
        tokio::spawn(orders::catch_up(world.clone(), region));
    }
    loop {
        let (stream, _) = control.accept().await?;
        spawn(serve_control(world.clone(), stream));
    }
}

fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(f);
}

async fn serve_control(world: Arc<World>, mut stream: TcpStream) {
    let Ok(Some(req)) = http::read_request(&mut stream).await else {
        return;
    };
    let answer = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/links") => Ok(serde_json::to_value(world.links()).unwrap_or_default()),
        ("PUT", "/links") => match serde_json::from_slice::<Links>(&req.body) {
            Ok(links) => world.set_links(links).await.map(|()| serde_json::to_value(world.links()).unwrap_or_default()),
            Err(e) => Err(anyhow::anyhow!("not a links document: {e}")),
        },
        ("PUT", path) if path.starts_with("/parts/") => {
            #[derive(Deserialize)]
            struct Parts {
                api_up: bool,
            }
            let region = path.trim_start_matches("/parts/").parse::<Region>().map_err(anyhow::Error::msg);
            match (region, serde_json::from_slice::<Parts>(&req.body)) {
                (Ok(region), Ok(parts)) => {
                    let was_up = match world.down.lock() {
                        Ok(mut down) if parts.api_up => !down.remove(&region),
                        Ok(mut down) => !down.insert(region.clone()),
                        Err(_) => false,
                    };
                    world.bump();
                    Ok(serde_json::json!({ "region": region, "api_up": parts.api_up, "was_up": was_up }))
                }
                (Err(e), _) => Err(e),
                (_, Err(e)) => Err(anyhow::anyhow!("not a parts document: {e}")),
            }
        }
        ("GET", "/clock") => Ok(clock::report(&world)),
        ("GET", "/dns-checks") => Ok(serde_json::to_value(checkers::report(&world)).unwrap_or_default()),
        ("PUT", "/clock") => match serde_json::from_slice::<clock::ClockSettings>(&req.body) {
            Ok(settings) => clock::settle(&world, &settings).map(|()| clock::report(&world)),
            Err(e) => Err(anyhow::anyhow!("not clock settings: {e}")),
        },
        ("POST", path) if path.starts_with("/events/") => {
            let region = path.trim_start_matches("/events/").parse::<Region>().map_err(anyhow::Error::msg);
            match (region, serde_json::from_slice::<serde_json::Value>(&req.body)) {
                (Ok(region), Ok(event)) => {
                    clock::route(&world, &region, event).await.map(|()| serde_json::json!({ "routed": true }))
                }
                (Err(e), _) => Err(e),
                (_, Err(e)) => Err(anyhow::anyhow!("not an event: {e}")),
            }
        }
        ("POST", "/clock/tick") => {
            clock::evaluate_alarms(&world).await.map(|changes| serde_json::json!({ "changes": changes }))
        }
        _ => {
            let _ = http::respond_json(&mut stream, 404, &serde_json::json!({ "error": "no such control path" })).await;
            return;
        }
    };
    let _ = match answer {
        Ok(body) => http::respond_json(&mut stream, 200, &body).await,
        Err(e) => http::respond_json(&mut stream, 400, &serde_json::json!({ "error": format!("{e:#}") })).await,
    };
}

/// The control API's client (the CLI and the tests).
pub mod control {
    use anyhow::{Result, bail};
    use switchyard_core::Region;

    use super::{Links, http};

    pub async fn links(control_port: u16) -> Result<Links> {
        let (status, body) = http::call(control_port, "GET", "/links", None).await?;
        if status != 200 {
            bail!("the world answered {status}: {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// Replaces the links; returns once the world applies them (snapshots taken).
    pub async fn set_links(control_port: u16, links: &Links) -> Result<Links> {
        let (status, body) = http::call(control_port, "PUT", "/links", Some(&serde_json::to_value(links)?)).await?;
        if status != 200 {
            bail!("the world refused the links ({status}): {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// Crashes (`false`) or restores (`true`) a region's order API; whether it was up before.
    pub async fn set_api(control_port: u16, region: &Region, up: bool) -> Result<bool> {
        let body = serde_json::json!({ "api_up": up });
        let (status, body) = http::call(control_port, "PUT", &format!("/parts/{region}"), Some(&body)).await?;
        if status != 200 {
            bail!("the world refused ({status}): {body}");
        }
        Ok(body["was_up"].as_bool().unwrap_or(false))
    }

    /// Puts `event` on `region`'s default bus: its rules match it and deliver it (what a
    /// service's own events do in AWS, e.g. Step Functions' execution status changes).
    pub async fn put_event(control_port: u16, region: &Region, event: &serde_json::Value) -> Result<()> {
        let (status, body) = http::call(control_port, "POST", &format!("/events/{region}"), Some(event)).await?;
        if status != 200 {
            bail!("the world refused the event ({status}): {body}");
        }
        Ok(())
    }

    /// Each region's Route 53 health check status, as the world's checkers see it.
    pub async fn dns_checks(
        control_port: u16,
    ) -> Result<std::collections::BTreeMap<Region, super::checkers::CheckStatus>> {
        let (status, body) = http::call(control_port, "GET", "/dns-checks", None).await?;
        if status != 200 {
            bail!("the world answered {status}: {body}");
        }
        Ok(serde_json::from_value(body)?)
    }

    /// Starts or stops the clock.
    pub async fn set_clock(control_port: u16, settings: &super::clock::ClockSettings) -> Result<serde_json::Value> {
        let (status, body) = http::call(control_port, "PUT", "/clock", Some(&serde_json::to_value(settings)?)).await?;
        if status != 200 {
            bail!("the world refused the clock settings ({status}): {body}");
        }
        Ok(body)
    }

    /// What the clock did: its state changes and deliveries.
    pub async fn clock(control_port: u16) -> Result<serde_json::Value> {
        Ok(http::call(control_port, "GET", "/clock", None).await?.1)
    }

    /// Evaluates every alarm once, now; the state changes it made.
    pub async fn tick(control_port: u16) -> Result<Vec<super::clock::Change>> {
        let (status, body) = http::call(control_port, "POST", "/clock/tick", None).await?;
        if status != 200 {
            bail!("the clock's tick failed ({status}): {body}");
        }
        Ok(serde_json::from_value(body["changes"].clone())?)
    }
}
