//! Stop requests from the operator: Ctrl-C (SIGINT) and SIGTERM.

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called — call it
/// before printing that the program is up — so that an early stop request is never the default,
/// fatal, one. Needs a tokio runtime context.
pub fn requested() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("stop requested");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop requested");
    }
}

/// One message per SIGHUP, the operator's request to reload the configuration. The handler is
/// installed when this is called, so that a SIGHUP never ends the process. Needs a tokio runtime
/// context.
pub fn hangups() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        if sender.send(()).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "SIGHUP cannot be caught here; reload with POST /api/reload"),
        }
    }
    #[cfg(not(unix))]
    drop(sender);
    receiver
}
