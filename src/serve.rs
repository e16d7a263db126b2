//! `loket serve`: every inbox's intake and the outbox worker as supervised tasks under one
//! cancellation token. SIGTERM or SIGINT cancels; tasks finish the message in hand and stop; the
//! process exits when all have stopped or the drain deadline has passed. A task that panics is
//! logged with its cause and restarted with backoff.

pub mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{chat::ChatClients, imap, maildir};
use crate::config::{Config, InboxKind};
use crate::outbox::OutboxWorker;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("templates: {0}")]
    Templates(#[from] crate::templates::TemplateError),
    #[error("{0}")]
    Setup(String),
}

/// Everything `serve` and `ingest` share.
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub pipeline: Pipeline,
    pub outbox_wakeup: Arc<Notify>,
    pub scheduler_wakeup: Arc<Notify>,
}

impl App {
    pub async fn open(config: Config) -> Result<Self, ServeError> {
        let templates = Templates::load(&config.templates)?;
        let store = Store::open(&config.storage).await?;
        Ok(Self::assemble(config, templates, store))
    }

    /// [`App::open`] for `loket ingest`: the templates are read and each compiled when first
    /// rendered, not rendered with samples ([`Templates::on_demand`]), and the store is migrated only when it is new or behind
    /// ([`Store::open_current`]). Its messages are handled one after another, so a SQLite store
    /// is opened with one connection: sqlx returns a connection to its pool asynchronously, and
    /// a larger pool opens a second connection (its own thread, its own schema read) for the
    /// next query instead of waiting for the first.
    pub async fn open_for_ingest(config: Config) -> Result<Self, ServeError> {
        let templates = Templates::on_demand(&config.templates)?;
        let mut storage = config.storage.clone();
        if crate::store::Backend::of(&storage.url) == crate::store::Backend::Sqlite {
            storage.max_connections = 1;
        }
        let store = Store::open_current(&storage).await?;
        Ok(Self::assemble(config, templates, store))
    }

    fn assemble(config: Config, templates: Templates, store: Store) -> Self {
        let (config, templates) = (Arc::new(config), Arc::new(templates));
        let outbox_wakeup = Arc::new(Notify::new());
        let pipeline = Pipeline::new(store.clone(), config.clone(), templates, outbox_wakeup.clone());
        Self { config, store, pipeline, outbox_wakeup, scheduler_wakeup: Arc::new(Notify::new()) }
    }
}

/// Runs a task, restarting it with backoff if it panics, until it returns or `cancel` fires.
fn supervise<F, Fut>(tracker: &TaskTracker, name: String, cancel: CancellationToken, make: F)
where
    F: Fn(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tracker.spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            match tokio::spawn(make(cancel.clone())).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(task = %name, error = %e, retry_in_s = delay.as_secs(), "task died; restarting")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    });
}

