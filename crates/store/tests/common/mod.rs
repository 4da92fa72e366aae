//! The engines every store test runs on: an SQLite file in a fresh directory, and a fresh database
//! on the PostgreSQL server that `SIGNAL_TEST_POSTGRES` names (`postgres://USER@HOST:PORT`, no
//! database: `tests/run` starts a throwaway cluster and sets it).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use store::{AnyQueue, Recovered, Storage};

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// A fresh, empty store, and how to open it again.
pub struct Store {
    /// How the service would name it.
    pub storage: Storage,
    /// Its engine.
    pub engine: Engine,
    _dir: tempfile::TempDir,
}

/// The server the PostgreSQL variants use.
pub fn postgres_server() -> String {
    std::env::var("SIGNAL_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("SIGNAL_TEST_POSTGRES is not set: run the tests with `bash tests/run`, which starts a throwaway PostgreSQL")
    })
}

/// A database of its own for each test, on the test server.
pub async fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = postgres_server();
    let name = format!("store_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let (client, connection) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await.expect("connect to the test server");
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a database");
    format!("{server}/{name}")
}

impl Store {
    /// A new, empty store on `engine`.
    pub async fn new(engine: Engine) -> Store {
        let dir = tempfile::tempdir().expect("dir");
        let storage = match engine {
            Engine::Sqlite => Storage::Sqlite(dir.path().join("data/signal.db")),
            Engine::Postgres => {
                Storage::Postgres { url: secret::Secret::new(fresh_database().await), max_connections: 8 }
            }
        };
        Store { storage, engine, _dir: dir }
    }

    /// Opens it, as a service (or another node) does.
    pub async fn open(&self) -> (AnyQueue, Recovered) {
        store::open(&self.storage).await.expect("the store opens")
    }

    /// Runs `sql` on it behind the queue's back (to age rows, say); says how many rows it changed.
    pub async fn run_sql(&self, sql: &str) -> u64 {
        match &self.storage {
            Storage::Sqlite(path) => {
                let connection = rusqlite::Connection::open(path).expect("open the file");
                connection.execute(sql, []).expect("run") as u64
            }
            Storage::Postgres { url, .. } => {
                let (client, connection) =
                    tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(connection);
                client.execute(sql, &[]).await.expect("run")
            }
        }
    }
}

/// Runs each named `async fn(Engine)` as two tests, `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Engine::Postgres).await;
                }
            )*
        }
    };
}
