//! The two-region sandbox: lifecycle (`up`, `down`), its endpoints file, and its status.
//!
//! An instance lives in `target/sandbox/<instance>/`. Its `sandbox.json` is **the one file
//! other tools read** for endpoints (AWS API URL, each region's PostgreSQL and resources);
//! `sandbox.env` holds the same as shell variables for `cargo lambda` and friends.
//! Several instances can run side by side (the tests start their own), each on free ports.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use switchyard_aws::AwsTarget;
use switchyard_core::{
    DatabaseRole, Region, ReplicationLag, ReplicationStatus, config::keys, ports::ReplicationMonitor,
};
use switchyard_model::Deployment;
use switchyard_postgres::{PgEndpoint, PgNode, pair_lag};

use crate::{aws, lambda, postgres, process, tools, workspace::repo_root, world::WorldPlan};

/// One region of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionSandbox {
    pub region: Region,
    /// The role this region's database was created with (roles change after a failover;
    /// ask the database, not this field, for the current one).
    pub initial_role: DatabaseRole,
    pub postgres: PgEndpoint,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// The state of one sandbox instance, as written to `sandbox.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub instance: String,
    pub dir: PathBuf,
    pub environment: String,
    /// The operator's AWS endpoint (tests, the CLI): the world's front outside every region,
    /// never cut. The regions' own endpoints are in `world`.
    pub aws_endpoint_url: String,
    /// moto itself: only the world talks to it.
    pub moto_url: String,
    pub moto_pid: u32,
    /// The three places, their links and the order APIs (see [`crate::world`]).
    pub world: WorldPlan,
    pub world_pid: u32,
    pub regions: Vec<RegionSandbox>,
    /// The functions, served per region by `cargo lambda watch`.
    pub lambda: Vec<lambda::LambdaService>,
    /// `None` until provisioning finished.
    pub resources: Option<aws::Resources>,
    /// When the `up` that started its moto ran (absent in files written before #19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_since: Option<String>,
}

pub fn sandbox_root() -> PathBuf {
    repo_root().join("target/sandbox")
}

/// The instances of this checkout, by name, and whether each is up (its moto answers to
/// its PID). An instance with a directory but no `sandbox.json` was interrupted in `up`.
pub fn list() -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(sandbox_root()) else {
        return Vec::new();
    };
    let mut found: Vec<(String, bool)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let up = Sandbox::load(&name).ok().flatten().is_some_and(|sb| sb.is_up());
            (name, up)
        })
        .collect();
    found.sort();
    found
}

fn instance_dir(instance: &str) -> PathBuf {
    sandbox_root().join(instance)
}