/// Every hour (and once at start): each desk's retention applied (`store::privacy::expire`),
/// then the files no row names any more swept (`store::blobs::sweep`, past
/// `storage.files_grace_secs`). Idempotent, so instances sharing a store may all run it.
async fn retention_job(store: &crate::store::Store, config: &crate::config::Config, cancel: CancellationToken) {
    let grace = Duration::from_secs(config.storage.files_grace_secs);
    while !cancel.is_cancelled() {
        for (desk, expired) in crate::store::privacy::expire_all(store, config, crate::now_ms()).await {
            match expired {
                Ok(e) if e.raw_mails > 0 || e.tickets > 0 => {
                    tracing::info!(desk, raw_mails = e.raw_mails, tickets = e.tickets, "retention applied")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(desk, error = %e, "retention failed; trying again in an hour"),
            }
        }
        match crate::store::blobs::sweep(store, crate::now_ms(), grace).await {
            Ok(s) if s.deleted > 0 => tracing::info!(files = s.files, deleted = s.deleted, "unreferenced files swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping the files directory failed; trying again in an hour"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Runs until SIGTERM/SIGINT (or `stop` fires), then drains for at most `drain`.
pub async fn serve(app: App, stop: CancellationToken, drain: Duration) -> Result<(), ServeError> {
    let cancel = stop.child_token();
    let tracker = TaskTracker::new();
    let chat = ChatClients::from_config(&app.config).map_err(|e| ServeError::Setup(e.to_string()))?;
    // One identity per process: leases and outbox claims name it.
    let holder = format!("{}-{}-{}", hostname(), std::process::id(), crate::now_ms() % 1_000_000);
    let worker = Arc::new(
        OutboxWorker::new(
            &app.config.outbound,
            app.store.clone(),
            chat.clone(),
            app.outbox_wakeup.clone(),
            holder.clone(),
        )
        .map_err(|e| ServeError::Setup(e.to_string()))?,
    );
    {
        let worker = worker.clone();
        supervise(&tracker, "outbox".into(), cancel.clone(), move |c| {
            let w = worker.clone();
            async move { w.run_shared(c).await }
        });
    }
    if crate::outbox::WebhookWorker::needed(&app.config) {
        let worker = crate::outbox::WebhookWorker::new(app.store.clone(), app.config.clone(), holder.clone())
            .map_err(|e| ServeError::Setup(e.to_string()))?;
        let worker = Arc::new(worker);
        supervise(&tracker, "webhooks".into(), cancel.clone(), move |c| {
            let w = worker.clone();
            async move { w.run(c).await }
        });
    }
    if let Some(addr) = app.config.http {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Setup(format!("http.listen {addr}: {e}")))?;
        tracing::info!(%addr, "HTTP listening");
        let state = crate::http::HttpState::new(app.pipeline.clone(), chat.clone());
        let c = cancel.clone();
        tracker.spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, c).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
    }
    for desk in &app.config.desks {
        for inbox in &desk.inboxes {
            let kind = inbox.kind();
            if kind != InboxKind::Pipe {
                app.pipeline.metrics().register_inbox(&inbox.name, kind.name());
            }
            match kind {
                InboxKind::Imap(cfg) => {
                    let src = imap::source(app.pipeline.clone(), desk, inbox, cfg, &holder)
                        .map_err(|e| ServeError::Setup(e.to_string()))?;
                    supervise(&tracker, format!("imap:{}", inbox.name), cancel.clone(), move |c| src.clone().run(c));
                }
                InboxKind::Maildir(path) => {
                    let src = maildir::MaildirSource {
                        lease: crate::channel::lease::Lease {
                            store: app.store.clone(),
                            inbox: inbox.name.clone(),
                            holder: holder.clone(),
                        },
                        pipeline: app.pipeline.clone(),
                        desk: desk.clone(),
                        inbox: inbox.clone(),
                        path: path.to_path_buf(),
                        poll: Duration::from_millis(500),
                        deferrals: Default::default(),
                    };
                    supervise(&tracker, format!("maildir:{}", inbox.name), cancel.clone(), move |c| src.clone().run(c));
                }
                InboxKind::Graph(cfg) => {
                    let src = crate::channel::graph::source(app.pipeline.clone(), desk, inbox, cfg, &holder)
                        .map_err(ServeError::Setup)?;
                    supervise(&tracker, format!("graph:{}", inbox.name), cancel.clone(), move |c| src.clone().run(c));
                }
                InboxKind::Pipe => {
                    tracing::info!(inbox = %inbox.name, "no imap or maildir: this inbox takes mail only through `loket ingest`");
                }
            }
        }
    }
    for bot in chat.telegram.values() {
        let webhook = app
            .config
            .desk(&bot.desk)
            .and_then(|d| d.telegram.as_ref())
            .is_some_and(|t| t.mode == crate::config::TelegramMode::Webhook);
        if webhook {
            tracing::info!(desk = %bot.desk, "telegram: webhook mode, updates arrive at /telegram/{}", bot.desk);
            continue;
        }
        let lease = crate::channel::lease::Lease {
            store: app.store.clone(),
            inbox: format!("telegram:{}", bot.desk),
            holder: holder.clone(),
        };
        let (bot, pipeline) = (bot.clone(), app.pipeline.clone());
        supervise(&tracker, format!("telegram:{}", bot.desk), cancel.clone(), move |c| {
            bot.clone().poll(pipeline.clone(), lease.clone(), c)
        });
    }
    {
        let sched = scheduler::Scheduler {
            pipeline: app.pipeline.clone(),
            wakeup: app.scheduler_wakeup.clone(),
            max_sleep: Duration::from_secs(60),
        };
        let sched = Arc::new(sched);
        supervise(&tracker, "sla".into(), cancel.clone(), move |c| {
            let s = sched.clone();
            async move { s.run_ref(c).await }
        });
    }
    {
        let (store, config) = (app.store.clone(), app.config.clone());
        supervise(&tracker, "retention".into(), cancel.clone(), move |c| {
            let (store, config) = (store.clone(), config.clone());
            async move { retention_job(&store, &config, c).await }
        });
    }
    tracker.close();
    tracing::info!(desks = app.config.desks.len(), "loket serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ServeError::Setup(format!("cannot install SIGTERM handler: {e}")))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        _ = stop.cancelled() => tracing::info!("stop requested: draining"),
    }
    cancel.cancel();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!(deadline_s = drain.as_secs(), "tasks still busy at the drain deadline; exiting anyway");
    }
    app.store.close().await;
    tracing::info!("loket stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "loket".into())
}
