//! PostgreSQL beside catalogd: a throwaway cluster made with `initdb` in the bench's work
//! directory, default durability (`fsync = on`, `synchronous_commit = on`), and `pgbench
//! -M prepared` upserting one row of what a register stores (name, id, fingerprint, a
//! 10-object JSON list, row count). Skipped with a note when PostgreSQL is not installed
//! (`apt-get install postgresql`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A running throwaway cluster.
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    port: u16,
    /// Run the server's tools as this user (PostgreSQL refuses to run as root).
    user: Option<&'static str>,
}

/// The directory holding PostgreSQL's server programs, if installed.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("pgbench").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Postgres {
    /// Makes and starts a cluster under `dir`; `Err` says why not (e.g. not installed).
    pub(crate) fn start(dir: &Path) -> Result<Self, String> {
        let bin = server_bin().ok_or(
            "PostgreSQL is not installed (apt-get install postgresql) — its columns are skipped",
        )?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let dir = &std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
        let user = is_root().then_some("postgres");
        if let Some(user) = user {
            run(Command::new("chown").arg(user).arg(dir))?;
        }
        let pg = Self {
            bin,
            data: dir.join("data"),
            socket: dir.clone(),
            port: testkit::free_port(),
            user,
        };
        run(pg
            .server_tool("initdb")
            .args([
                "-U",
                "bench",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&pg.data))?;
        let options = format!(
            "-p {} -k {} -c listen_addresses='' -c max_connections=100",
            pg.port,
            pg.socket.display()
        );
        run(pg
            .server_tool("pg_ctl")
            .args(["-w", "-D"])
            .arg(&pg.data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("postgres.log"))
            .arg("start"))?;
        pg.psql(
            "CREATE TABLE datasets (name text PRIMARY KEY, dataset_id uuid NOT NULL, \
             schema_fingerprint text NOT NULL, version bigint NOT NULL DEFAULT 1, \
             objects jsonb NOT NULL, row_count bigint, updated_at timestamptz NOT NULL DEFAULT now())",
        )?;
        Ok(pg)
    }

    fn server_tool(&self, name: &str) -> Command {
        match self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join(name));
                c
            }
            None => Command::new(self.bin.join(name)),
        }
    }

    fn client(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        c.arg("-h")
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-U", "bench"]);
        c
    }

    fn psql(&self, sql: &str) -> Result<(), String> {
        run(self.client("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            sql,
        ]))
    }

    /// Upserts per second from `clients` pgbench clients for `secs`: distinct names, or
    /// all on one name when `hot`.
    pub(crate) fn upserts(&self, work: &Path, clients: usize, secs: Duration, hot: bool) -> f64 {
        let objects: Vec<serde_json::Value> = (0..10)
            .map(|i| serde_json::json!({"key": format!("lake/bench/part-{i:05}.parquet"), "size": 4096 + i}))
            .collect();
        let objects = serde_json::Value::Array(objects).to_string();
        let name = if hot {
            "'bench.hot'"
        } else {
            "'bench.n' || CAST(:n AS bigint)"
        };
        // pgbench reads `:word` as a variable even inside quotes, hence chr(58) for ':'.
        let script = format!(
            "\\set n random(1, 2000000000)\n\
             INSERT INTO datasets (name, dataset_id, schema_fingerprint, objects, row_count) \
             SELECT v.name, CAST(md5(v.name) AS uuid), 'sha256' || chr(58) || 'bench', \
             '{objects}', 1000 FROM (SELECT {name} AS name) AS v \
             ON CONFLICT (name) DO UPDATE SET version = datasets.version + 1, \
             objects = EXCLUDED.objects, row_count = EXCLUDED.row_count, updated_at = now();\n"
        );
        let path = work.join(format!("pgbench-{}.sql", if hot { "hot" } else { "names" }));
        std::fs::write(&path, script).expect("writing the pgbench script");
        let out = self
            .client("pgbench")
            .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
            .args(["-j", &clients.min(2).to_string()])
            .args(["-T", &secs.as_secs().max(1).to_string(), "-f"])
            .arg(&path)
            .arg("postgres")
            .output()
            .expect("running pgbench");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no tps in pgbench's output: {text}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .server_tool("pg_ctl")
            .args(["-w", "-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
