//! Private, throw-away PostgreSQL clusters and RabbitMQ nodes for tests that stop, restart or cut
//! the connections of a service (fault drills, TLS): the shared services on 5432/5672 that every
//! other test uses are never touched. Each instance lives in its own temporary directory on free
//! ports and is stopped and removed on drop.
//!
//! The methods block (they run `pg_ctl`, `rabbitmqctl`, `ss`): call them from
//! `tokio::task::spawn_blocking` when a worker runs inside the test's own runtime.
//!
//! Needs the Debian packages the development machine has (postgresql, rabbitmq-server, iproute2,
//! openssl); TLS uses the kit's [`Pki`]. PostgreSQL refuses to run as root, so as root the
//! server runs as user `postgres`.

use crate::pki::Pki;
use crate::ports::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Cuts every established TCP connection to or from `port` on loopback (`ss -K`): the peers see
/// a reset, as after a network failure, while the server keeps running. Returns how many
/// sockets `ss` listed as killed (it exits 0 when it cuts nothing, so callers check this).
pub fn cut_connections(port: u16) -> usize {
    let port = port.to_string();
    ["dport", "sport"]
        .iter()
        .map(|side| {
            // One line per socket killed, after a header line.
            let out = run(Command::new("ss").args(["-K", "-t", side, "=", &port]));
            out.lines().skip(1).filter(|l| !l.trim().is_empty()).count()
        })
        .sum()
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// A PostgreSQL cluster of its own (trust authentication, fsync off: test data only).
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

impl Postgres {
    /// initdb and start; with `tls`, the server also accepts TLS with the PKI's certificate.
    pub fn start(tls: Option<&Pki>) -> Postgres {
        let bin = PathBuf::from(run(Command::new("pg_config").arg("--bindir")).trim());
        let dir = tempfile::Builder::new()
            .prefix("iari-pg.")
            .tempdir()
            .expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let pg = Postgres {
            dir,
            port: free_port(),
            bin,
            as_postgres,
        };
        let data = pg.data();
        pg.ctl_cmd("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"])
            .args(["--no-sync", "-E", "UTF8"])
            .output()
            .map(|o| assert!(o.status.success(), "initdb: {o:?}"))
            .expect("initdb");
        let mut conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 200\n",
            pg.port,
            pg.dir.path().display()
        );
        if let Some(pki) = tls {
            // The key must belong to the server's user and not be readable by others.
            let key = pg.dir.path().join("server.key");
            std::fs::copy(pki.key(), &key).expect("copy key");
            if as_postgres {
                run(Command::new("chown").arg("postgres:").arg(&key));
            }
            run(Command::new("chmod").arg("600").arg(&key));
            conf += &format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                pki.cert().display(),
                key.display()
            );
        }
        let conf_path = Path::new(&data).join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf).expect("write postgresql.auto.conf");
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&conf_path));
        }
        pg.start_again();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn ctl_cmd(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        cmd
    }

    /// Base URL without a database name: `postgres://postgres@127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Stops the server (fast shutdown: open sessions are terminated).
    pub fn stop(&self) {
        let log = self.dir.path().join("log").display().to_string();
        let args = ["-D", &self.data(), "-l", &log, "-m", "fast", "-w"];
        run(self.ctl_cmd("pg_ctl", &args).arg("stop"));
    }

    /// Starts a stopped server and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("log").display().to_string();
        run(self
            .ctl_cmd("pg_ctl", &["-D", &self.data(), "-l", &log, "-w"])
            .arg("start"));
        wait_for_port(self.port, true, Duration::from_secs(30));
    }

    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .ctl_cmd("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

static NODES: AtomicU32 = AtomicU32::new(0);

/// A RabbitMQ node of its own (guest/guest allowed from loopback), run from the Debian package's
/// scripts with every path, port and the node name overridden.
pub struct Rabbit {
    dir: tempfile::TempDir,
    pub node: String,
    pub port: u16,
    /// AMQPS listener when started with TLS.
    pub tls_port: Option<u16>,
    child: Child,
}

const RABBIT_SBIN: &str = "/usr/lib/rabbitmq/bin";
/// Where the packaged node keeps the Erlang cookie the command line tools must share.
const RABBIT_HOME: &str = "/var/lib/rabbitmq";

/// Whether a node's log says it stopped on a port already in use: `eaddrinuse` where a listener
/// (AMQP, AMQPS, or the distribution listener itself) failed to bind, `dist_port_already_used`
/// where the broker's own check of its distribution port found it taken.
fn port_taken(log: &str) -> bool {
    log.contains("eaddrinuse") || log.contains("dist_port_already_used")
}

impl Rabbit {
    /// Starts a node on fresh ports. A node that finds a port taken after all (another process
    /// bound it between `free_port` and the node's own bind) is started again on other ports;
    /// any other failure panics with the node's log.
    pub fn start(tls: Option<&Pki>) -> Rabbit {
        const TRIES: u32 = 3;
        let mut attempt = 1;
        loop {
            match Self::try_start(tls) {
                Ok(r) => return r,
                Err(log) if attempt < TRIES && port_taken(&log) => {
                    eprintln!("RabbitMQ test node: a port was taken (try {attempt}), again");
                    attempt += 1;
                }
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn try_start(tls: Option<&Pki>) -> Result<Rabbit, String> {
        let dir = tempfile::Builder::new()
            .prefix("iari-rmq.")
            .tempdir()
            .expect("temp dir");
        let n = NODES.fetch_add(1, Ordering::Relaxed);
        let node = format!("iari-test-{}-{n}@localhost", std::process::id());
        let port = free_port();
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        let tls_port = tls.map(|pki| {
            let p = free_port();
            conf += &format!(
                "listeners.ssl.default = 127.0.0.1:{p}\nssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                pki.ca().display(),
                pki.cert().display(),
                pki.key().display()
            );
            p
        });
        std::fs::write(dir.path().join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let log = std::fs::File::create(dir.path().join("stdout.log")).expect("log file");
        let mut cmd = Command::new(Path::new(RABBIT_SBIN).join("rabbitmq-server"));
        Self::env(&mut cmd, dir.path(), &node);
        cmd.env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.path().join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                dir.path().join("enabled_plugins"),
            )
            .env("RABBITMQ_CONFIG_FILE", dir.path().join("rabbitmq"))
            // A node that fails to boot writes erl_crash.dump into its working directory: the
            // temporary one, not the checkout.
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        let child = cmd.spawn().expect("rabbitmq-server");
        let mut r = Rabbit {
            dir,
            node,
            port,
            tls_port,
            child,
        };
        r.await_startup()?;
        Ok(r)
    }

    /// Waits until the node runs the broker: `await_startup` fails at once while the node has
    /// not registered with epmd yet, so it is retried until the node is up or has exited.
    /// A node that exited gives its log as the error.
    fn await_startup(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("stdout.log"));
                return Err(format!(
                    "rabbitmq-server exited ({status}): {}",
                    log.unwrap_or_default()
                ));
            }
            let mut cmd = Command::new(Path::new(RABBIT_SBIN).join("rabbitmqctl"));
            Self::env(&mut cmd, self.dir.path(), &self.node);
            let ok = cmd
                .arg("-n")
                .arg(&self.node)
                .args(["await_startup", "--timeout", "60"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "{} did not start",
                self.node
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        wait_for_port(self.port, true, Duration::from_secs(30));
        Ok(())
    }

    fn env(cmd: &mut Command, dir: &Path, node: &str) {
        cmd.env("HOME", RABBIT_HOME)
            .env("RABBITMQ_NODENAME", node)
            .env("RABBITMQ_PID_FILE", dir.join("pid"));
    }

    /// Runs `rabbitmqctl -n NODE ARGS...` and returns its output.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(Path::new(RABBIT_SBIN).join("rabbitmqctl"));
        Self::env(&mut cmd, self.dir.path(), &self.node);
        run(cmd.arg("-n").arg(&self.node).args(args))
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://` URL naming `localhost`, the name in the test certificate.
    pub fn amqps_url(&self) -> Option<String> {
        self.tls_port
            .map(|p| format!("amqps://guest:guest@localhost:{p}/%2f"))
    }

    /// `rabbitmqctl stop_app`: the broker application stops (connections close), the node stays.
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
        wait_for_port(self.port, false, Duration::from_secs(30));
    }

    pub fn start_app(&mut self) {
        self.ctl(&["start_app"]);
        if let Err(log) = self.await_startup() {
            panic!("{log}");
        }
    }

    /// Resets every client connection of this node (`ss -K`), the broker keeps running; returns
    /// how many sockets were cut.
    pub fn cut_connections(&self) -> usize {
        cut_connections(self.port)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let mut cmd = Command::new(Path::new(RABBIT_SBIN).join("rabbitmqctl"));
        Self::env(&mut cmd, self.dir.path(), &self.node);
        let _ = cmd.arg("-n").arg(&self.node).arg("shutdown").output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