fn moto_port(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

impl Sandbox {
    /// Reads the state of an instance, if it was ever brought up.
    pub fn load(instance: &str) -> Result<Option<Sandbox>> {
        let path = instance_dir(instance).join("sandbox.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Whether the instance runs: its moto answers to its PID (`sandbox.json` outlives a
    /// machine's restart or a killed `up`).
    pub fn is_up(&self) -> bool {
        process::is_alive(self.moto_pid)
    }

    fn save(&self) -> Result<()> {
        std::fs::write(self.dir.join("sandbox.json"), serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(self.dir.join("sandbox.env"), self.shell_env())?;
        Ok(())
    }

    /// `export` lines for a shell: the AWS endpoint, dummy credentials and each database.
    pub fn shell_env(&self) -> String {
        // `cargo lambda` (for `cargo lambda invoke`) lives in the repository's venv.
        let mut s = format!("export PATH=\"{}:$PATH\"\n", tools::venv_dir().join("bin").display());
        // The operator's view: every region at the front no partition cuts.
        let everywhere = switchyard_core::config::AwsEndpoints(
            self.world.places.iter().map(|r| (r.clone(), self.aws_endpoint_url.clone())).collect(),
        );
        s += &format!(
            "export SWITCHYARD_AWS_ENDPOINTS='{}'\nexport AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID=sandbox\nexport AWS_SECRET_ACCESS_KEY=sandbox\n",
            serde_json::to_string(&everywhere).unwrap_or_default(),
            self.aws_endpoint_url
        );
        for a in &self.world.apis {
            let var = a.target.as_str().to_uppercase().replace('-', "_");
            s += &format!("export SWITCHYARD_API_{var}=http://127.0.0.1:{}\n", a.port);
        }
        for l in &self.lambda {
            let var = l.region.as_str().to_uppercase().replace('-', "_");
            s += &format!("export SWITCHYARD_LAMBDA_{var}=http://127.0.0.1:{}\n", l.port);
            s += &format!("export SWITCHYARD_LAMBDA_{var}_PORT={}\n", l.port);
        }
        for r in &self.regions {
            let var = r.region.as_str().to_uppercase().replace('-', "_");
            s += &format!("export SWITCHYARD_PG_{var}='{}'\n", r.postgres.conninfo("shell"));
        }
        s
    }

    pub fn deployment(&self) -> Deployment {
        Deployment::sandbox()
    }

    /// The operator's view of AWS (outside every region: no partition cuts it).
    pub fn aws_target(&self) -> AwsTarget {
        AwsTarget::Sandbox {
            endpoints: switchyard_core::config::AwsEndpoints(
                self.world.places.iter().map(|r| (r.clone(), self.aws_endpoint_url.clone())).collect(),
            ),
        }
    }

    /// AWS as `region`'s functions reach it: through the world's links.
    pub fn region_aws_target(&self, region: &Region) -> AwsTarget {
        AwsTarget::Sandbox { endpoints: self.world.aws_endpoints(region) }
    }

    pub fn region(&self, region: &str) -> Result<&RegionSandbox> {
        self.regions
            .iter()
            .find(|r| r.region.as_str() == region)
            .with_context(|| format!("{region} is not a sandbox region"))
    }

    /// A connection factory for a region's database.
    pub fn node(&self, region: &str) -> Result<PgNode> {
        let r = self.region(region)?;
        Ok(PgNode::new(r.postgres.clone(), r.region.as_str()))
    }

    /// The Lambda service of a region.
    pub fn lambda(&self, region: &str) -> Result<&lambda::LambdaService> {
        self.lambda
            .iter()
            .find(|l| l.region.as_str() == region)
            .with_context(|| format!("no Lambda service in {region}"))
    }

    /// Brings an instance up: installs missing tools, starts what is not running, initialises
    /// what does not exist, provisions a fresh moto. Running it again changes nothing.
    pub async fn up(instance: &str) -> Result<Sandbox> {
        Self::up_reporting(instance, &|_| {}).await
    }

    /// [`Self::up`], telling `report` a line per component as it comes up (or is found
    /// running), with how long it took: a first `up` takes tens of seconds.
    pub async fn up_reporting(instance: &str, report: &(dyn Fn(&str) + Sync)) -> Result<Sandbox> {
        // moto accepts what AWS refuses: the sandbox is made only from a model AWS would take.
        let problems = Deployment::sandbox().validate();
        if !problems.is_empty() {
            bail!("the sandbox's model breaks documented AWS constraints:\n  {}", problems.join("\n  "));
        }
        let dir = instance_dir(instance);
        std::fs::create_dir_all(&dir)?;
        let mut started = Started::load(&dir).unwrap_or_default();
        started.journal = dir.join("started.json");
        let result = Self::up_tracking(instance, &mut started, report).await;
        if result.is_err() {
            // Nothing records these processes yet: stop them here or they outlive us.
            started.stop();
        }
        result
    }

    async fn up_tracking(instance: &str, started: &mut Started, report: &(dyn Fn(&str) + Sync)) -> Result<Sandbox> {
        let began = std::time::Instant::now();
        let took = |since: std::time::Instant| format!("{:.1} s", since.elapsed().as_secs_f64());
        let deployment = Deployment::sandbox();
        let dir = instance_dir(instance);
        std::fs::create_dir_all(&dir)?;
        let dir = std::fs::canonicalize(&dir)?;
        let step = std::time::Instant::now();
        tools::ensure_python_tools()?;
        let pg = postgres::PgTools::find()?;
        report(&format!(
            "tools       ready: moto, cargo-lambda, PostgreSQL in {} ({})",
            pg.bindir().display(),
            took(step)
        ));

        let previous = Sandbox::load(instance)?;
        let data_root = match previous.as_ref().and_then(|p| p.regions.first()).and_then(|r| r.data_dir.parent()) {
            Some(root) if root.exists() => root.to_path_buf(),
            _ => pg.data_root(&dir, instance)?,
        };

        // The AWS API emulator.
        let step = std::time::Instant::now();
        let (moto_url, moto_pid, mut resources) = match &previous {
            Some(p) if process::is_alive(p.moto_pid) => {
                report(&format!("moto        running: {} (pid {})", p.moto_url, p.moto_pid));
                (p.moto_url.clone(), p.moto_pid, p.resources.clone())
            }
            _ => {
                let port =
                    previous.as_ref().and_then(|p| moto_port(&p.moto_url)).filter(|p| !process::port_is_open(*p));
                let port = match port {
                    Some(p) => p,
                    None => process::free_port()?,
                };
                let log = dir.join("moto.log");
                let pid = process::spawn_detached(
                    Command::new(tools::moto_server()).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
                    &log,
                )?;
                started.group(pid);
                process::wait_for_port(port, Duration::from_secs(30), "moto", &log, Some(pid))?;
                report(&format!("moto        started: http://127.0.0.1:{port} (pid {pid}, {})", took(step)));
                // A new moto process is empty: whatever was provisioned before is gone.
                (format!("http://127.0.0.1:{port}"), pid, None)
            }
        };

        // Where each region's database listens (kept across `up`s while its data exists).
        let pair =
            [(&deployment.regions.primary, DatabaseRole::Writer), (&deployment.regions.standby, DatabaseRole::Replica)];
        let mut endpoints = std::collections::BTreeMap::new();
        for (region, _) in pair {
            let known = previous.as_ref().and_then(|p| p.regions.iter().find(|r| r.region == *region));
            let port = match known {
                Some(k) if data_root.join(region.as_str()).join("PG_VERSION").exists() => k.postgres.port,
                _ => process::free_port()?,
            };
            endpoints.insert(
                region.clone(),
                PgEndpoint {
                    host: "127.0.0.1".into(),
                    port,
                    user: postgres::DB_USER.into(),
                    dbname: postgres::DB_NAME.into(),
                },
            );
        }

        // The world: links between the three places, the AWS fronts, the order APIs. Kept
        // while it runs over the same moto and databases.
        // Its ports stay those of the last `up` (a replica's `primary_conninfo` names its link).
        let moto = moto_port(&moto_url).context("moto's port")?;
        let world = match &previous {
            Some(p) if p.world.databases == endpoints => WorldPlan { moto_port: moto, ..p.world.clone() },
            _ => WorldPlan::new(&deployment, instance, moto, endpoints.clone())?,
        };
        let step = std::time::Instant::now();
        let world_pid = match &previous {
            Some(p) if process::is_alive(p.world_pid) && p.world == world => {
                report(&format!("world       running: links, AWS fronts, order APIs (pid {})", p.world_pid));
                p.world_pid
            }
            _ => {
                if let Some(p) = previous.as_ref().filter(|p| process::is_alive(p.world_pid)) {
                    process::stop_group(p.world_pid, "TERM", Duration::from_secs(10))?;
                }
                let pid = start_world(&dir, &world)?;
                started.group(pid);
                report(&format!("world       started: links, AWS fronts, order APIs (pid {pid}, {})", took(step)));
                pid
            }
        };

        // The regional databases: primary first (the replica is a base backup of it, and
        // streams from it over the link between the regions), with TLS, and each function's
        // password-authenticated role.
        let tls = postgres::ensure_tls(&dir)?;
        let db_roles = postgres::ROLES
            .iter()
            .map(|role| Ok((role.function, postgres::credentials(&dir, role)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut regions = Vec::new();
        for (region, role) in pair {
            let step = std::time::Instant::now();
            let mut did = Vec::new();
            let data_dir = data_root.join(region.as_str());
            let log = data_root.join(format!("{region}.log"));
            let endpoint = endpoints[region].clone();
            if !data_dir.join("PG_VERSION").exists() {
                let _ = std::fs::remove_dir_all(&data_dir);
                match role {
                    DatabaseRole::Writer => pg.init_primary(&data_dir, endpoint.port, region.as_str())?,
                    DatabaseRole::Replica => {
                        let primary = &deployment.regions.primary;
                        let upstream = world.database_from(region, primary).context("no link to the primary")?;
                        pg.init_replica(&data_dir, endpoint.port, region.as_str(), &upstream)?
                    }
                }
                pg.enable_tls(&data_dir, &tls)?;
                did.push(match role {
                    DatabaseRole::Writer => "initialised",
                    DatabaseRole::Replica => "initialised from a base backup of the writer",
                });
            }
            if postgres::postmaster_pid(&data_dir).is_none() {
                started.database(data_dir.clone());
                pg.start(&data_dir, &log)?;
                did.push("started");
            }
            if role == DatabaseRole::Writer {
                postgres::create_database(&endpoint).await?;
                postgres::migrate(&endpoint).await?;
                for (role, (_, credentials)) in postgres::ROLES.iter().zip(&db_roles) {
                    postgres::ensure_role(&endpoint, role, credentials).await?;
                }
            }
            report(&format!(
                "postgres    {region}: {} 127.0.0.1:{} ({})",
                if did.is_empty() { "running:".to_owned() } else { format!("{}:", did.join(", ")) },
                endpoint.port,
                took(step)
            ));
            regions.push(RegionSandbox {
                region: region.clone(),
                initial_role: role,
                postgres: endpoint,
                data_dir,
                log,
            });
        }

        let mut sandbox = Sandbox {
            instance: instance.to_owned(),
            dir,
            environment: deployment.environment.to_string(),
            aws_endpoint_url: world.operator_url(),
            moto_url,
            moto_pid,
            world,
            world_pid,
            regions,
            lambda: Vec::new(),
            resources: None,
            up_since: match (&previous, resources.is_some()) {
                // The same moto, provisioned: the same sandbox as before.
                (Some(p), true) => p.up_since.clone(),
                _ => Some(switchyard_core::order::Timestamp::now().to_string()),
            },
        };
        sandbox.save()?;
        let provisioned_now = resources.is_none();
        if provisioned_now {
            let step = std::time::Instant::now();
            // Silent otherwise for as long as a cargo build of the functions takes.
            report("aws         provisioning… (first the functions' packages: a cargo build if they changed)");
            let provisioned = aws::provision(&sandbox.aws_target(), &deployment, &db_roles).await;
            resources = Some(provisioned.context("provisioning moto")?);
            report(&format!(
                "aws         provisioned from the model: queues, tables, topics, rules, records ({})",
                took(step)
            ));
        } else {
            report("aws         provisioned already");
        }
        sandbox.resources = resources;
        sandbox.save()?;
        // The functions, one Lambda service per region.
        for region in deployment.regions.iter() {
            let known = previous.as_ref().and_then(|p| p.lambda.iter().find(|l| l.region == *region));
            match known {
                // Freshly provisioned resources (a new hosted zone id) need a fresh environment.
                Some(l) if process::is_alive(l.pid) && !provisioned_now => {
                    report(&format!(
                        "functions   {region}: running (cargo lambda watch, port {}, pid {})",
                        l.port, l.pid
                    ));
                    sandbox.lambda.push(l.clone())
                }
                _ => {
                    if let Some(l) = known {
                        process::stop_group(l.pid, "TERM", Duration::from_secs(10))?;
                    }
                    let port = known.map(|l| l.port).filter(|p| !process::port_is_open(*p));
                    let port = match port {
                        Some(p) => p,
                        None => process::free_port()?,
                    };
                    let log = sandbox.dir.join(format!("lambda-{region}.log"));
                    let env = sandbox.function_environment(region);
                    let service = lambda::spawn(region, &env, port, &log)?;
                    started.group(service.pid);
                    let step = std::time::Instant::now();
                    service.wait_ready()?;
                    report(&format!(
                        "functions   {region}: started (cargo lambda watch, port {}; each builds on its first invoke; {})",
                        service.port,
                        took(step)
                    ));
                    sandbox.lambda.push(service);
                }
            }
        }

        sandbox.save()?;
        report(&format!("up in {}", took(began)));
        Ok(sandbox)
    }

    /// Brings down instances named `{prefix}{pid}[-…]` whose owning process has died (a test run
    /// killed before it could clean up). Returns the instances it stopped.
    pub fn reap_orphans(prefix: &str) -> Result<Vec<String>> {
        let mut reaped = Vec::new();
        let Ok(entries) = std::fs::read_dir(sandbox_root()) else {
            return Ok(reaped);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `{prefix}{pid}` or `{prefix}{pid}-{what}`.
            let pid = name.strip_prefix(prefix).map(|rest| rest.split('-').next().unwrap_or_default());
            let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if process::is_alive(pid) {
                continue;
            }
            match Sandbox::load(&name)? {
                Some(sb) => sb.down()?,
                None => {
                    stop_interrupted(&name)?;
                }
            }
            reaped.push(name);
        }
        Ok(reaped)
    }

    /// Stops every process of the instance by PID, checks that none of its ports still
    /// listens, and removes its files.
    pub fn down(&self) -> Result<()> {
        let mut errors = Vec::new();
        for r in self.regions.iter().rev() {
            if let Err(e) = postgres::stop(&r.data_dir) {
                errors.push(format!("postgres {}: {e:#}", r.region));
            }
        }
        // A `rejoin` in another process may have restarted a Lambda service since this copy
        // was loaded: stop the ones `sandbox.json` names too.
        let saved = Sandbox::load(&self.instance).ok().flatten().filter(|s| s.dir == self.dir);
        for l in self.lambda.iter().chain(saved.iter().flat_map(|s| s.lambda.iter())) {
            if let Err(e) = process::stop_group(l.pid, "TERM", Duration::from_secs(10)) {
                errors.push(format!("cargo lambda watch {}: {e:#}", l.region));
            }
        }
        if let Err(e) = process::stop_group(self.world_pid, "TERM", Duration::from_secs(10)) {
            errors.push(format!("the world: {e:#}"));
        }
        if let Err(e) = process::stop_group(self.moto_pid, "TERM", Duration::from_secs(10)) {
            errors.push(format!("moto: {e:#}"));
        }
        // Anything an interrupted `up` started after its last save is only in the journal.
        if let Some(journal) = Started::load(&self.dir) {
            journal.stop();
        }
        let ports = self.ports();
        std::thread::sleep(Duration::from_millis(100));
        for port in &ports {
            if process::port_is_open(*port) {
                errors.push(format!("127.0.0.1:{port} still listens"));
            }
        }
        if !errors.is_empty() {
            bail!("sandbox {} did not stop cleanly: {}", self.instance, errors.join("; "));
        }
        let data_roots: Vec<&Path> = self.regions.iter().filter_map(|r| r.data_dir.parent()).collect();
        for root in data_roots {
            if !root.starts_with(&self.dir) {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))?;
        Ok(())
    }

    /// The environment the functions of `region` get in this sandbox.
    pub fn function_environment(&self, region: &Region) -> Vec<(&'static str, String)> {
        let mut env = function_environment(&self.deployment(), region, &self.world);
        if let Some(r) = &self.resources {
            env.push((keys::HOSTED_ZONE_ID, r.global.hosted_zone_id.clone()));
            if let Some(regional) = r.regions.get(region.as_str()) {
                env.push((keys::ORDERS_QUEUE_URL, regional.orders_queue_url.clone()));
                env.push((keys::ALERTS_TOPIC_ARN, regional.alerts_topic_arn.clone()));
            }
        }
        // In AWS: the RDS CA bundle shipped beside the binary.
        env.push((keys::DB_CA_BUNDLE, self.dir.join("tls/ca.pem").to_string_lossy().into_owned()));
        env
    }

    /// Stops one region's database (fast shutdown), as a regional outage would.
    pub fn stop_database(&self, region: &str) -> Result<()> {
        postgres::stop(&self.region(region)?.data_dir)
    }

    /// Crashes one region's database (immediate shutdown: no checkpoint, no final WAL sent to
    /// replicas), as a sudden regional failure would.
    pub fn crash_database(&self, region: &str) -> Result<()> {
        postgres::crash(&self.region(region)?.data_dir)
    }

    /// Starts one region's database again with its existing data and role.
    pub fn start_database(&self, region: &str) -> Result<()> {
        let r = self.region(region)?;
        postgres::start_if_down(&r.data_dir, &r.log)
    }

    /// Rebuilds `region`'s database as a streaming replica of `writer`'s (stop, fresh base
    /// backup, start). After a switchover Aurora demotes the old primary to a secondary
    /// itself; this is the sandbox's stand-in for that, and the way back after a failover
    /// (where the old writer's data diverged and must be replaced).
    pub fn rejoin_as_replica(&self, region: &str, writer: &str) -> Result<()> {
        let (r, w) = (self.region(region)?, self.region(writer)?);
        postgres::stop(&r.data_dir)?;
        std::fs::remove_dir_all(&r.data_dir).with_context(|| format!("removing {}", r.data_dir.display()))?;
        let pg = postgres::PgTools::find()?;
        let upstream = self.world.database_from(&r.region, &w.region).context("no link between the regions")?;
        pg.init_replica(&r.data_dir, r.postgres.port, region, &upstream)?;
        pg.enable_tls(&r.data_dir, &postgres::ensure_tls(&self.dir)?)?;
        pg.start(&r.data_dir, &r.log)?;
        Ok(())
    }

    /// Stops a region's functions (its `cargo lambda watch`), as a crashed Lambda service in
    /// that region would look to its callers.
    pub fn crash_functions(&self, region: &str) -> Result<bool> {
        let l = self.lambda(region)?;
        if !process::is_alive(l.pid) {
            return Ok(false);
        }
        process::stop_group(l.pid, "TERM", Duration::from_secs(10))?;
        Ok(true)
    }

    /// Starts a region's functions again if they are not running (saving the new PID).
    pub fn restart_functions(&mut self, region: &str) -> Result<bool> {
        let l = self.lambda(region)?.clone();
        if process::is_alive(l.pid) {
            return Ok(false);
        }
        let log = self.dir.join(format!("lambda-{region}.log"));
        let env = self.function_environment(&l.region);
        let service = lambda::spawn(&l.region, &env, l.port, &log)?;
        service.wait_ready()?;
        if let Some(slot) = self.lambda.iter_mut().find(|s| s.region == l.region) {
            *slot = service;
        }
        self.save()?;
        Ok(true)
    }

    /// Crashes (`up == false`) or restores a region's order API; whether it was up before.
    pub async fn set_api(&self, region: &str, up: bool) -> Result<bool> {
        let r = self.region(region)?;
        crate::world::control::set_api(self.world.control_port, &r.region, up).await
    }

    /// Makes a region's database sick but answering (see [`postgres::Sickness`]).
    pub async fn sicken_database(&self, region: &str, sickness: postgres::Sickness) -> Result<()> {
        let r = self.region(region)?;
        postgres::sicken(&r.data_dir, &r.postgres, sickness).await
    }

    pub async fn cure_database(&self, region: &str) -> Result<()> {
        let r = self.region(region)?;
        postgres::cure(&r.data_dir, &r.postgres).await
    }

    /// Every loopback port the instance listens on.
    pub fn ports(&self) -> Vec<u16> {
        moto_port(&self.moto_url)
            .into_iter()
            .chain(self.world.ports())
            .chain(self.regions.iter().map(|r| r.postgres.port))
            .chain(self.lambda.iter().map(|l| l.port))
            .collect()
    }

    /// Every PID the instance started that is still alive.
    pub fn live_pids(&self) -> Vec<u32> {
        let pg = self.regions.iter().filter_map(|r| postgres::postmaster_pid(&r.data_dir));
        let lambda = self.lambda.iter().map(|l| l.pid);
        [self.moto_pid, self.world_pid].into_iter().chain(lambda).filter(|p| process::is_alive(*p)).chain(pg).collect()
    }

    /// Probes every component, read-only: nothing is written to a database or an AWS API (a
    /// status that wrote would refresh the very lag it reports). Never fails: a broken
    /// component is reported, not raised. The replication's direction is read from the
    /// databases, so it is right after a failover or a switchover.
    pub async fn status(&self) -> SandboxStatus {
        let aws = self.aws_status().await;
        let databases = self.databases().await;
        let lambda = self
            .lambda
            .iter()
            .map(|l| LambdaStatus {
                region: l.region.clone(),
                url: format!("http://127.0.0.1:{}", l.port),
                pid: l.pid,
                listening: process::is_alive(l.pid) && process::port_is_open(l.port),
            })
            .collect::<Vec<_>>();
        let replication = self.replication(&databases).await;
        // Healthy: every part answers, exactly one database accepts writes, and a replica, if
        // there is one, streams from it. A pair with no replica (the old writer fenced after a
        // switchover) is shown, but it is the deployment's state, not a broken sandbox.
        let healthy = aws.error.is_none()
            && lambda.iter().all(|l| l.listening)
            && databases.iter().all(|d| d.error.is_none())
            && replication.writer.is_some()
            && (replication.replica.is_none() || replication.streaming);
        SandboxStatus { instance: self.instance.clone(), healthy, aws, databases, lambda, replication }
    }

    /// Proves replication by writing a row on the database that accepts writes and reading it
    /// on the other: how long that took. It writes, so `status` never calls it (the drill and
    /// the tests do).
    pub async fn prove_replication(&self) -> Result<Duration> {
        let (writer, replica) = self.current_pair().await?;
        postgres::canary(&self.node(writer.as_str())?, &self.node(replica.as_str())?, Duration::from_secs(10)).await
    }

    /// The region whose database accepts writes now, and the other one (asked of the
    /// databases, not of where they started).
    pub async fn current_pair(&self) -> Result<(Region, Region)> {
        let report = self.replication(&self.databases().await).await;
        match (report.writer, report.replica) {
            (Some(w), Some(r)) => Ok((w, r)),
            _ => bail!("{}", report.error.unwrap_or_else(|| "no writer and replica pair".into())),
        }
    }

    /// What each region's database says of itself (read-only; one that does not answer is
    /// reported with its error).
    pub async fn databases(&self) -> Vec<DatabaseStatus> {
        let mut databases = Vec::new();
        for r in &self.regions {
            let node = PgNode::new(r.postgres.clone(), format!("status-{}", r.region));
            let status = node.replication_status().await;
            databases.push(DatabaseStatus {
                region: r.region.clone(),
                port: r.postgres.port,
                pid: postgres::postmaster_pid(&r.data_dir),
                status: status.as_ref().ok().cloned(),
                error: status.err().map(|e| e.to_string()),
            });
        }
        databases
    }

    /// Which database writes, which replicates from it, and the lag between them, from what
    /// the databases say of themselves ([`Self::databases`]). Read-only.
    pub async fn replication(&self, databases: &[DatabaseStatus]) -> ReplicationReport {
        let roles: Vec<(Region, Option<ReplicationStatus>)> =
            databases.iter().map(|d| (d.region.clone(), d.status.clone())).collect();
        let writers: Vec<&Region> = roles
            .iter()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == DatabaseRole::Writer && !s.fenced))
            .map(|(r, _)| r)
            .collect();
        let replicas: Vec<&Region> = roles
            .iter()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.role == DatabaseRole::Replica))
            .map(|(r, _)| r)
            .collect();
        let mut report = ReplicationReport { writer: None, replica: None, streaming: false, lag: None, error: None };
        match writers.as_slice() {
            [w] => report.writer = Some((*w).clone()),
            [] => report.error = Some("no database accepts writes".into()),
            many => {
                let names: Vec<String> = many.iter().map(|r| r.to_string()).collect();
                report.error = Some(format!("{} all accept writes", names.join(" and ")));
            }
        }
        if let [r] = replicas.as_slice() {
            report.replica = Some((*r).clone());
        }
        let (Some(w), Some(r)) = (&report.writer, &report.replica) else {
            if report.error.is_none() {
                let others: Vec<String> = roles
                    .iter()
                    .filter(|(r, _)| Some(r) != report.writer.as_ref())
                    .map(|(r, s)| match s {
                        Some(s) if s.fenced => {
                            format!("{r} is fenced, not a replica (`sandbox rejoin {r}` rebuilds it)")
                        }
                        Some(_) => format!("{r} is not a replica"),
                        None => format!("{r}'s database does not answer"),
                    })
                    .collect();
                report.error = Some(format!("no replica: {}", others.join("; ")));
            }
            return report;
        };
        report.streaming =
            roles.iter().any(|(region, s)| region == r && s.as_ref().is_some_and(|s| s.streaming_peers > 0));
        match (self.node(w.as_str()), self.node(r.as_str())) {
            (Ok(wn), Ok(rn)) => match pair_lag(&wn, &rn).await {
                Ok(lag) => report.lag = Some(lag),
                Err(e) => report.error = Some(e.to_string()),
            },
            (Err(e), _) | (_, Err(e)) => report.error = Some(format!("{e:#}")),
        }
        if !report.streaming && report.error.is_none() {
            report.error = Some(format!("{r} is a replica but its WAL receiver is not streaming from {w}"));
        }
        report
    }

    async fn aws_status(&self) -> AwsStatus {
        let mut queues = 0;
        let result: Result<()> = async {
            for r in &self.regions {
                let config = switchyard_aws::sdk_config(&self.aws_target(), &r.region).await;
                let listed = aws_sdk_sqs::Client::new(&config).list_queues().send().await.context("SQS ListQueues")?;
                let n = listed.queue_urls().len();
                if n < 2 {
                    bail!("{}: {n} queue(s), expected the orders queue and its DLQ", r.region);
                }
                queues += n;
            }
            if self.resources.is_none() {
                bail!("not provisioned");
            }
            Ok(())
        }
        .await;
        AwsStatus {
            endpoint_url: self.aws_endpoint_url.clone(),
            pid: self.moto_pid,
            alive: process::is_alive(self.moto_pid),
            queues,
            error: result.err().map(|e| format!("{e:#}")),
        }
    }
}

/// What a deployed function would get, plus what only the sandbox knows: its paths to each
/// region's AWS APIs, databases and order APIs (the world's links), and dummy credentials.
fn function_environment(d: &Deployment, region: &Region, world: &WorldPlan) -> Vec<(&'static str, String)> {
    let databases: std::collections::BTreeMap<&str, PgEndpoint> =
        d.regions.iter().filter_map(|t| Some((t.as_str(), world.database_from(region, t)?))).collect();
    let health: std::collections::BTreeMap<&str, String> =
        d.regions.iter().filter_map(|t| Some((t.as_str(), format!("{}/health", world.api_url(region, t)?)))).collect();
    let mut env = d.function_environment(region);
    env.push((keys::AWS_ENDPOINTS, serde_json::to_string(&world.aws_endpoints(region)).unwrap_or_default()));
    env.push((keys::DB_ENDPOINTS, serde_json::to_string(&databases).unwrap_or_default()));
    env.push((keys::HEALTH_URLS, serde_json::to_string(&health).unwrap_or_default()));
    // `cargo lambda watch` gives no invocation deadline: each function's timeout stands in.
    let timeouts: std::collections::BTreeMap<&str, u64> =
        d.function_specs().iter().map(|f| (f.name, f.timeout.as_secs())).collect();
    env.push((keys::FUNCTION_TIMEOUTS, serde_json::to_string(&timeouts).unwrap_or_default()));
    env.push(("AWS_ACCESS_KEY_ID", "sandbox".to_owned()));
    env.push(("AWS_SECRET_ACCESS_KEY", "sandbox".to_owned()));
    env
}

/// Starts the world daemon (`switchyard sandbox world --plan FILE`) and waits for it.
fn start_world(dir: &Path, plan: &WorldPlan) -> Result<u32> {
    let plan_file = dir.join("world.json");
    std::fs::write(&plan_file, serde_json::to_string_pretty(plan)?)?;
    let log = dir.join("world.log");
    let binary = crate::workspace::switchyard_binary()?;
    let pid =
        process::spawn_detached(Command::new(&binary).args(["sandbox", "world", "--plan"]).arg(&plan_file), &log)?;
    process::wait_for_port(plan.control_port, Duration::from_secs(30), "the sandbox world", &log, Some(pid))?;
    Ok(pid)
}

/// What `up` started, journalled to `started.json` as it goes, so that a run killed in the
/// middle of `up` (before `sandbox.json` exists) can still be stopped by `down` or the reaper.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Started {
    groups: Vec<u32>,
    databases: Vec<PathBuf>,
    #[serde(skip)]
    journal: PathBuf,
}

impl Started {
    fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join("started.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn group(&mut self, pid: u32) {
        self.groups.push(pid);
        self.save();
    }

    fn database(&mut self, dir: PathBuf) {
        self.databases.push(dir);
        self.save();
    }

    fn save(&self) {
        if let Ok(text) = serde_json::to_string(self) {
            let _ = std::fs::write(&self.journal, text);
        }
    }

    fn stop(&self) {
        for dir in &self.databases {
            let _ = postgres::stop(dir);
        }
        for pid in &self.groups {
            let _ = process::stop_group(*pid, "TERM", Duration::from_secs(10));
        }
    }
}

/// Stops what an interrupted `up` of `instance` started and removes its directory. For
/// instances without a `sandbox.json`; returns false if there was nothing to do.
pub fn stop_interrupted(instance: &str) -> Result<bool> {
    let dir = instance_dir(instance);
    if !dir.exists() {
        return Ok(false);
    }
    if let Some(started) = Started::load(&dir) {
        started.stop();
        for db in &started.databases {
            if let Some(root) = db.parent().filter(|r| !r.starts_with(&dir)) {
                let _ = std::fs::remove_dir_all(root);
            }
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(true)
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxStatus {
    pub instance: String,
    pub healthy: bool,
    pub aws: AwsStatus,
    pub databases: Vec<DatabaseStatus>,
    pub lambda: Vec<LambdaStatus>,
    pub replication: ReplicationReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct LambdaStatus {
    pub region: Region,
    /// Lambda Invoke API: POST {url}/2015-03-31/functions/NAME/invocations
    pub url: String,
    pub pid: u32,
    pub listening: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AwsStatus {
    pub endpoint_url: String,
    pub pid: u32,
    pub alive: bool,
    /// Queues found across both regions.
    pub queues: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    pub region: Region,
    pub port: u16,
    pub pid: Option<u32>,
    pub status: Option<ReplicationStatus>,
    pub error: Option<String>,
}

/// The replication as the databases say it is now (not as the sandbox started it).
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    /// The one database that accepts writes (none, or an error, when there are none or two).
    pub writer: Option<Region>,
    /// The database in recovery, which the writer's WAL should reach.
    pub replica: Option<Region>,
    /// The replica's WAL receiver streams from the writer.
    pub streaming: bool,
    /// Writer's WAL position minus the replica's replay position, and its age in seconds.
    pub lag: Option<ReplicationLag>,
    /// Why there is no lag to show: no writer, two writers, no replica, not streaming.
    pub error: Option<String>,
}

impl std::fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
        writeln!(f, "sandbox {:?}: {}", self.instance, if self.healthy { "healthy" } else { "UNHEALTHY" })?;
        let a = &self.aws;
        write!(
            f,
            "  {} aws api (moto)  {}  pid {}  {} queues in 2 regions",
            mark(a.error.is_none()),
            a.endpoint_url,
            a.pid,
            a.queues
        )?;
        match &a.error {
            Some(e) => writeln!(f, "  error: {e}")?,
            None => writeln!(f)?,
        }
        for d in &self.databases {
            let pid = d.pid.map_or("-".into(), |p| p.to_string());
            write!(f, "  {} postgres {}  127.0.0.1:{}  pid {pid}", mark(d.error.is_none()), d.region, d.port)?;
            match (&d.status, &d.error) {
                (Some(s), _) => writeln!(
                    f,
                    "  {:?}{}  wal {}  streaming peers {}",
                    s.role,
                    if s.fenced { " (fenced: refuses writes)" } else { "" },
                    s.log_position,
                    s.streaming_peers
                )?,
                (None, Some(e)) => writeln!(f, "  error: {e}")?,
                (None, None) => writeln!(f)?,
            }
        }
        for l in &self.lambda {
            writeln!(
                f,
                "  {} lambda   {}  {}  pid {}  (cargo lambda watch; functions build on first invoke)",
                mark(l.listening),
                l.region,
                l.url,
                l.pid
            )?;
        }
        let r = &self.replication;
        let direction = match (&r.writer, &r.replica) {
            (Some(w), Some(p)) => format!("{w} -> {p}"),
            (Some(w), None) => format!("{w} -> (no replica)"),
            _ => "(no writer)".to_owned(),
        };
        // No replica is a warning: the pair cannot fail over until one is rebuilt.
        let mark = if r.error.is_none() {
            "ok  "
        } else if r.writer.is_some() {
            "warn"
        } else {
            "FAIL"
        };
        write!(f, "  {mark} replication {direction}:")?;
        if let Some(l) = &r.lag {
            // An upper bound (`pair_lag`): the older of the writer's replay_lag and the age
            // of the replica's last replayed commit, while bytes are outstanding.
            write!(f, " lag {} bytes, at most {:.3} s", l.bytes, l.seconds)?;
        }
        match &r.error {
            Some(e) => writeln!(f, " {e}"),
            None => writeln!(f),
        }
    }
}
